//! Subscription automaton: match cost at 10k / 100k / 1M filters, and insert cost.
//!
//! Filter mix (what a fleet of device dashboards and collectors looks like): 90% exact
//! `site/{s}/device/{d}/temp`, 8% `site/{s}/+/{d}/temp`, 2% `#` filters (`site/{s}/#` once per
//! site, the rest `site/{s}/device/{d}/#`). Topics are depth 5; a quarter of them miss (unknown
//! last level, unknown device, or unknown root).
//!
//! `cargo bench --bench automaton -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use ringmq::topic::Automaton;

/// Sites per subscription count: ~1000 filters under each site.
fn sites(n: usize) -> usize {
    (n / 1000).max(10)
}

fn filters(n: usize) -> impl Iterator<Item = String> {
    let s = sites(n);
    let (exact, plus) = (n * 90 / 100, n * 8 / 100);
    let hash = n - exact - plus;
    let exact = (0..exact).map(move |k| format!("site/{}/device/{}/temp", k % s, k / s));
    let plus = (0..plus).map(move |k| format!("site/{}/+/{}/temp", k % s, k / s));
    let hash = (0..hash).map(move |k| {
        if k < s {
            format!("site/{k}/#")
        } else {
            format!("site/{}/device/{}/#", k % s, k / s)
        }
    });
    exact.chain(plus).chain(hash)
}

/// 1024 depth-5 topics: 3/4 hit (an existing device's temp), 1/4 miss in three ways.
fn topics(n: usize) -> Vec<String> {
    let s = sites(n);
    let devices = n * 90 / 100 / s;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |m: usize| {
        // xorshift: deterministic, no dependency.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % m as u64) as usize
    };
    (0..1024)
        .map(|i| {
            let (site, dev) = (next(s), next(devices));
            match i % 8 {
                0 => format!("site/{site}/device/{dev}/humidity"),
                1 => format!("site/{site}/device/{}/temp", devices + dev),
                2 if i % 16 == 2 => format!("other/{site}/device/{dev}/temp"),
                _ => format!("site/{site}/device/{dev}/temp"),
            }
        })
        .collect()
}

fn build<S: AsRef<str>>(filters: impl Iterator<Item = S>) -> Automaton<u64> {
    let mut a = Automaton::new();
    for (i, f) in filters.enumerate() {
        *a.entry(f.as_ref()) = i as u64;
    }
    a
}

/// Resident set size in MiB (Linux), to report what a tree costs.
fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split(' ')
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

const SIZES: [(usize, &str); 3] = [(10_000, "10k"), (100_000, "100k"), (1_000_000, "1M")];

fn matching(c: &mut Criterion) {
    let mut g = c.benchmark_group("match");
    g.throughput(Throughput::Elements(1));
    for (n, label) in SIZES {
        let (rss, started) = (rss_mib(), std::time::Instant::now());
        let a = build(filters(n));
        let (built, rss) = (started.elapsed(), rss_mib() - rss);
        let ts = topics(n);
        let mut hits = 0usize;
        for t in &ts {
            a.for_each_match(t, |_| hits += 1);
        }
        eprintln!(
            "{label}: {} filters, {} nodes, {} levels, built in {built:.2?}, +{rss:.0} MiB RSS, \
             {:.2} matches/topic",
            a.len(),
            a.node_count(),
            a.level_count(),
            hits as f64 / ts.len() as f64
        );
        let mut i = 0;
        g.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                let mut sum = 0u64;
                a.for_each_match(black_box(&ts[i]), |v| sum = sum.wrapping_add(*v));
                sum
            })
        });
    }
    g.finish();
}

/// Build cost per filter, and the steady-state churn of one subscribe + unsubscribe on a tree
/// of each size.
fn inserting(c: &mut Criterion) {
    let mut g = c.benchmark_group("insert");
    for (n, label) in SIZES {
        let fs: Vec<String> = filters(n).collect();
        if n <= 100_000 {
            g.throughput(Throughput::Elements(n as u64));
            g.sample_size(10);
            g.bench_function(BenchmarkId::new("build", label), |b| {
                b.iter_batched(|| (), |()| build(fs.iter()), BatchSize::PerIteration)
            });
        }
        let mut a = build(fs.into_iter());
        let churn: Vec<String> = (0..1024)
            .map(|k| format!("site/{}/device/new{k}/temp", k % sites(n)))
            .collect();
        let mut i = 0;
        g.throughput(Throughput::Elements(1));
        g.sample_size(50);
        g.bench_function(BenchmarkId::new("subscribe+unsubscribe", label), |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                let f = &churn[i];
                *a.entry(f) = 1;
                a.remove(black_box(f))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, matching, inserting);
criterion_main!(benches);
