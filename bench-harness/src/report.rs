//! The result of a run as people and scripts see it: the human summary, the JSON line, the
//! `.hgrm` file, and the warnings that tell a reader when a number should not be trusted
//! (generator saturated, target rate not met, drain incomplete, QoS 1/2 loss...).

use crate::engine::{RunOutcome, StalledOutcome};
use crate::hgrm;
use crate::stats::{Accounting, PublisherTally};
use crate::timeline::Second;
use hdrhistogram::Histogram;
use ringmq_codec::Protocol;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// A generator thread above this share of a core may be what limits the run.
const THREAD_SATURATED_PCT: f64 = 90.0;
/// Per-publisher rows kept in the JSON line (the group summaries cover every publisher).
const PER_PUBLISHER_MAX: usize = 1000;
/// Per-publisher rows printed in the human summary; beyond it, the worst ones.
const PER_PUBLISHER_PRINTED: usize = 32;

/// One publisher group's totals (`stalled`: healthy pairs vs the stalled topic; one group
/// "all" elsewhere), from the per-publisher accounts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct GroupReport {
    pub group: String,
    pub publishers: usize,
    pub sent: u64,
    pub acked: u64,
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub lost_acked: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    /// Publishers with any acknowledged message lost.
    pub publishers_with_loss: usize,
    /// Slowest and fastest publisher, msgs/s in the window ([`Report::per_publisher_basis`]).
    pub per_s_min: f64,
    pub per_s_max: f64,
    pub ack_wait_ms_max: f64,
}

fn group_reports(names: &[String], pubs: &[PublisherTally]) -> Vec<GroupReport> {
    names
        .iter()
        .filter_map(|name| {
            let mine: Vec<&PublisherTally> = pubs.iter().filter(|p| &p.group == name).collect();
            if mine.is_empty() {
                return None;
            }
            let sum = |f: &dyn Fn(&PublisherTally) -> u64| mine.iter().map(|p| f(p)).sum::<u64>();
            Some(GroupReport {
                group: name.clone(),
                publishers: mine.len(),
                sent: sum(&|p| p.sent),
                acked: sum(&|p| p.acked),
                expected: sum(&|p| p.expected),
                received: sum(&|p| p.received),
                lost: sum(&|p| p.lost),
                lost_acked: sum(&|p| p.lost_acked),
                duplicates: sum(&|p| p.duplicates),
                out_of_order: sum(&|p| p.out_of_order),
                publishers_with_loss: mine.iter().filter(|p| p.lost_acked > 0).count(),
                per_s_min: round(mine.iter().map(|p| p.per_s).fold(f64::MAX, f64::min), 1),
                per_s_max: round(mine.iter().map(|p| p.per_s).fold(0.0, f64::max), 1),
                ack_wait_ms_max: round(
                    mine.iter().map(|p| p.ack_wait_ms_max).fold(0.0, f64::max),
                    3,
                ),
            })
        })
        .collect()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub p9999: u64,
    pub max: u64,
}

