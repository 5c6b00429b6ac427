//! `ringmq`: parse flags and the config file, report, start the shards; or run a tool subcommand
//! (`ringmq passwd`, `ringmq admin`, `ringmq ctl`). Nothing else.

use clap::Parser;
use ringmq::config::{Cli, Command, Config};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let no_thp = ringmq::host::no_huge_pages_unless_asked();
    let cli = Cli::parse();
    if let Some(Command::Passwd(args)) = &cli.command {
        match ringmq::auth::passwd_cmd::run(args) {
            Ok(()) => std::process::exit(0),
            Err(e) => {
                eprintln!("ringmq passwd: {e}");
                std::process::exit(1);
            }
        }
    }
    if let Some(Command::Ctl(args)) = &cli.command {
        match ringmq::admin::ctl::run(args) {
            Ok(out) => {
                println!("{out}");
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!("ringmq ctl: {e}");
                std::process::exit(1);
            }
        }
    }
    let cfg = match Config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ringmq: configuration error: {e}");
            std::process::exit(2);
        }
    };
    if let Some(Command::Admin(cmd)) = &cli.command {
        match ringmq::admin::run(cmd, &cfg) {
            Ok(out) => {
                println!("{out}");
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!("ringmq admin: {e}");
                std::process::exit(1);
            }
        }
    }
    // Passwords, ACL and JWT keys: a file that does not load stops the start with its error.
    let security = match ringmq::auth::security::Security::load(&cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ringmq: configuration error: {e}");
            std::process::exit(2);
        }
    };
    env_logger::Builder::new()
        .parse_filters(&cfg.log_level)
        .format_timestamp_millis()
        .init();
    ringmq::host::report(&cfg);
    match no_thp {
        None => log::info!("transparent huge pages left to mimalloc (MIMALLOC_ALLOW_THP is set)"),
        Some(false) => log::warn!("could not turn transparent huge pages off for the heap"),
        Some(true) => {}
    }
    for line in security.describe(&cfg) {
        log::info!("{line}");
    }
    let stop = ringmq::host::stop_signals();
    match ringmq::shard::runtime::run(cfg, security, stop) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            log::error!("{e}");
            eprintln!("ringmq: {e}");
            std::process::exit(1);
        }
    }
}
