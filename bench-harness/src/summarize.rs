//! `summarize`: medians over repeated runs, grouped by label, and ratios against a baseline.
//! This is what `sidebyside.sh` prints at the end: for each broker, the median forwarded
//! throughput and median p99 over its rounds, and ringmq/mosquitto ratios.

use crate::cli::SummarizeArgs;
use crate::report::Report;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Group {
    pub label: String,
    pub runs: usize,
    pub sent_per_s: f64,
    pub forwarded_per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub lost: u64,
    /// Σ over runs of messages acknowledged by the broker and never delivered (LOSS).
    pub lost_acked: u64,
    /// Runs with any acknowledged message lost.
    pub runs_with_loss: usize,
    /// Medians over runs of the slowest and the fastest publisher's msgs/s (acknowledged at
    /// QoS 1/2, sent at QoS 0), over all publisher groups.
    pub publisher_per_s_min: f64,
    pub publisher_per_s_max: f64,
    pub gen_cpu_pct: f64,
    pub broker_cpu_pct: Option<f64>,
    /// Median over runs of the broker's CPU time per forwarded message, in µs (its CPU over
    /// the window ÷ messages forwarded in it): comparable even when the broker did not get a
    /// whole core.
    pub broker_us_per_msg: Option<f64>,
    /// `.hgrm` of the median run (by forwarded throughput; by p99 in open-loop mode, where
    /// throughput is fixed by the schedule).
    pub median_hgrm: Option<String>,
    pub warnings: usize,
    /// `conns` runs: medians of connections made, connections/s and broker bytes/connection.
    pub conns: Option<ConnsGroup>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConnsGroup {
    pub succeeded: f64,
    pub conns_per_s: f64,
    pub broker_bytes_per_conn: Option<f64>,
    /// Median broker CPU per connection made (µs, `--broker-pid`).
    pub broker_cpu_us_per_conn: Option<f64>,
}

pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Index of the run whose `key` is the (lower) median.
fn median_index(runs: &[&Report], key: impl Fn(&Report) -> f64) -> usize {
    let mut idx: Vec<usize> = (0..runs.len()).collect();
    idx.sort_by(|&a, &b| key(runs[a]).total_cmp(&key(runs[b])));
    idx[(idx.len() - 1) / 2]
}

pub fn group(reports: &[Report]) -> Vec<Group> {
    let mut by: BTreeMap<String, Vec<&Report>> = BTreeMap::new();
    for r in reports {
        by.entry(r.label.clone().unwrap_or_else(|| "unlabelled".into()))
            .or_default()
            .push(r);
    }
    by.into_iter()
        .map(|(label, runs)| {
            let col = |f: &dyn Fn(&Report) -> f64| {
                let mut v: Vec<f64> = runs.iter().map(|r| f(r)).collect();
                median(&mut v)
            };
            let open_loop = runs.iter().all(|r| r.mode == "rate");
            let mi = if open_loop {
                median_index(&runs, |r| r.latency_us.p99 as f64)
            } else {
                median_index(&runs, |r| r.forwarded_per_s)
            };
            let broker_cpu: Vec<f64> = runs.iter().filter_map(|r| r.broker_cpu_pct).collect();
            let mut us_per_msg: Vec<f64> = runs
                .iter()
                .filter(|r| r.forwarded_per_s > 0.0)
                .filter_map(|r| r.broker_cpu_pct.map(|c| c * 1e4 / r.forwarded_per_s))
                .collect();
            Group {
                runs: runs.len(),
                sent_per_s: col(&|r| r.sent_per_s),
                forwarded_per_s: col(&|r| r.forwarded_per_s),
                p50_us: col(&|r| r.latency_us.p50 as f64),
                p99_us: col(&|r| r.latency_us.p99 as f64),
                p999_us: col(&|r| r.latency_us.p999 as f64),
                max_us: col(&|r| r.latency_us.max as f64),
                lost: runs.iter().map(|r| r.accounting.lost).sum(),
                lost_acked: runs.iter().map(|r| r.lost_acked).sum(),
                runs_with_loss: runs.iter().filter(|r| r.lost_acked > 0).count(),
                publisher_per_s_min: col(&|r| {
                    r.groups
                        .iter()
                        .map(|g| g.per_s_min)
                        .fold(f64::NAN, f64::min)
                }),
                publisher_per_s_max: col(&|r| {
                    r.groups
                        .iter()
                        .map(|g| g.per_s_max)
                        .fold(f64::NAN, f64::max)
                }),
                gen_cpu_pct: col(&|r| r.gen_cpu_pct),
                broker_cpu_pct: if broker_cpu.is_empty() {
                    None
                } else {
                    let mut b = broker_cpu;
                    Some(median(&mut b))
                },
                broker_us_per_msg: if us_per_msg.is_empty() {
                    None
                } else {
                    Some(median(&mut us_per_msg))
                },
                median_hgrm: runs[mi].hgrm.clone(),
                warnings: runs.iter().map(|r| r.warnings.len()).sum(),
                conns: conns_group(&runs),
                label,
            }
        })
        .collect()
}

fn conns_group(runs: &[&Report]) -> Option<ConnsGroup> {
    let c: Vec<_> = runs.iter().filter_map(|r| r.conns.as_ref()).collect();
    if c.is_empty() {
        return None;
    }
    let mut succeeded: Vec<f64> = c.iter().map(|c| c.succeeded as f64).collect();
    let mut rate: Vec<f64> = c.iter().map(|c| c.conns_per_s).collect();
    let mut bytes: Vec<f64> = c.iter().filter_map(|c| c.broker_bytes_per_conn).collect();
    let mut cpu: Vec<f64> = c.iter().filter_map(|c| c.broker_cpu_us_per_conn).collect();
    Some(ConnsGroup {
        succeeded: median(&mut succeeded),
        conns_per_s: median(&mut rate),
        broker_bytes_per_conn: (!bytes.is_empty()).then(|| median(&mut bytes)),
        broker_cpu_us_per_conn: (!cpu.is_empty()).then(|| median(&mut cpu)),
    })
}

/// Read every JSON line from files and directories (their `*.json`).
pub fn load(inputs: &[PathBuf]) -> Result<Vec<Report>, String> {
    let mut files: Vec<PathBuf> = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            v.sort();
            files.extend(v);
        } else {
            files.push(p.clone());
        }
    }
    let mut out = Vec::new();
    for f in files {
        out.extend(load_file(&f)?);
    }
    Ok(out)
}