impl LatencySummary {
    pub fn of(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            min: h.min(),
            mean: (h.mean() * 10.0).round() / 10.0,
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            p9999: h.value_at_quantile(0.9999),
            max: h.max(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ConnsReport {
    pub attempted: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// First connect → last CONNACK.
    pub connect_s: f64,
    pub conns_per_s: f64,
    pub connect_latency_us: LatencySummary,
    pub source_ips: usize,
    pub setup_cpu_pct: f64,
    /// The broker's CPU while the connections were being made, % of one core, and per
    /// connection made (µs; includes the TLS handshake over `--tls`).
    pub broker_setup_cpu_pct: Option<f64>,
    pub broker_cpu_us_per_conn: Option<f64>,
    pub broker_rss_before: Option<u64>,
    pub broker_rss_after: Option<u64>,
    pub broker_bytes_per_conn: Option<f64>,
    /// Connections still open at the end of the hold.
    pub alive_at_end: u64,
}

/// One run; serialised as the JSON line.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Report {
    pub tool: String,
    pub version: String,
    pub label: Option<String>,
    pub scenario: String,
    pub description: String,
    pub broker: String,
    pub protocol: String,
    /// "tcp", "tls" (`--tls`: every connection made a full TLS handshake) or "ws" (`--ws`: MQTT
    /// over WebSocket, each connection upgraded first).
    pub transport: String,
    pub qos: u8,
    pub payload_bytes: usize,
    pub publishers: usize,
    pub subscribers: usize,
    pub connections: usize,
    /// "rate" (open loop) or "max" (max throughput).
    pub mode: String,
    pub target_rate: Option<f64>,
    pub inflight: u32,
    pub threads: usize,
    pub warmup_s: f64,
    /// Length of the measured window.
    pub duration_s: f64,
    pub sent: u64,
    pub sent_in_window: u64,
    pub sent_per_s: f64,
    pub forwarded_in_window: u64,
    pub forwarded_per_s: f64,
    /// Expected, received, lost, duplicated, out-of-order and unexpected messages.
    #[serde(flatten)]
    pub accounting: Accounting,
    pub acked: u64,
    /// QoS 1/2: messages the broker acknowledged that never reached a subscriber expecting
    /// them, after the drain (Σ over publishers and subscribers). Non-zero = LOSS.
    pub lost_acked: u64,
    /// Max-throughput publishers kept an end-to-end window (`--no-e2e-window` turns it off).
    pub e2e_window: bool,
    /// Per publisher group, then per publisher (at most 1000, in publisher order;
    /// `per_publisher_truncated` says when more existed).
    pub groups: Vec<GroupReport>,
    /// What `per_s` counts per publisher: "acked" (QoS 1/2) or "sent" (QoS 0).
    pub per_publisher_basis: String,
    pub per_publisher: Vec<PublisherTally>,
    pub per_publisher_truncated: bool,
    /// Per-second counters (`--timeline`, `stalled`).
    pub timeline: Option<Vec<Second>>,
    /// `stalled`: what became of each stalled subscriber.
    pub stalled: Vec<StalledOutcome>,
    pub rejected: u64,
    pub unsent_behind_schedule: u64,
    pub max_send_lag_ms: f64,
    pub window_resets: u64,
    pub drained: bool,
    pub drain_s: f64,
    /// End-to-end latency in microseconds (conns: connect latency).
    pub latency_us: LatencySummary,
    /// Generator CPU (getrusage user+sys) as % of one core, and its split.
    pub gen_cpu_pct: f64,
    pub gen_cpu_user_pct: f64,
    pub gen_cpu_sys_pct: f64,
    pub gen_thread_cpu_pct: Vec<f64>,
    pub gen_thread_cpu_max_pct: f64,
    /// CPUs the generator may use (affinity).
    pub gen_cpus: Vec<usize>,
    /// Open loop: how late messages left relative to their schedule, µs. A large tail here
    /// means the generator (or its CPU) could not keep the schedule.
    pub send_lag_us: Option<LatencySummary>,
    /// `--hiccups`: platform stalls seen by a thread sleeping 1 ms at a time, µs.
    pub hiccups_us: Option<LatencySummary>,
    pub broker_pid: Option<u32>,
    pub broker_cpu_pct: Option<f64>,
    pub broker_cpus: Vec<usize>,
    pub broker_rss_bytes: Option<u64>,
    pub clients_failed: u64,
    pub clients_dropped_during_run: u64,
    pub errors: BTreeMap<String, u64>,
    pub protocol_errors: u64,
    pub setup_s: f64,
    pub subscribe_s: f64,
    pub filters_granted: u64,
    pub filters_refused: u64,
    pub conns: Option<ConnsReport>,
    pub details: serde_json::Value,
    pub hgrm: Option<String>,
    pub run_id: String,
    pub unix_time: u64,
    pub warnings: Vec<String>,
}

fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::V310 => "3.1",
        Protocol::V311 => "3.1.1",
        Protocol::V5 => "5",
    }
}

