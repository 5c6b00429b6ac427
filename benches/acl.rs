//! ACL check cost (issue 9: "no more than one automaton-style lookup per message") at 10k rules:
//! the per-PUBLISH write check and the per-delivery read check, for a user with 10k own rules
//! (90% exact, 8% `+`, 2% `#`, plus 200 denies; topics 5 levels deep, a quarter on a level no
//! rule names), for a user with only patterns, and, for scale, 10k users of 10 rules each.
//!
//! `cargo bench --bench acl -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringmq::auth::acl::{Access, Acl};

fn one_user_10k_rules() -> String {
    let mut t = String::from("user u\n");
    for k in 0..10_000 {
        // 100 sites x 100 devices; by device: 90% exact, 8% `+`, 2% `#`.
        let (site, dev) = (k % 100, k / 100);
        let line = match dev {
            0..=89 => format!("topic readwrite site/{site}/device/{dev}/temp\n"),
            90..=97 => format!("topic read site/{site}/+/{dev}/temp\n"),
            _ => format!("topic readwrite site/{site}/device/{dev}/#\n"),
        };
        t.push_str(&line);
        if k % 50 == 0 {
            t.push_str(&format!("topic deny site/{site}/device/{dev}/secret\n"));
        }
    }
    t.push_str("pattern readwrite clients/%c/#\npattern read users/%u/#\n");
    t
}

fn many_users() -> String {
    let mut t = String::new();
    for u in 0..10_000 {
        t.push_str(&format!("user u{u}\n"));
        for r in 0..10 {
            t.push_str(&format!("topic readwrite home/u{u}/{r}/#\n"));
        }
    }
    t
}

fn topics() -> Vec<String> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (site, dev) = (x % 100, (x >> 8) % 100);
            match x % 4 {
                0 => format!("site/{site}/device/{dev}/humidity"),
                _ => format!("site/{site}/device/{dev}/temp"),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let acl = Acl::parse(&one_user_10k_rules()).expect("bench ACL parses");
    let ts = topics();
    let mut g = c.benchmark_group("acl_10k_rules");
    g.throughput(Throughput::Elements(ts.len() as u64));
    g.bench_function("publish_write_check", |b| {
        b.iter(|| {
            for t in &ts {
                black_box(acl.check(Some("u"), "dev-1", black_box(t), Access::Write));
            }
        })
    });
    g.bench_function("delivery_read_check", |b| {
        b.iter(|| {
            for t in &ts {
                black_box(acl.check(Some("u"), "dev-1", black_box(t), Access::Read));
            }
        })
    });
    let own: Vec<String> = (0..1024).map(|i| format!("clients/dev-1/{i}/x")).collect();
    g.bench_function("patterns_only_user", |b| {
        b.iter(|| {
            for t in &own {
                black_box(acl.check(Some("nobody"), "dev-1", black_box(t), Access::Write));
            }
        })
    });
    g.finish();

    let acl = Acl::parse(&many_users()).expect("bench ACL parses");
    let ts: Vec<(String, String)> = (0..1024u32)
        .map(|i| {
            (
                format!("u{}", i * 7 % 10_000),
                format!("home/u{}/{}/x", i * 7 % 10_000, i % 12),
            )
        })
        .collect();
    let mut g = c.benchmark_group("acl_10k_users_100k_rules");
    g.throughput(Throughput::Elements(ts.len() as u64));
    g.bench_function("publish_write_check", |b| {
        b.iter(|| {
            for (u, t) in &ts {
                black_box(acl.check(Some(u), "c", black_box(t), Access::Write));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
