//! `compare`: several runs' `.hgrm` files side by side — a percentile table on stdout and,
//! with `-o`, an SVG of the latency-by-percentile curves on one chart.

use crate::cli::CompareArgs;
use crate::hgrm::{self, Distribution};
use crate::svg;
use std::fmt::Write as _;

/// Percentiles of the table (1.0 = max).
pub const TABLE_PERCENTILES: [(f64, &str); 7] = [
    (0.5, "p50"),
    (0.9, "p90"),
    (0.99, "p99"),
    (0.999, "p99.9"),
    (0.9999, "p99.99"),
    (0.99999, "p99.999"),
    (1.0, "max"),
];

/// The side-by-side table; with two or more runs each later column also gets its ratio to the
/// first.
pub fn table(series: &[(String, Distribution)], unit: &str) -> String {
    let mut s = String::new();
    let w = series
        .iter()
        .map(|(l, _)| l.len())
        .max()
        .unwrap_or(8)
        .clamp(10, 28);
    let _ = write!(s, "{:<10}", format!("({unit})"));
    for (label, _) in series {
        let _ = write!(s, " {label:>w$}");
    }
    for (label, _) in series.iter().skip(1) {
        let _ = write!(
            s,
            " {:>12}",
            format!("{}/{}", short(label), short(&series[0].0))
        );
    }
    s.push('\n');
    for (p, name) in TABLE_PERCENTILES {
        // Skip percentiles beyond what every file resolves (e.g. p99.999 of 1000 samples).
        if p < 1.0
            && series
                .iter()
                .all(|(_, d)| d.count() > 0 && (d.count() as f64) < 1.0 / (1.0 - p))
        {
            continue;
        }
        let _ = write!(s, "{name:<10}");
        let vals: Vec<Option<f64>> = series.iter().map(|(_, d)| d.value_at(p)).collect();
        for v in &vals {
            match v {
                Some(v) => {
                    let _ = write!(s, " {v:>w$.3}");
                }
                None => {
                    let _ = write!(s, " {:>w$}", "-");
                }
            }
        }
        for v in vals.iter().skip(1) {
            match (vals[0], v) {
                (Some(a), Some(b)) if a > 0.0 => {
                    let _ = write!(s, " {:>11.2}x", b / a);
                }
                _ => {
                    let _ = write!(s, " {:>12}", "-");
                }
            }
        }
        s.push('\n');
    }
    let _ = write!(s, "{:<10}", "count");
    for (_, d) in series {
        let _ = write!(s, " {:>w$}", d.count());
    }
    s.push('\n');
    s
}

fn short(label: &str) -> &str {
    match label.char_indices().nth(10) {
        Some((i, _)) => &label[..i],
        None => label,
    }
}

pub fn run(args: &CompareArgs) -> Result<(), String> {
    let mut series = Vec::new();
    for (i, path) in args.files.iter().enumerate() {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let d = hgrm::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let label = args.labels.get(i).cloned().unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| format!("run{i}"))
        });
        series.push((label, d));
    }
    print!("{}", table(&series, &args.unit));
    if let Some(out) = &args.output {
        let svg = svg::render(&series, &args.title, &args.unit, args.log_y);
        std::fs::write(out, svg).map_err(|e| format!("{}: {e}", out.display()))?;
        println!("chart written to {}", out.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::Histogram;

    fn dist(scale: u64) -> Distribution {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for v in 1..=100_000u64 {
            h.record(v * scale / 100).unwrap();
        }
        hgrm::parse(&hgrm::render(&h)).unwrap()
    }

    #[test]
    fn table_and_chart() {
        let series = vec![
            ("ringmq".to_string(), dist(1)),
            ("mosquitto".to_string(), dist(2)),
        ];
        let t = table(&series, "ms");
        assert!(t.contains("p99.9"), "{t}");
        assert!(t.contains("mosquitto/ringmq"), "{t}");
        assert!(t.contains("2.00x"), "{t}");
        let svg = svg::render(&series, "t", "ms", false);
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("99.99%"));
        let svg_log = svg::render(&series, "t", "ms", true);
        assert!(svg_log.contains("</svg>"));
    }
}