/// Build the report of a finished run.
pub fn build(o: &RunOutcome, label: Option<String>) -> Report {
    let s = &o.settings;
    let plan = &o.plan;
    let secs = o.window_ns as f64 / 1e9;
    let per_s = |n: u64| {
        if secs > 0.0 {
            round(n as f64 / secs, 1)
        } else {
            0.0
        }
    };
    let is_conns = plan.scenario == "conns";
    let latency = if is_conns {
        LatencySummary::of(&o.connect_latency)
    } else {
        LatencySummary::of(&o.latency)
    };
    let thread_max = o.gen_thread_cpu_pct.iter().cloned().fold(0.0, f64::max);
    let mut r = Report {
        tool: "ringmq-bench".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        label,
        scenario: plan.scenario.into(),
        description: plan.description.clone(),
        broker: s.broker.to_string(),
        protocol: protocol_name(s.protocol).into(),
        transport: if s.tls.is_some() {
            "tls"
        } else if s.ws.is_some() {
            "ws"
        } else {
            "tcp"
        }
        .into(),
        qos: s.qos as u8,
        payload_bytes: s.payload_bytes,
        publishers: plan.publishers.len(),
        subscribers: plan.subscribers.len(),
        connections: o.clients,
        mode: if s.rate.is_some() { "rate" } else { "max" }.into(),
        target_rate: s.rate,
        inflight: s.inflight,
        threads: o.threads,
        warmup_s: s.warmup.as_secs_f64(),
        duration_s: round(secs, 3),
        sent: o.sent_total,
        sent_in_window: o.sent_in_window,
        sent_per_s: per_s(o.sent_in_window),
        forwarded_in_window: o.forwarded_in_window,
        forwarded_per_s: per_s(o.forwarded_in_window),
        accounting: o.accounting.clone(),
        acked: o.acked,
        lost_acked: o.publishers.iter().map(|p| p.lost_acked).sum(),
        e2e_window: s.e2e_window,
        groups: group_reports(&plan.groups, &o.publishers),
        per_publisher_basis: if s.qos as u8 == 0 { "sent" } else { "acked" }.into(),
        per_publisher: o
            .publishers
            .iter()
            .take(PER_PUBLISHER_MAX)
            .map(|p| PublisherTally {
                per_s: round(p.per_s, 1),
                ack_wait_ms_max: round(p.ack_wait_ms_max, 3),
                ..p.clone()
            })
            .collect(),
        per_publisher_truncated: o.publishers.len() > PER_PUBLISHER_MAX,
        timeline: o.timeline.clone(),
        stalled: o.stalled.clone(),
        rejected: o.rejected,
        unsent_behind_schedule: o.unsent,
        max_send_lag_ms: round(o.max_send_lag_ns as f64 / 1e6, 3),
        window_resets: o.stall_resets,
        drained: o.drained,
        drain_s: round(o.drain_ns as f64 / 1e9, 3),
        latency_us: latency,
        gen_cpu_pct: round(o.gen_cpu_pct, 1),
        gen_cpu_user_pct: round(o.gen_cpu_user_pct, 1),
        gen_cpu_sys_pct: round(o.gen_cpu_sys_pct, 1),
        gen_cpus: o.gen_cpus.clone(),
        send_lag_us: s.rate.map(|_| LatencySummary::of(&o.send_lag)),
        hiccups_us: o.hiccups.as_ref().map(LatencySummary::of),
        broker_cpus: o.broker_cpus.clone(),
        gen_thread_cpu_pct: o.gen_thread_cpu_pct.iter().map(|x| round(*x, 1)).collect(),
        gen_thread_cpu_max_pct: round(thread_max, 1),
        broker_pid: s.broker_pid,
        broker_cpu_pct: o.broker_cpu_pct.map(|x| round(x, 1)),
        broker_rss_bytes: o.broker_rss_after,
        clients_failed: o.failed_setup,
        clients_dropped_during_run: o.failed_during_run,
        errors: o.errors.clone(),
        protocol_errors: o.protocol_errors,
        setup_s: round(o.setup_ns as f64 / 1e9, 3),
        subscribe_s: round(o.subscribe_ns as f64 / 1e9, 3),
        filters_granted: o.filters_granted,
        filters_refused: o.filters_refused,
        conns: None,
        details: plan.details.clone(),
        hgrm: None,
        run_id: s.run_id.clone(),
        unix_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        warnings: Vec::new(),
    };
    if is_conns {
        let succeeded = o.ready;
        let connect_s = o.setup_ns as f64 / 1e9;
        let per_conn = match (o.broker_rss_before, o.broker_rss_after) {
            (Some(a), Some(b)) if succeeded > 0 => {
                Some(round((b as f64 - a as f64) / succeeded as f64, 1))
            }
            _ => None,
        };
        r.conns = Some(ConnsReport {
            attempted: o.clients as u64,
            succeeded,
            failed: o.failed_setup,
            connect_s: round(connect_s, 3),
            conns_per_s: if connect_s > 0.0 {
                round(succeeded as f64 / connect_s, 1)
            } else {
                0.0
            },
            connect_latency_us: LatencySummary::of(&o.connect_latency),
            source_ips: s.sources.len().max(1),
            setup_cpu_pct: round(o.setup_cpu_pct, 1),
            broker_setup_cpu_pct: o
                .broker_setup_cpu_ns
                .filter(|_| o.setup_ns > 0)
                .map(|c| round(c as f64 * 100.0 / o.setup_ns as f64, 1)),
            broker_cpu_us_per_conn: o
                .broker_setup_cpu_ns
                .filter(|_| succeeded > 0)
                .map(|c| round(c as f64 / 1e3 / succeeded as f64, 1)),
            broker_rss_before: o.broker_rss_before,
            broker_rss_after: o.broker_rss_after,
            broker_bytes_per_conn: per_conn,
            alive_at_end: succeeded.saturating_sub(o.failed_during_run),
        });
    }
    r.warnings = warnings(o, &r);
    r
}

