//! Byte streams under the protocol handler. The connection loop (`net::connection`) is written
//! against [`Transport`], so TLS and WebSocket layers can wrap a TCP stream later without a
//! second copy of the loop.
//!
//! Owns: what a connection needs of its stream beyond reading and writing (the half-close). The
//! keep alive is not a stream deadline: the shard's timers watch it (`engine::connect`).
//! Never: parses MQTT, or holds anything that must not move with a hand-over to another shard.

use futures_lite::{AsyncRead, AsyncWrite};
use std::future::Future;
use std::io;

/// A connection's byte stream.
pub trait Transport: AsyncRead + AsyncWrite + Unpin {
    /// Stop sending, keep reading (a TCP half-close; a TLS layer sends close_notify first).
    fn shutdown_write(&self) -> impl Future<Output = io::Result<()>>;
}

impl Transport for glommio::net::TcpStream {
    async fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
            .await
            .map_err(io::Error::from)
    }
}
