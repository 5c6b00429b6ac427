//! Byte streams under the protocol engine. The connection loop (`net::connection`) is written
//! against [`Transport`], so TLS (here, [`tls`]) and WebSocket layers wrap a TCP stream without
//! a second copy of the loop.
//!
//! Owns: what a connection needs of its stream beyond reading and writing (the half-close), and
//! what a freshly accepted stream gives up to move to its home shard ([`Accepted`]). The keep
//! alive is not a stream deadline: the shard's timers watch it (`engine::connect`).
//! Never: parses MQTT, or holds anything that must not move with a hand-over to another shard.

pub mod tls;

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A connection's byte stream.
pub trait Transport: AsyncRead + AsyncWrite + Unpin {
    /// Stop sending, keep reading (a TCP half-close; TLS sends close_notify first).
    fn shutdown_write(&mut self) -> impl Future<Output = io::Result<()>>;
}

impl Transport for TcpStream {
    async fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
            .await
            .map_err(io::Error::from)
    }
}

/// A stream just accepted on some shard, which may have to move to the client id's home.
pub trait Accepted: Transport + Sized {
    /// The socket (a duplicate, so dropping the rest does not close it) and the TLS state.
    fn into_hand_over(self) -> io::Result<(OwnedFd, Option<tls::TlsState>)>;

    /// The verified client certificate's Common Name (TLS with client certificates).
    fn identity(&self) -> Option<String> {
        None
    }
}

fn dup(fd: &impl AsRawFd) -> io::Result<OwnedFd> {
    // SAFETY: dup of a descriptor we own; the new descriptor is owned by the result.
    let n = unsafe { libc::dup(fd.as_raw_fd()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `n` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

impl Accepted for TcpStream {
    fn into_hand_over(self) -> io::Result<(OwnedFd, Option<tls::TlsState>)> {
        Ok((dup(&self)?, None))
    }
}

impl Accepted for tls::TlsStream<TcpStream> {
    fn into_hand_over(self) -> io::Result<(OwnedFd, Option<tls::TlsState>)> {
        let (io, state) = self.into_parts();
        Ok((dup(&io)?, Some(state)))
    }

    fn identity(&self) -> Option<String> {
        crate::tls::identity(self.connection())
    }
}