fn warnings(o: &RunOutcome, r: &Report) -> Vec<String> {
    let mut w = Vec::new();
    let traffic = r.scenario != "conns";
    for (i, pct) in r.gen_thread_cpu_pct.iter().enumerate() {
        if *pct >= THREAD_SATURATED_PCT {
            w.push(format!(
                "generator thread io-{i} used {pct:.0}% of a core: the generator may be the bottleneck (give it more CPUs / --threads)"
            ));
        }
    }
    if let Some(target) = r.target_rate {
        // Only open-loop publishers follow --rate (`stalled` has closed-loop ones beside them).
        let sent_per_s = if r.duration_s > 0.0 {
            o.sent_in_window_open_loop as f64 / r.duration_s
        } else {
            0.0
        };
        if sent_per_s < target * 0.99 {
            w.push(format!(
                "target rate not sustained: sent {sent_per_s:.0}/s of {target:.0}/s ({} messages behind schedule at the end); latency includes the backlog",
                r.unsent_behind_schedule
            ));
        }
    }
    // Max-throughput mode should saturate something. If neither the broker (single-process CPU
    // known) nor any generator thread is near a core, the in-flight window set the pace.
    if traffic && r.target_rate.is_none() {
        if let Some(b) = r.broker_cpu_pct {
            if b < 80.0 && r.gen_thread_cpu_max_pct < 80.0 && r.broker_cpus.len() <= 1 {
                w.push(format!(
                    "window-bound: broker at {b:.0}% and generator threads at most {:.0}% of a core, so --inflight {} (per publisher) limited throughput; raise it for a capacity figure",
                    r.gen_thread_cpu_max_pct, r.inflight
                ));
            }
        }
    }
    if traffic && !r.drained {
        w.push(format!(
            "drain timed out after {:.1}s: {} deliveries and {} acknowledgements still outstanding",
            r.drain_s,
            r.accounting.expected.saturating_sub(r.accounting.received),
            o.inflight_left
        ));
    }
    if traffic && r.qos > 0 && r.lost_acked > 0 {
        let with_loss: usize = r.groups.iter().map(|g| g.publishers_with_loss).sum();
        w.push(format!(
            "LOSS: {} messages acknowledged by the broker ({}) never reached their subscriber(s); {with_loss} of {} publishers affected",
            r.lost_acked,
            if r.qos == 1 { "PUBACK" } else { "PUBCOMP" },
            r.publishers
        ));
    }
    if traffic && r.qos > 0 && r.accounting.lost > r.lost_acked {
        w.push(format!(
            "{} QoS {} messages LOST in all ({} of them never acknowledged: connection lost or drain timed out)",
            r.accounting.lost,
            r.qos,
            r.accounting.lost - r.lost_acked
        ));
    }
    if let Some(c) = &r.conns {
        if let Some(per) = c.broker_bytes_per_conn {
            if per < 100.0 && c.succeeded >= 100 {
                w.push("broker RSS barely grew: it is probably reusing memory freed by earlier connections; restart the broker for a clean bytes-per-connection figure".into());
            }
        }
        if c.connect_latency_us.p99 >= 900_000 {
            w.push("connect p99 ≥ 0.9 s: SYNs were dropped and retransmitted (listen backlog / somaxconn full; see tuning/)".into());
        }
    }
    if r.qos == 2 && r.accounting.duplicates > 0 {
        w.push(format!(
            "{} duplicates at QoS 2 (exactly once violated)",
            r.accounting.duplicates
        ));
    }
    if r.window_resets > 0 {
        w.push(format!(
            "{} in-flight window resets (deliveries stalled >1s; messages presumed lost)",
            r.window_resets
        ));
    }
    if r.clients_dropped_during_run > 0 {
        w.push(format!(
            "{} connections dropped during the run",
            r.clients_dropped_during_run
        ));
    }
    if o.accounting.gaps_forgotten > 0 {
        w.push("loss so heavy that gap tracking overflowed: late arrivals may be counted as duplicates".into());
    }
    if r.filters_refused > 0 {
        w.push(format!(
            "{} subscriptions refused by the broker",
            r.filters_refused
        ));
    }
    if r.rejected > 0 {
        w.push(format!(
            "{} publishes acknowledged with an error reason code",
            r.rejected
        ));
    }
    if r.protocol_errors > 0 {
        w.push(format!(
            "{} unexpected packets from the broker",
            r.protocol_errors
        ));
    }
    if traffic && r.latency_us.count == 0 {
        w.push("no message was received in the measured window".into());
    }
    if r.accounting.unexpected > 0 {
        w.push(format!(
            "{} messages from unexpected streams (another client publishing on the benchmark topics?)",
            r.accounting.unexpected
        ));
    }
    w
}

