//! Byte streams under the protocol handler. The connection loop (`net::connection`) is written
//! against [`Transport`], so TLS and WebSocket layers can wrap a TCP stream later without a
//! second copy of the loop.
//!
//! Owns: what a connection needs of its stream beyond reading and writing (the keep-alive read
//! deadline, the half-close).
//! Never: parses MQTT, or holds anything that must not move with a hand-over to another shard.

use futures_lite::{AsyncRead, AsyncWrite};
use std::future::Future;
use std::io;
use std::time::Duration;

/// A connection's byte stream.
pub trait Transport: AsyncRead + AsyncWrite + Unpin {
    /// Fail a read with [`io::ErrorKind::TimedOut`] when nothing arrives for `timeout` (the
    /// keep alive); `None` turns it off.
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;

    /// Stop sending, keep reading (a TCP half-close; a TLS layer sends close_notify first).
    fn shutdown_write(&self) -> impl Future<Output = io::Result<()>>;
}

impl Transport for glommio::net::TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        glommio::net::TcpStream::set_read_timeout(self, timeout).map_err(io::Error::from)
    }

    async fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
            .await
            .map_err(io::Error::from)
    }
}
