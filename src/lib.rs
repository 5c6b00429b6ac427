//! ringmq: a thread-per-core MQTT 3.1 / 3.1.1 / 5.0 broker on io_uring (glommio).
//!
//! Crate map (dependencies point one way: codec ← topic ← session ← shard/net):
//! - [`codec`]: sans-IO MQTT codec (its own crate, `ringmq-codec`, re-exported here).
//! - [`topic`]: the per-shard subscription automaton and retained index; never does I/O.
//! - [`session`]: per-client MQTT state (QoS flows, inflight window, bounded queue); no sockets.
//! - [`shard`]: what one core owns and routes; cross-shard effects are messages, never locks.
//! - [`transport`]: the byte-stream trait connections are served over: TCP, TLS (rustls) and
//!   WebSocket (our own sans-IO frame codec), each movable to the home shard as a value.
//! - [`engine`]: the sans-IO MQTT protocol engine of one connection: packets in, packets,
//!   routing, gated acknowledgements, timers and closes out; no sockets, no glommio.
//! - [`net`]: listeners and connection tasks; the only place sockets are read and written.
//! - [`clock`]: the compact monotonic millisecond clock connections keep their last read in.
//! - [`control`]: the control thread and its channels to the shards (statistics, shutdown);
//!   never on the data path.
//! - [`auth`]: who may connect and what they may touch: Mosquitto password and ACL files, JWT,
//!   MQTT 5 enhanced authentication (SCRAM-SHA-256); sans-IO, immutable state swapped on reload.
//! - [`store`]: the per-shard durable log (group commit, segments, recovery); never interprets
//!   what it stores or blocks the message loop on the disk.
//! - [`sys`]: the broker's own topics: the retained `$SYS/broker` tree (computed on the control
//!   thread, set through the retained path, never journaled) and client online/offline events.
//! - [`config`], [`limits`]: configuration and every bound the broker enforces.
//! - [`listeners`]: the listeners to open (`[[listener]]`, `--bind`, the loopback default).
//! - [`tls`]: rustls server configurations of `mqtts` listeners; never on the data path.
//! - [`host`]: start-up checks of host limits (open files, memlock, somaxconn).
//! - [`http`]: the admin HTTP API, /metrics and dashboard assets, on a control-plane thread of
//!   its own (hyper on a current-thread tokio runtime); never on a shard.
//! - [`admin`]: the admin users file (`ringmq admin ...`) and `ringmq ctl`, the command line
//!   over the admin API.
//! - [`web`]: the browser apps embedded in the binary (chat demo, dashboard) and their paths.

pub use ringmq_codec as codec;

pub mod admin;
pub mod auth;
pub mod clock;
pub mod config;
pub mod control;
pub mod engine;
pub mod host;
pub mod http;
pub mod limits;
pub mod listeners;
pub mod net;
pub mod session;
pub mod shard;
pub mod store;
pub mod sys;
pub mod tls;
pub mod topic;
pub mod transport;
pub mod web;