/// Thousands separators.
pub fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

/// Bytes in the unit that keeps 1–4 digits.
fn bytes(b: u64) -> String {
    if b < 10 * 1024 {
        format!("{b} B")
    } else if b < 10 * 1024 * 1024 {
        format!("{:.1} KiB", b as f64 / 1024.0)
    } else {
        mib(b)
    }
}

fn cpuset_note(cpus: &[usize]) -> String {
    if cpus.is_empty() {
        return String::new();
    }
    let list: Vec<String> = cpus.iter().map(|c| c.to_string()).collect();
    format!("; CPUs {{{}}}", list.join(","))
}

/// The human summary.
pub fn human(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "ringmq-bench {} — {}", r.scenario, r.description);
    let mode = match r.target_rate {
        Some(rate) => format!("open loop at {} msg/s", grouped(rate as u64)),
        None => format!("max throughput (in-flight {}/publisher)", r.inflight),
    };
    let over = match r.transport.as_str() {
        "tls" => " over TLS",
        "ws" => " over WebSocket",
        _ => "",
    };
    if r.conns.is_some() {
        let _ = writeln!(
            s,
            "broker {}  MQTT {}{over}  generator threads {}",
            r.broker, r.protocol, r.threads
        );
    } else {
        let _ = writeln!(
            s,
            "broker {}  MQTT {}{over}  QoS {}  payload {} B  {}  generator threads {}",
            r.broker, r.protocol, r.qos, r.payload_bytes, mode, r.threads
        );
    }
    if let Some(c) = &r.conns {
        let _ = writeln!(
            s,
            "connections  {} of {} succeeded ({} failed) in {:.2} s = {} conn/s over {} source address(es)",
            grouped(c.succeeded),
            grouped(c.attempted),
            grouped(c.failed),
            c.connect_s,
            grouped(c.conns_per_s as u64),
            c.source_ips
        );
        let l = &c.connect_latency_us;
        let _ = writeln!(
            s,
            "connect      p50 {} ms  p90 {} ms  p99 {} ms  p99.9 {} ms  max {} ms  (TCP connect{} → CONNACK)",
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max),
            match r.transport.as_str() {
                "tls" => " + TLS handshake",
                "ws" => " + WebSocket upgrade",
                _ => "",
            }
        );
        match (
            c.broker_rss_before,
            c.broker_rss_after,
            c.broker_bytes_per_conn,
        ) {
            (Some(a), Some(b), Some(per)) => {
                let _ = writeln!(
                    s,
                    "broker RSS   {} → {}  = {} bytes per connection",
                    mib(a),
                    mib(b),
                    grouped(per.max(0.0) as u64)
                );
            }
            _ => {
                let _ = writeln!(
                    s,
                    "broker RSS   (pass --broker-pid PID for memory per connection)"
                );
            }
        }
        let _ = writeln!(
            s,
            "alive        {} still connected after the hold; generator CPU while connecting {:.1}% of one core",
            grouped(c.alive_at_end),
            c.setup_cpu_pct
        );
        if let (Some(pct), Some(us)) = (c.broker_setup_cpu_pct, c.broker_cpu_us_per_conn) {
            let _ = writeln!(
                s,
                "broker CPU   {pct:.1}% of one core while connecting = {us:.1} µs per connection"
            );
        }
    } else {
        let _ = writeln!(
            s,
            "window {:.2} s after {:.2} s warm-up; setup {:.2} s{}",
            r.duration_s,
            r.warmup_s,
            r.setup_s,
            if r.subscribe_s > 0.0 && r.filters_granted > 100 {
                format!(
                    " ({} subscriptions acknowledged in {:.2} s = {}/s)",
                    grouped(r.filters_granted),
                    r.subscribe_s,
                    grouped((r.filters_granted as f64 / r.subscribe_s) as u64)
                )
            } else {
                String::new()
            }
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "throughput   sent {} msg/s   forwarded {} msg/s   ({} sent / {} delivered in window)",
            grouped(r.sent_per_s as u64),
            grouped(r.forwarded_per_s as u64),
            grouped(r.sent_in_window),
            grouped(r.forwarded_in_window)
        );
        let l = &r.latency_us;
        let _ = writeln!(
            s,
            "latency ms   p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}   (mean {:.3}, n={})",
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.p9999),
            ms(l.max),
            l.mean / 1000.0,
            grouped(l.count)
        );
        if let Some(l) = &r.send_lag_us {
            let _ = writeln!(
                s,
                "send lag ms  p50 {}  p99 {}  p99.9 {}  max {}   (generator behind its schedule; included in latency)",
                ms(l.p50),
                ms(l.p99),
                ms(l.p999),
                ms(l.max)
            );
        }
        if let Some(l) = &r.hiccups_us {
            let _ = writeln!(
                s,
                "hiccups ms   p50 {}  p99 {}  p99.9 {}  max {}   (platform stalls of a sleeping thread)",
                ms(l.p50),
                ms(l.p99),
                ms(l.p999),
                ms(l.max)
            );
        }
        let _ = writeln!(
            s,
            "delivery     expected {}  received {}  lost {}  duplicates {}  out-of-order {}{}",
            grouped(r.accounting.expected),
            grouped(r.accounting.received),
            grouped(r.accounting.lost),
            grouped(r.accounting.duplicates),
            grouped(r.accounting.out_of_order),
            if r.qos > 0 {
                format!("  (acks {})", grouped(r.acked))
            } else {
                String::new()
            }
        );
        if r.qos > 0 && r.lost_acked > 0 {
            let _ = writeln!(
                s,
                "LOSS         {} messages the broker acknowledged never arrived (lost after acknowledgement)",
                grouped(r.lost_acked)
            );
        }
        human_publishers(&mut s, r);
        if let Some(t) = &r.timeline {
            human_timeline(&mut s, t, r.qos > 0, !r.stalled.is_empty());
        }
        human_stalled(&mut s, r);
    }
    let threads: Vec<String> = r
        .gen_thread_cpu_pct
        .iter()
        .map(|p| format!("{p:.0}%"))
        .collect();
    let _ = writeln!(
        s,
        "generator    CPU {:.1}% of one core (user {:.1}%, sys {:.1}%; per I/O thread: {}){}",
        r.gen_cpu_pct,
        r.gen_cpu_user_pct,
        r.gen_cpu_sys_pct,
        threads.join(" "),
        cpuset_note(&r.gen_cpus),
    );
    if let Some(pid) = r.broker_pid {
        let _ = writeln!(
            s,
            "broker       CPU {} of one core, RSS {}  (pid {pid}){}",
            r.broker_cpu_pct
                .map(|c| format!("{c:.1}%"))
                .unwrap_or_else(|| "?".into()),
            r.broker_rss_bytes.map(mib).unwrap_or_else(|| "?".into()),
            cpuset_note(&r.broker_cpus),
        );
    }
    if !r.errors.is_empty() {
        let _ = writeln!(s, "errors:");
        for (k, v) in &r.errors {
            let _ = writeln!(s, "  {v}× {k}");
        }
    }
    for w in &r.warnings {
        let _ = writeln!(s, "WARNING: {w}");
    }
    if let Some(h) = &r.hgrm {
        let _ = writeln!(s, "histogram    {h}");
    }
    s
}

