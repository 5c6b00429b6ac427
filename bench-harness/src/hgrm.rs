//! HdrHistogram's percentile-distribution text format (`.hgrm`): written after a run, read back
//! by `compare`.
//!
//! The writer reproduces `AbstractHistogram.outputPercentileDistribution` of the Java
//! HdrHistogram (5 percentile ticks per half distance, `%12.3f %2.12f %10d %14.2f` rows, the
//! last row without the `1/(1-Percentile)` column, and the `#[Mean ...]` footer), so files
//! load in HdrHistogram's own plotter and in wrk2-era tooling. Latencies are recorded in
//! microseconds and written in **milliseconds** (scaling ratio 1000), like wrk2 and the plotter
//! expect. The reader also accepts the CSV variant.

use hdrhistogram::Histogram;
use std::fmt::Write as _;

/// Percentile ticks per half distance, as HdrHistogram's tools use by default.
pub const TICKS_PER_HALF_DISTANCE: u32 = 5;
/// Recorded unit (µs) per written unit (ms).
pub const US_PER_MS: f64 = 1000.0;

/// Sub-bucket count HdrHistogram derives from the significant digits (2048 for 3 digits).
fn sub_bucket_count(sigfig: u8) -> u64 {
    let largest = 2.0 * 10f64.powi(i32::from(sigfig));
    1u64 << (largest.log2().ceil() as u32)
}

/// Render `h` (values in µs) as `.hgrm` text with values in milliseconds.
pub fn render(h: &Histogram<u64>) -> String {
    render_scaled(h, US_PER_MS)
}

/// Render with an arbitrary value scaling ratio (written value = recorded / `scale`).
pub fn render_scaled(h: &Histogram<u64>, scale: f64) -> String {
    let digits = h.sigfig() as usize;
    let mut out = String::new();
    let _ = write!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if !h.is_empty() {
        let mut total: u64 = 0;
        for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / scale;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                let _ = writeln!(
                    out,
                    "{:>12.*} {:>2.12} {:>10} {:>14.2}",
                    digits,
                    value,
                    q,
                    total,
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(out, "{:>12.*} {:>2.12} {:>10}", digits, value, q, total);
            }
        }
    }
    let (mean, stdev) = if h.is_empty() {
        (0.0, 0.0)
    } else {
        (h.mean() / scale, h.stdev() / scale)
    };
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.*}, StdDeviation   = {:>12.*}]",
        digits, mean, digits, stdev
    );
    let _ = writeln!(
        out,
        "#[Max     = {:>12.*}, Total count    = {:>12}]",
        digits,
        h.max() as f64 / scale,
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        sub_bucket_count(h.sigfig())
    );
    out
}

/// One row of a percentile distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    /// Latency in the file's unit (milliseconds for files this tool writes).
    pub value: f64,
    /// 0.0 ..= 1.0
    pub percentile: f64,
    pub total_count: u64,
}

/// A parsed `.hgrm` file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Distribution {
    pub rows: Vec<Row>,
    pub mean: Option<f64>,
    pub stdev: Option<f64>,
    pub max: Option<f64>,
    pub total_count: Option<u64>,
}

impl Distribution {
    /// Value at percentile `p` (0..=1): the first row at or above it, as HdrHistogram's
    /// `getValueAtPercentile` does on the original data.
    pub fn value_at(&self, p: f64) -> Option<f64> {
        if p >= 1.0 {
            return self.max_value();
        }
        self.rows
            .iter()
            .find(|r| r.percentile >= p - 1e-12)
            .or(self.rows.last())
            .map(|r| r.value)
    }

    pub fn max_value(&self) -> Option<f64> {
        self.max.or_else(|| self.rows.last().map(|r| r.value))
    }

    pub fn count(&self) -> u64 {
        self.total_count
            .or_else(|| self.rows.last().map(|r| r.total_count))
            .unwrap_or(0)
    }
}

