//! `ringmq`: parse flags and the config file, report, start the shards. Nothing else.

use clap::Parser;
use ringmq::config::{Cli, Config};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    let cfg = match Config::load(&cli) {
        Ok(c) => c,
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
    let stop = ringmq::host::stop_signals();
    match ringmq::shard::runtime::run(cfg, stop) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            log::error!("{e}");
            eprintln!("ringmq: {e}");
            std::process::exit(1);
        }
    }
}