/// Group lines and the per-publisher table: whether every publisher kept making progress and
/// which ones lost acknowledged messages.
fn human_publishers(s: &mut String, r: &Report) {
    if r.per_publisher.is_empty() {
        return;
    }
    let basis = &r.per_publisher_basis;
    for g in &r.groups {
        let _ = writeln!(
            s,
            "publishers   {}: {} publisher(s), {basis}/s per publisher min {} max {}{}; lost {} ({} after ack), duplicates {}{}",
            g.group,
            g.publishers,
            grouped(g.per_s_min as u64),
            grouped(g.per_s_max as u64),
            if r.qos > 0 {
                format!(", longest ack wait {:.1} ms", g.ack_wait_ms_max)
            } else {
                String::new()
            },
            grouped(g.lost),
            grouped(g.lost_acked),
            grouped(g.duplicates),
            if g.publishers_with_loss > 0 {
                format!("  LOSS at {} publisher(s)", g.publishers_with_loss)
            } else {
                String::new()
            }
        );
    }
    // All rows when few; otherwise the worst (most acknowledged loss, then loss, then slowest).
    let mut rows: Vec<&PublisherTally> = r.per_publisher.iter().collect();
    let all = rows.len() <= PER_PUBLISHER_PRINTED;
    if !all {
        rows.sort_by(|a, b| {
            (b.lost_acked, b.lost)
                .cmp(&(a.lost_acked, a.lost))
                .then(a.per_s.total_cmp(&b.per_s))
        });
        rows.truncate(10);
    }
    let _ = writeln!(
        s,
        "per publisher{}",
        if all {
            String::new()
        } else {
            format!(" (10 worst of {})", r.publishers)
        }
    );
    let _ = writeln!(
        s,
        "  {:>5} {:<14} {:>11} {:>11} {:>11} {:>9} {:>10} {:>6} {:>10} {:>12}",
        "#",
        "group",
        "sent",
        "acked",
        "received",
        "lost",
        "lost-ackd",
        "dups",
        format!("{basis}/s"),
        "ack-wait ms"
    );
    for p in rows {
        let _ = writeln!(
            s,
            "  {:>5} {:<14} {:>11} {:>11} {:>11} {:>9} {:>10} {:>6} {:>10} {:>12.1}{}",
            p.publisher,
            p.group,
            grouped(p.sent),
            grouped(p.acked),
            grouped(p.received),
            grouped(p.lost),
            grouped(p.lost_acked),
            grouped(p.duplicates),
            grouped(p.per_s as u64),
            p.ack_wait_ms_max,
            if p.lost_acked > 0 { "  LOSS" } else { "" }
        );
    }
}