/// Parse the plain or CSV percentile-distribution format.
pub fn parse(text: &str) -> Result<Distribution, String> {
    let mut d = Distribution::default();
    for (lineno, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(footer) = line.strip_prefix("#[") {
            parse_footer(footer, &mut d);
            continue;
        }
        if line.starts_with('#') || line.starts_with("Value") || line.starts_with("\"Value") {
            continue;
        }
        let fields: Vec<&str> = if line.contains(',') {
            line.split(',').map(str::trim).collect()
        } else {
            line.split_whitespace().collect()
        };
        if fields.len() < 3 {
            return Err(format!("line {}: expected 3 or 4 columns", lineno + 1));
        }
        let num = |s: &str| -> Result<f64, String> {
            s.parse::<f64>()
                .map_err(|_| format!("line {}: {s:?} is not a number", lineno + 1))
        };
        let value = num(fields[0])?;
        let percentile = num(fields[1])?;
        let total_count = num(fields[2])? as u64;
        if !(0.0..=1.0).contains(&percentile) {
            return Err(format!(
                "line {}: percentile {percentile} outside 0..1",
                lineno + 1
            ));
        }
        d.rows.push(Row {
            value,
            percentile,
            total_count,
        });
    }
    if d.rows.is_empty() && d.total_count.unwrap_or(0) > 0 {
        return Err("no percentile rows found".into());
    }
    Ok(d)
}

fn parse_footer(footer: &str, d: &mut Distribution) {
    // "Mean    =        0.123, StdDeviation   =        0.045]"
    for part in footer.trim_end_matches(']').split(',') {
        let Some((k, v)) = part.split_once('=') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "Mean" => d.mean = v.parse().ok(),
            "StdDeviation" => d.stdev = v.parse().ok(),
            "Max" => d.max = v.parse().ok(),
            "Total count" => d.total_count = v.parse().ok(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Histogram<u64> {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for v in 1..=10_000u64 {
            h.record(v).unwrap(); // 1 µs .. 10 ms uniform
        }
        h.record(250_000).unwrap(); // one 250 ms outlier
        h
    }

    #[test]
    fn format_matches_hdrhistogram_layout() {
        let text = render(&sample());
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines.next().unwrap(), "");
        let first = lines.next().unwrap();
        assert_eq!(
            first,
            "       0.001 0.000000000000          1           1.00"
        );
        assert!(text.contains("#[Mean    = "));
        assert!(text.contains(", Total count    =        10001]"));
        assert!(text.contains("SubBuckets     =         2048]"));
        // Last data row: percentile 1.0, no inverse column.
        let last = text
            .lines()
            .rfind(|l| !l.starts_with('#') && !l.is_empty())
            .unwrap();
        assert_eq!(last.split_whitespace().count(), 3, "{last}");
        assert!(last.contains("1.000000000000"));
    }

    #[test]
    fn round_trip_preserves_percentiles() {
        let h = sample();
        let d = parse(&render(&h)).unwrap();
        assert_eq!(d.count(), h.len());
        assert_eq!(d.rows.last().unwrap().total_count, h.len());
        assert!((d.max.unwrap() - h.max() as f64 / 1000.0).abs() < 1e-3);
        assert!((d.mean.unwrap() - h.mean() / 1000.0).abs() < 1e-3);
        for p in [0.5, 0.9, 0.99, 0.999] {
            let want = h.value_at_quantile(p) as f64 / 1000.0;
            let got = d.value_at(p).unwrap();
            assert!(
                (got - want).abs() <= want * 0.002 + 0.001,
                "p{p}: got {got} want {want}"
            );
        }
        assert_eq!(d.value_at(1.0), d.max);
        // Percentiles are non-decreasing, counts cumulative.
        for w in d.rows.windows(2) {
            assert!(w[1].percentile >= w[0].percentile);
            assert!(w[1].total_count >= w[0].total_count);
        }
    }

    #[test]
    fn parses_csv_and_empty() {
        let csv = "\"Value\",\"Percentile\",\"TotalCount\",\"1/(1-Percentile)\"\n\
                   1.000,0.000000000000,1,1.00\n2.000,0.500000000000,5,2.00\n\
                   3.000,1.000000000000,10,Infinity\n";
        let d = parse(csv).unwrap();
        assert_eq!(d.rows.len(), 3);
        assert_eq!(d.value_at(0.5), Some(2.0));
        let empty = Histogram::<u64>::new(3).unwrap();
        let d = parse(&render(&empty)).unwrap();
        assert!(d.rows.is_empty());
        assert_eq!(d.count(), 0);
        assert!(parse("1.0 abc 3\n").is_err());
    }
}
