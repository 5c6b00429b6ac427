//! Byte streams under the protocol engine. The connection loop (`net::connection`) is written
//! against [`Transport`], so TLS ([`tls`]) and WebSocket ([`ws`]) layers wrap a TCP stream (or,
//! for `wss`, WebSocket wraps TLS) without a second copy of the loop. A kTLS connection
//! ([`ktls`]) is TLS in the kernel after the handshake: a TCP socket again to everything above.
//!
//! Owns: what a connection needs of its stream beyond reading and writing (the half-close), and
//! what a freshly accepted stream gives up to move to its home shard ([`Accepted`]). The keep
//! alive is not a stream deadline: the shard's timers watch it (`engine::connect`).
//! Never: parses MQTT, or holds anything that must not move with a hand-over to another shard.

pub mod ktls;
pub mod tls;
pub mod ws;

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A connection's byte stream.
pub trait Transport: AsyncRead + AsyncWrite + Unpin {
    /// Stop sending, keep reading (a TCP half-close; TLS sends close_notify first).
    fn shutdown_write(&mut self) -> impl Future<Output = io::Result<()>>;

    /// The socket under every layer, for the admin API's `getpeername` (`-1` if none).
    fn socket_fd(&self) -> std::os::fd::RawFd;

    /// `poll_write_vectored` sends all its buffers in one call, so large payloads may be
    /// queued by reference (`session::out`). A layer that frames each write (TLS records,
    /// WebSocket frames) says no: one contiguous buffer makes fewer frames.
    const VECTORED: bool = false;

    /// Whether an idle connection on this stream may sleep without its task (`net::dormant`):
    /// only a plain TCP socket, whose whole state is in the kernel.
    const DOZES: bool = false;

    /// The socket for a sleeping connection, or the stream back if it cannot give it up.
    fn into_dormant(self) -> Result<OwnedFd, Self>
    where
        Self: Sized,
    {
        Err(self)
    }
}

impl Transport for TcpStream {
    // vendor/glommio item 7: one sendmsg for all the buffers.
    const VECTORED: bool = true;
    const DOZES: bool = true;

    fn into_dormant(self) -> Result<OwnedFd, Self> {
        // A duplicate: dropping the stream cancels its read poll and closes the original.
        match dup(&self) {
            Ok(fd) => Ok(fd),
            Err(e) => {
                log::debug!("dup for a sleeping connection failed: {e}");
                Err(self)
            }
        }
    }

    async fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
            .await
            .map_err(io::Error::from)
    }

    fn socket_fd(&self) -> std::os::fd::RawFd {
        self.as_raw_fd()
    }
}

/// What a stream gives up to move to another shard: the socket and its layers' state.
pub struct Detached {
    /// A duplicate, so dropping the rest of the stream does not close it.
    pub fd: OwnedFd,
    pub tls: Option<tls::TlsState>,
    pub ws: Option<Box<ws::WsState>>,
    /// The socket's TLS keys are in the kernel (kTLS): the home shard reads it as a
    /// [`ktls::KtlsStream`], which turns the kernel's alerts into end of stream or errors.
    pub ktls: bool,
}

/// A stream just accepted on some shard, which may have to move to the client id's home.
pub trait Accepted: Transport + Sized {
    fn into_hand_over(self) -> io::Result<Detached>;

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
    fn into_hand_over(self) -> io::Result<Detached> {
        Ok(Detached {
            fd: dup(&self)?,
            tls: None,
            ws: None,
            ktls: false,
        })
    }
}

impl Accepted for ktls::KtlsStream {
    fn into_hand_over(self) -> io::Result<Detached> {
        Ok(Detached {
            fd: dup(self.get_ref())?,
            tls: None,
            ws: None,
            ktls: true,
        })
    }

    fn identity(&self) -> Option<String> {
        ktls::KtlsStream::identity(self)
    }
}

impl Accepted for tls::TlsStream<TcpStream> {
    fn into_hand_over(self) -> io::Result<Detached> {
        let (io, state) = self.into_parts();
        Ok(Detached {
            fd: dup(&io)?,
            tls: Some(state),
            ws: None,
            ktls: false,
        })
    }

    fn identity(&self) -> Option<String> {
        crate::tls::identity(self.connection())
    }
}

impl<S: Accepted> Accepted for ws::WsStream<S> {
    fn into_hand_over(self) -> io::Result<Detached> {
        let (io, state) = self.into_parts();
        let mut d = io.into_hand_over()?;
        d.ws = Some(state);
        Ok(d)
    }

    fn identity(&self) -> Option<String> {
        self.get_ref().identity()
    }
}