/// The per-second table: for each group acked (or sent) and delivered per second and latency.
fn human_timeline(s: &mut String, t: &[Second], acked: bool, stalled: bool) {
    let Some(first) = t.first() else {
        return;
    };
    // A group nobody receives (the stalled topic) shows only its publishers' progress.
    let received: Vec<bool> = (0..first.groups.len())
        .map(|g| {
            t.iter()
                .any(|sec| sec.groups.get(g).is_some_and(|x| x.delivered > 0))
        })
        .collect();
    let rate = if acked { "acked/s" } else { "sent/s" };
    let _ = write!(s, "timeline  {:>4}", "t s");
    for (g, r) in first.groups.iter().zip(&received) {
        if *r {
            let _ = write!(
                s,
                " | {:<14} {:>9} {:>9} {:>8} {:>8} {:>8}",
                g.group, rate, "fwd/s", "p50 ms", "p99 ms", "max ms"
            );
        } else {
            let _ = write!(s, " | {:<14} {:>9}", g.group, rate);
        }
    }
    if stalled {
        let _ = write!(s, " | {:>14}", "stalled rx-q");
    }
    let _ = writeln!(s);
    for sec in t {
        let _ = write!(s, "          {:>4}", sec.t_s);
        for (g, r) in sec.groups.iter().zip(&received) {
            let n = grouped(if acked { g.acked } else { g.sent });
            if *r {
                let _ = write!(
                    s,
                    " | {:<14} {:>9} {:>9} {:>8} {:>8} {:>8}",
                    "",
                    n,
                    grouped(g.delivered),
                    ms(g.latency_us_p50),
                    ms(g.latency_us_p99),
                    ms(g.latency_us_max)
                );
            } else {
                let _ = write!(s, " | {:<14} {:>9}", "", n);
            }
        }
        if stalled {
            let _ = write!(s, " | {:>14}", bytes(sec.stalled_rx_bytes));
        }
        let _ = writeln!(s);
    }
}

