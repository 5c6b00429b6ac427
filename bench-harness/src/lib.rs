//! ringmq-bench: a load generator for MQTT brokers.
//!
//! It drives any MQTT 3.1.1 / 5.0 broker (ringmq, Mosquitto, EMQX, ...) with publisher and
//! subscriber connections living in this one process, so every message can carry a send
//! timestamp from a clock shared by sender and receiver. Latency is measured end to end
//! (publisher → broker → subscriber) into HdrHistograms, and every message carries a
//! per-stream sequence number so loss, duplication and reordering are counted exactly.
//!
//! Layout (each module's doc says what it owns):
//! - [`cli`]: command-line definitions (clap derive) and duration parsing.
//! - [`scenario`]: turns a scenario's flags into a [`scenario::Plan`]: who publishes what
//!   topic, who subscribes to which filters, and which streams each subscriber must receive.
//! - [`engine`]: I/O worker threads (mio + timerfd) driving many connections each; the run's
//!   phases (setup → warm-up → measure → drain) and the coordination between threads.
//! - [`client`]: one MQTT client connection: state machine, QoS 1/2 flows, packet ids.
//! - [`payload`]: the 16-byte header (stream id, sequence, timestamp) at the front of payloads.
//! - [`stats`]: per-stream sequence tracking (lost / duplicate / out-of-order).
//! - [`report`]: the result of a run, its human summary and its JSON line.
//! - [`hgrm`]: HdrHistogram percentile-distribution text format, written and parsed.
//! - [`compare`] and [`svg`]: the `compare` subcommand (table + latency-by-percentile chart).
//! - [`summarize`]: medians and ratios over many runs' JSON lines (used by `sidebyside.sh`).
//! - [`timeline`]: per-second counters per publisher group (`--timeline`, `stalled`).
//! - [`sysinfo`]: getrusage, /proc readings of the broker, rlimits.
//! - [`net`]: socket creation (source-address binding, TCP_NODELAY).
//! - [`tls`]: the rustls client configuration of `--tls` runs (CA, server name, no resumption).
//! - [`ws`]: the client side of RFC 6455 for `--ws` runs (upgrade, masked frames, streaming decode).
//! - [`clock`]: the shared monotonic clock and the per-thread precise timer.
//! - [`probe`]: a one-shot CONNECT/CONNACK check used to wait for a broker to come up.

pub mod cli;
pub mod client;
pub mod clock;
pub mod compare;
pub mod engine;
pub mod hgrm;
pub mod net;
pub mod payload;
pub mod probe;
pub mod report;
pub mod scenario;
pub mod stats;
pub mod summarize;
pub mod svg;
pub mod sysinfo;
pub mod timeline;
pub mod tls;
pub mod ws;