fn load_file(f: &Path) -> Result<Vec<Report>, String> {
    let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
    text.lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(|l| serde_json::from_str::<Report>(l).map_err(|e| format!("{}: {e}", f.display())))
        .collect()
}

fn ms(us: f64) -> String {
    format!("{:.3}", us / 1000.0)
}

fn conns_table(groups: &[Group], baseline: Option<&str>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<14} {:>4} {:>10} {:>10} {:>14} {:>14} {:>16} {:>14}",
        "label",
        "runs",
        "connected",
        "conn/s",
        "connect p50 ms",
        "connect p99 ms",
        "broker B/conn",
        "brk µs/conn"
    );
    for g in groups {
        let c = g.conns.as_ref().expect("conns groups only");
        let _ = writeln!(
            s,
            "{:<14} {:>4} {:>10.0} {:>10.0} {:>14} {:>14} {:>16} {:>14}",
            g.label,
            g.runs,
            c.succeeded,
            c.conns_per_s,
            ms(g.p50_us),
            ms(g.p99_us),
            c.broker_bytes_per_conn
                .map(|b| format!("{b:.0}"))
                .unwrap_or_else(|| "-".into()),
            c.broker_cpu_us_per_conn
                .map(|u| format!("{u:.0}"))
                .unwrap_or_else(|| "-".into())
        );
    }
    if let Some(b) = baseline.and_then(|base| groups.iter().find(|g| g.label == base)) {
        let bc = b.conns.as_ref().expect("conns groups only");
        for g in groups.iter().filter(|g| g.label != b.label) {
            let c = g.conns.as_ref().expect("conns groups only");
            let _ = writeln!(
                s,
                "{}/{}: connections/s ×{:.2} (higher is better), connect p99 ×{:.2}, bytes per connection ×{} (lower is better)",
                g.label,
                b.label,
                c.conns_per_s / bc.conns_per_s,
                g.p99_us / b.p99_us,
                match (c.broker_bytes_per_conn, bc.broker_bytes_per_conn) {
                    (Some(x), Some(y)) if y > 0.0 => format!("{:.2}", x / y),
                    _ => "?".into(),
                }
            );
        }
    }
    s
}

