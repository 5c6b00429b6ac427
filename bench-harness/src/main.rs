//! `ringmq-bench` entry point: parse the command line, run the scenario or tool, print.

use clap::Parser;
use ringmq_bench::cli::{BrokerArgs, Cli, Command, LoadArgs, OutputArgs};
use ringmq_bench::engine::{self, Settings};
use ringmq_bench::scenario::{self, Plan, StalledShape, WildcardShape};
use ringmq_bench::{compare, net, probe, report, summarize, sysinfo};
use std::process::ExitCode;
use std::time::Duration;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Short id making this run's client ids and topics unique (no cross-talk between runs).
fn run_id() -> String {
    let x = ringmq_bench::clock::now_ns() ^ (u64::from(std::process::id()) << 32);
    let x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("{:06x}", (x >> 40) & 0xFF_FFFF)
}

fn settings(
    b: &BrokerArgs,
    l: Option<&LoadArgs>,
    o: &OutputArgs,
    run: &str,
) -> Result<Settings, String> {
    let broker = net::resolve(&b.host, b.port).map_err(|e| format!("{}: {e}", b.host))?;
    let (warmup, duration) = l
        .map(|l| (l.warmup, l.duration))
        .unwrap_or((Duration::ZERO, Duration::ZERO));
    let progress = match o.progress {
        Some(d) if d.is_zero() => None,
        Some(d) => Some(d),
        None if o.quiet => None,
        None if warmup + duration >= Duration::from_secs(5) => Some(Duration::from_secs(1)),
        None => None,
    };
    let qos = l.map(|l| l.qos).unwrap_or(0);
    Ok(Settings {
        broker,
        protocol: b.protocol,
        username: b.username.clone().map(Into::into),
        password: b.password.clone().map(Into::into),
        keepalive_s: b.keepalive,
        persistent: b.persistent,
        qos: ringmq_codec::QoS::from_u8(qos).ok_or("--qos must be 0, 1 or 2")?,
        payload_bytes: l.map(|l| l.payload_bytes).unwrap_or(16),
        warmup,
        duration,
        drain: l.map(|l| l.drain).unwrap_or(Duration::ZERO),
        rate: l.and_then(|l| l.rate),
        inflight: l.map(|l| l.inflight).unwrap_or(64),
        e2e_window: !l.is_some_and(|l| l.no_e2e_window),
        timeline: l.is_some_and(|l| l.timeline),
        count: l.and_then(|l| l.count),
        threads: l
            .and_then(|l| l.threads)
            .unwrap_or_else(sysinfo::available_cpus),
        connect_concurrency: l.map(|l| l.connect_concurrency).unwrap_or(256),
        settle: l.map(|l| l.settle).unwrap_or(Duration::ZERO),
        setup_timeout: l
            .map(|l| l.setup_timeout)
            .unwrap_or(Duration::from_secs(120)),
        sources: Vec::new(),
        sub_batch: l.map(|l| l.sub_batch).unwrap_or(100),
        spin: l.is_some_and(|l| l.spin),
        hiccups: l.is_some_and(|l| l.hiccups),
        max_packet: 268_435_460,
        progress,
        broker_pid: b.broker_pid,
        run_id: run.to_string(),
        tls: ringmq_bench::tls::from_args(b)?,
        ws: ringmq_bench::ws::from_args(b)?,
    })
}

/// Exit status of a run whose broker acknowledged messages it never delivered, with
/// `--fail-on-loss`.
const EXIT_LOSS: u8 = 3;

/// What a finished run tells `main` beyond success.
enum Ran {
    Clean,
    /// Acknowledged messages were lost and `--fail-on-loss` asked for a failing status.
    Loss,
}