/// What became of each stalled subscriber.
fn human_stalled(s: &mut String, r: &Report) {
    for st in &r.stalled {
        let when = st
            .closed_at_s
            .map(|t| format!(" at {t:.1} s after traffic started"))
            .unwrap_or_default();
        let what = match st.state.as_str() {
            "reset" => format!("the broker reset the connection{when}"),
            "fin" => format!("the broker closed the connection{when}"),
            "closed-after-queued-data" => format!(
                "the broker closed the connection at some point: the close was found behind {} of unread data at the end",
                bytes(st.bytes_read_at_end)
            ),
            "open" => format!(
                "still connected at the end (the broker never disconnected it; {} read at the end)",
                bytes(st.bytes_read_at_end)
            ),
            other => format!("never stalled ({other})"),
        };
        let _ = writeln!(
            s,
            "stalled      subscriber s{}: {what}; up to {} waited unread in its socket",
            st.subscriber,
            bytes(st.rx_queue_bytes_max)
        );
    }
}

/// Where to write this run's files.
pub struct Outputs {
    pub json: Option<PathBuf>,
    pub hgrm: Option<PathBuf>,
}

/// Resolve `--json`, `--hgrm` and `--out-dir` into file paths.
pub fn output_paths(
    json: Option<&Path>,
    hgrm: Option<&Path>,
    out_dir: Option<&Path>,
    label: Option<&str>,
    scenario: &str,
    run_id: &str,
) -> std::io::Result<Outputs> {
    let mut o = Outputs {
        json: json.map(Path::to_path_buf),
        hgrm: hgrm.map(Path::to_path_buf),
    };
    if let Some(dir) = out_dir {
        std::fs::create_dir_all(dir)?;
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let stem = format!("{}-{scenario}-{secs}-{run_id}", label.unwrap_or("run"));
        o.json
            .get_or_insert_with(|| dir.join(format!("{stem}.json")));
        o.hgrm
            .get_or_insert_with(|| dir.join(format!("{stem}.hgrm")));
    }
    Ok(o)
}

/// Write the histogram and JSON files; returns the JSON line.
pub fn write_outputs(
    r: &mut Report,
    hist: &Histogram<u64>,
    outputs: &Outputs,
) -> std::io::Result<String> {
    if let Some(p) = &outputs.hgrm {
        std::fs::write(p, hgrm::render(hist))?;
        r.hgrm = Some(p.display().to_string());
    }
    let line = serde_json::to_string(r).expect("report serialises");
    if let Some(p) = &outputs.json {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)?;
        writeln!(f, "{line}")?;
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1234567), "1,234,567");
    }

    #[test]
    fn report_round_trips_through_json() {
        let r = Report {
            scenario: "pairs".into(),
            forwarded_per_s: 12.5,
            latency_us: LatencySummary {
                p99: 42,
                ..Default::default()
            },
            ..Default::default()
        };
        let line = serde_json::to_string(&r).unwrap();
        let back: Report = serde_json::from_str(&line).unwrap();
        assert_eq!(back, r);
        // Unknown/missing fields are tolerated (older/newer versions of the tool).
        let partial: Report = serde_json::from_str(r#"{"scenario":"x","new_field":1}"#).unwrap();
        assert_eq!(partial.scenario, "x");
    }
}