pub fn table(groups: &[Group], baseline: Option<&str>) -> String {
    if !groups.is_empty() && groups.iter().all(|g| g.conns.is_some()) {
        return conns_table(groups, baseline);
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<14} {:>4} {:>12} {:>12} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>10} {:>10} {:>8} {:>8} {:>10}",
        "label",
        "runs",
        "sent/s",
        "fwd/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "lost",
        "lost-ackd",
        "pub min/s",
        "pub max/s",
        "gen cpu",
        "brk cpu",
        "brk µs/msg"
    );
    let rate = |x: f64| {
        if x.is_finite() {
            format!("{x:.0}")
        } else {
            "-".into()
        }
    };
    for g in groups {
        let _ = writeln!(
            s,
            "{:<14} {:>4} {:>12.0} {:>12.0} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>10} {:>10} {:>7.0}% {:>8} {:>10}{}",
            g.label,
            g.runs,
            g.sent_per_s,
            g.forwarded_per_s,
            ms(g.p50_us),
            ms(g.p99_us),
            ms(g.p999_us),
            ms(g.max_us),
            g.lost,
            g.lost_acked,
            rate(g.publisher_per_s_min),
            rate(g.publisher_per_s_max),
            g.gen_cpu_pct,
            g.broker_cpu_pct
                .map(|c| format!("{c:.0}%"))
                .unwrap_or_else(|| "-".into()),
            g.broker_us_per_msg
                .map(|u| format!("{u:.2}"))
                .unwrap_or_else(|| "-".into()),
            if g.runs_with_loss > 0 {
                format!("  LOSS in {} of {} runs", g.runs_with_loss, g.runs)
            } else {
                String::new()
            }
        );
    }
    if let Some(base) = baseline {
        if let Some(b) = groups.iter().find(|g| g.label == base) {
            for g in groups.iter().filter(|g| g.label != base) {
                let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
                let _ = writeln!(
                    s,
                    "{}/{}: forwarded throughput ×{:.2} (higher is better), p99 ×{:.2}, p50 ×{:.2} (lower is better)",
                    g.label,
                    base,
                    ratio(g.forwarded_per_s, b.forwarded_per_s),
                    ratio(g.p99_us, b.p99_us),
                    ratio(g.p50_us, b.p50_us),
                );
            }
        } else {
            let _ = writeln!(s, "(baseline {base:?} not found among the labels)");
        }
    }
    s
}

pub fn run(args: &SummarizeArgs) -> Result<(), String> {
    let reports = load(&args.inputs)?;
    if reports.is_empty() {
        return Err("no JSON lines found".into());
    }
    let groups = group(&reports);
    if args.median_hgrm {
        for g in &groups {
            if let Some(h) = &g.median_hgrm {
                println!("{}\t{h}", g.label);
            }
        }
    } else if args.json {
        println!(
            "{}",
            serde_json::to_string(
                &serde_json::json!({ "groups": groups, "baseline": args.baseline })
            )
            .expect("serialisable")
        );
    } else {
        print!("{}", table(&groups, args.baseline.as_deref()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::LatencySummary;

    fn rep(label: &str, fwd: f64, p99: u64, hgrm: &str) -> Report {
        Report {
            label: Some(label.into()),
            mode: "max".into(),
            forwarded_per_s: fwd,
            latency_us: LatencySummary {
                p99,
                ..Default::default()
            },
            hgrm: Some(hgrm.into()),
            ..Default::default()
        }
    }

    #[test]
    fn medians_and_median_run() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        let runs = vec![
            rep("a", 100.0, 10, "a1"),
            rep("a", 300.0, 30, "a2"),
            rep("a", 200.0, 20, "a3"),
            rep("b", 50.0, 40, "b1"),
        ];
        let mut runs = runs;
        runs[3].lost_acked = 7;
        runs[3].groups = vec![crate::report::GroupReport {
            per_s_min: 5.0,
            per_s_max: 9.0,
            ..Default::default()
        }];
        let g = group(&runs);
        assert_eq!(g.len(), 2);
        assert_eq!((g[1].lost_acked, g[1].runs_with_loss), (7, 1));
        assert_eq!(
            (g[1].publisher_per_s_min, g[1].publisher_per_s_max),
            (5.0, 9.0)
        );
        assert!(
            g[0].publisher_per_s_min.is_nan(),
            "no per-publisher data in old runs"
        );
        assert_eq!(g[0].label, "a");
        assert_eq!(g[0].forwarded_per_s, 200.0);
        assert_eq!(g[0].p99_us, 20.0);
        assert_eq!(g[0].median_hgrm.as_deref(), Some("a3"));
        let t = table(&g, Some("b"));
        assert!(t.contains("a/b: forwarded throughput ×4.00"), "{t}");
        assert!(t.contains("p99 ×0.50"), "{t}");
        assert!(t.contains("LOSS in 1 of 1 runs"), "{t}");
    }
}
