//! Fuzz the configuration parser: any text must parse or fail with an error, never panic, and a
//! configuration that parses must validate or fail with an error too (including its listener
//! tables, ban list and limits).

#![no_main]

use libfuzzer_sys::fuzz_target;
use ringmq::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = Config::from_toml(text) {
        if cfg.validate().is_ok() {
            let _ = cfg.listeners();
            let _ = ringmq::net::admission::Admission::from_config(&cfg);
        }
    }
});
