//! A hand-written SVG chart of latency by percentile, in the style of HdrHistogram's plotter:
//! the x axis is `log10(1 / (1 − percentile))`, so 90%, 99%, 99.9%... are evenly spaced and the
//! tail gets as much room as the median.

use crate::hgrm::Distribution;
use std::fmt::Write as _;

const W: f64 = 980.0;
const H: f64 = 560.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 240.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 70.0;
const COLORS: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// x coordinate (in decades) of a percentile; the 100% row is placed at the resolution the
/// sample count allows (1 / count).
pub fn x_of(percentile: f64, count: u64) -> f64 {
    let cap = (count.max(10) as f64).log10();
    if percentile >= 1.0 {
        cap
    } else {
        (1.0 / (1.0 - percentile)).log10().min(cap)
    }
}

/// "90%", "99.9%"... for decade `k`.
pub fn decade_label(k: u32) -> String {
    if k == 0 {
        return "0%".into();
    }
    match k {
        1 => "90%".into(),
        2 => "99%".into(),
        _ => format!("99.{}%", "9".repeat(k as usize - 2)),
    }
}

/// A "nice" upper bound ≥ v (1, 2, 2.5, 5 × 10^n).
pub fn nice_ceil(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * mag >= v * 0.999_999 {
            return m * mag;
        }
    }
    10.0 * mag
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Render the chart.
pub fn render(series: &[(String, Distribution)], title: &str, unit: &str, log_y: bool) -> String {
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let xmax = series
        .iter()
        .flat_map(|(_, d)| d.rows.iter().map(move |r| x_of(r.percentile, d.count())))
        .fold(2.0f64, f64::max)
        .ceil();
    let vmax = series
        .iter()
        .flat_map(|(_, d)| d.rows.iter().map(|r| r.value))
        .fold(0.0f64, f64::max);
    let vmin_pos = series
        .iter()
        .flat_map(|(_, d)| d.rows.iter().map(|r| r.value))
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let (ylo, yhi) = if log_y {
        let lo = if vmin_pos.is_finite() {
            10f64.powf(vmin_pos.log10().floor())
        } else {
            0.001
        };
        (lo, 10f64.powf(vmax.max(lo * 10.0).log10().ceil()))
    } else {
        (0.0, nice_ceil(vmax))
    };
    let sx = |x: f64| LEFT + x / xmax * pw;
    let sy = |v: f64| {
        let f = if log_y {
            (v.max(ylo).log10() - ylo.log10()) / (yhi.log10() - ylo.log10())
        } else {
            (v - ylo) / (yhi - ylo)
        };
        TOP + ph - f.clamp(0.0, 1.0) * ph
    };

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="Helvetica, Arial, sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="28" font-size="16" text-anchor="middle" font-weight="bold">{}</text>"#,
        LEFT + pw / 2.0,
        esc(title)
    );
    // Grid and x ticks.
    for k in 0..=(xmax as u32) {
        let x = sx(f64::from(k));
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/>"##,
            TOP + ph
        );
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            TOP + ph + 18.0,
            decade_label(k)
        );
    }
    // y ticks.
    let yticks: Vec<f64> = if log_y {
        let mut v = Vec::new();
        let mut t = ylo;
        while t <= yhi * 1.000_001 {
            v.push(t);
            t *= 10.0;
        }
        v
    } else {
        (0..=5).map(|i| yhi * f64::from(i) / 5.0).collect()
    };
    for t in yticks {
        let y = sy(t);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
            LEFT + pw
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 8.0,
            y + 4.0,
            fmt_tick(t)
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">Percentile</text>"#,
        LEFT + pw / 2.0,
        H - 22.0
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(22 {:.1}) rotate(-90)" text-anchor="middle">Latency ({})</text>"#,
        TOP + ph / 2.0,
        esc(unit)
    );
    // Curves and legend.
    for (i, (label, d)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> = d
            .rows
            .iter()
            .map(|r| {
                format!(
                    "{:.1},{:.1}",
                    sx(x_of(r.percentile, d.count())),
                    sy(r.value)
                )
            })
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            pts.join(" ")
        );
        let ly = TOP + 10.0 + i as f64 * 38.0;
        let lx = LEFT + pw + 16.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/>"#,
            lx + 24.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}">{}</text>"#,
            lx + 30.0,
            ly + 4.0,
            esc(label)
        );
        let p99 = d.value_at(0.99).unwrap_or(0.0);
        let max = d.max_value().unwrap_or(0.0);
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" fill="#555" font-size="11">p99 {} · max {} {}</text>"##,
            lx + 30.0,
            ly + 19.0,
            fmt_tick(p99),
            fmt_tick(max),
            esc(unit)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn fmt_tick(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{}", (v * 100.0).round() / 100.0)
    } else {
        format!("{}", (v * 1000.0).round() / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_helpers() {
        assert_eq!(decade_label(0), "0%");
        assert_eq!(decade_label(1), "90%");
        assert_eq!(decade_label(2), "99%");
        assert_eq!(decade_label(3), "99.9%");
        assert_eq!(decade_label(5), "99.999%");
        assert!((x_of(0.99, 1_000_000) - 2.0).abs() < 1e-9);
        assert!((x_of(1.0, 1000) - 3.0).abs() < 1e-9);
        assert_eq!(nice_ceil(0.37), 0.5);
        assert_eq!(nice_ceil(3.0), 5.0);
        assert_eq!(nice_ceil(10.0), 10.0);
        assert_eq!(nice_ceil(120.0), 200.0);
    }
}
