//! Sockets: the per-shard SO_REUSEPORT listeners and the connection tasks that read packets,
//! hand them to the protocol engine ([`crate::engine`]) and write what sessions queued.
//!
//! Never: holds a `RefCell` borrow of the shard or a session across an `.await`, or makes a
//! protocol decision (that is the engine's).

mod accept;
pub mod admission;
pub mod arrival;
pub mod connection;
pub mod dormant;
mod handshake;
pub mod listener;
mod read_chunk;