fn execute(settings: Settings, plan: Plan, o: &OutputArgs) -> Result<Ran, String> {
    let scenario = plan.scenario;
    let run = settings.run_id.clone();
    let outputs = report::output_paths(
        o.json.as_deref(),
        o.hgrm.as_deref(),
        o.out_dir.as_deref(),
        o.label.as_deref(),
        scenario,
        &run,
    )
    .map_err(|e| format!("output directory: {e}"))?;
    if !o.quiet {
        eprintln!(
            "ringmq-bench {scenario}: {} → {} (run {run})",
            plan.description, settings.broker
        );
    }
    let outcome = engine::run(settings, plan)?;
    let mut r = report::build(&outcome, o.label.clone());
    let hist = if scenario == "conns" {
        &outcome.connect_latency
    } else {
        &outcome.latency
    };
    let line = report::write_outputs(&mut r, hist, &outputs)
        .map_err(|e| format!("writing results: {e}"))?;
    if !o.quiet {
        print!("{}", report::human(&r));
    }
    println!("{line}");
    if o.fail_on_loss && r.lost_acked > 0 {
        eprintln!(
            "ringmq-bench: LOSS: {} acknowledged messages never delivered (--fail-on-loss)",
            r.lost_acked
        );
        return Ok(Ran::Loss);
    }
    Ok(Ran::Clean)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    sysinfo::raise_nofile_limit();
    let run = run_id();
    let result = match &cli.command {
        Command::Pairs(a) => settings(&a.broker, Some(&a.load), &a.output, &run).and_then(|s| {
            let plan = scenario::pairs(a.pairs, a.load.topic.as_deref(), &run)?;
            execute(s, plan, &a.output)
        }),
        Command::Fanin(a) => settings(&a.broker, Some(&a.load), &a.output, &run).and_then(|s| {
            let plan = scenario::fanin(
                a.publishers,
                a.subscribers,
                a.load.topic.as_deref(),
                a.filter.as_deref(),
                &run,
            )?;
            execute(s, plan, &a.output)
        }),
        Command::Fanout(a) => settings(&a.broker, Some(&a.load), &a.output, &run).and_then(|s| {
            let plan = scenario::fanout(a.publishers, a.subscribers, a.load.topic.as_deref(), &run)?;
            execute(s, plan, &a.output)
        }),
        Command::Wildcard(a) => {
            settings(&a.broker, Some(&a.load), &a.output, &run).and_then(|s| {
                let shape = WildcardShape {
                    filters: a.filters,
                    subscribers: a.subscribers,
                    publishers: a.publishers,
                    hit_fraction: a.hit_fraction,
                    miss_ratio: a.miss_ratio,
                    mix: scenario::parse_mix(&a.mix)?,
                    prefix: a.prefix.clone(),
                };
                let plan = scenario::wildcard(&shape, &run)?;
                execute(s, plan, &a.output)
            })
        }
        Command::Stalled(a) => settings(&a.broker, Some(&a.load), &a.output, &run).and_then(|mut s| {
            s.timeline = true;
            let shape = StalledShape {
                pairs: a.pairs,
                stalled_publishers: a.stalled_publishers,
                stalled_subscribers: a.stalled_subscribers,
                stalled_qos: a.stalled_qos,
                prefix: a.prefix.clone(),
            };
            let plan = scenario::stalled(&shape, &run)?;
            execute(s, plan, &a.output)
        }),
        Command::Conns(a) => settings(&a.broker, None, &a.output, &run).and_then(|mut s| {
            let limit = sysinfo::raise_nofile_limit();
            if a.connections as u64 + 64 > limit {
                eprintln!(
                    "warning: {} connections but the open-files limit is {limit}; raise it (ulimit -n, see tuning/)",
                    a.connections
                );
            }
            let n_src = a
                .source_ips
                .unwrap_or_else(|| net::sources_needed(a.connections));
            s.sources = net::loopback_sources(n_src);
            s.duration = a.hold;
            s.connect_concurrency = a.connect_concurrency;
            s.threads = a.threads.unwrap_or_else(sysinfo::available_cpus);
            s.setup_timeout = a.setup_timeout;
            if s.progress.is_none() && a.output.progress.is_none() && !a.output.quiet {
                s.progress = Some(Duration::from_secs(1));
            }
            let plan = scenario::conns(a.connections)?;
            execute(s, plan, &a.output)
        }),
        Command::Compare(a) => compare::run(a).map(|()| Ran::Clean),
        Command::Summarize(a) => summarize::run(a).map(|()| Ran::Clean),
        Command::Probe(a) => probe::run(a).map(|()| Ran::Clean),
    };
    match result {
        Ok(Ran::Clean) => ExitCode::SUCCESS,
        Ok(Ran::Loss) => ExitCode::from(EXIT_LOSS),
        Err(e) => {
            eprintln!("ringmq-bench: {e}");
            ExitCode::from(2)
        }
    }
}
