//! Sockets: the per-shard SO_REUSEPORT listeners and the connection tasks that read packets,
//! hand them to the protocol handler and write what sessions queued.
//!
//! Never: holds a `RefCell` borrow of the shard or a session across an `.await`.

mod close;
pub mod connection;
mod handler;
pub mod listener;
mod open;
mod subscribe;
