//! kTLS for `mqtts` listeners with `ktls = true`. The rustls handshake runs as on any TLS
//! listener, over a socket that already carries the kernel's `tls` layer (which passes bytes
//! through until it has keys) and is read one TLS record at a time; then rustls' session keys
//! and sequence numbers go to the kernel, and the connection is a [`KtlsStream`]: a TCP socket
//! whose `send` encrypts and whose `recv` decrypts. Its hand-over to the home shard moves the
//! descriptor alone, like a plain connection's; the keys are in the kernel.
//!
//! Owns: setting kTLS up on one connection; the fallback to rustls when the kernel has no `tls`
//! module (per listener and shard, with one warning per listener); the records the kernel does
//! not pass as data. A peer's close_notify ends the stream; any other alert, and any handshake
//! message after the handshake (a TLS 1.3 KeyUpdate, which this prototype does not follow),
//! closes that connection as an error.
//! Never: panics on peer bytes, keeps key material, or blocks the shard (every socket call is
//! non-blocking or a `setsockopt`).

pub mod kernel;

use super::tls::TlsStream;
use super::Transport;
use bytes::BytesMut;
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use kernel::{CryptoInfo, Direction, Record};
use std::cell::Cell;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// A connection whose TLS records the kernel encrypts and decrypts.
pub struct KtlsStream {
    io: TcpStream,
    /// The client certificate's Common Name, read before rustls' state was given up (for
    /// `use_identity_as_username`).
    identity: Option<String>,
}

impl KtlsStream {
    /// A descriptor handed over from another shard, its keys already in the kernel.
    pub fn from_handed_over(io: TcpStream) -> KtlsStream {
        KtlsStream { io, identity: None }
    }

    pub fn get_ref(&self) -> &TcpStream {
        &self.io
    }

    pub fn identity(&self) -> Option<String> {
        self.identity.clone()
    }

    /// The record at the head of the socket is not application data (a plain read failed with
    /// EIO): read it with its type.
    fn control_record(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let record = match kernel::recv_record(self.io.as_raw_fd(), buf) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Not expected (the EIO means a whole record is queued); try again later
                // rather than fail the connection.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Err(e) => return Poll::Ready(Err(e)),
        };
        if !matches!(record, Record::Data(_)) {
            log::debug!("kTLS record from the peer: {record:?}");
        }
        Poll::Ready(match record {
            Record::Data(n) => Ok(n),
            // The peer ends the stream: end of file, as rustls reports it.
            Record::Alert(_, kernel::ALERT_CLOSE_NOTIFY) => Ok(0),
            Record::Alert(level, description) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                format!("TLS alert {description} (level {level}) from the peer"),
            )),
            Record::Other(kernel::RECORD_HANDSHAKE) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "TLS handshake message after the handshake (KeyUpdate?): not followed on kTLS \
                 connections",
            )),
            Record::Other(kind) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("TLS record of type {kind} on a kTLS connection"),
            )),
        })
    }
}

impl AsyncRead for KtlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match ready!(Pin::new(&mut this.io).poll_read(cx, buf)) {
            Err(e) if e.raw_os_error() == Some(libc::EIO) => this.control_record(cx, buf),
            r => Poll::Ready(r),
        }
    }
}

impl AsyncWrite for KtlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_close(cx)
    }
}

impl Transport for KtlsStream {
    async fn shutdown_write(&mut self) -> io::Result<()> {
        // close_notify, as the rustls stream sends, so the peer knows the stream was not cut.
        if let Err(e) = kernel::send_close_notify(self.io.as_raw_fd()) {
            log::debug!("kTLS close_notify not sent: {e}");
        }
        self.io.shutdown_write().await
    }

    fn socket_fd(&self) -> std::os::fd::RawFd {
        self.io.as_raw_fd()
    }
}

/// One listener's kTLS on one shard: tried on every connection until the kernel refuses it.
pub struct ListenerKtls {
    on: Cell<bool>,
}

impl ListenerKtls {
    pub fn new(on: bool) -> ListenerKtls {
        ListenerKtls { on: Cell::new(on) }
    }

    /// Before the handshake of a connection accepted on `bind`: put the kernel's `tls` layer on
    /// its socket. True: the handshake must read whole records
    /// ([`TlsStream::read_whole_records`]) and [`engage`](Self::engage) follows it. False: this
    /// connection is served by rustls.
    pub fn prepare(&self, stream: &TcpStream, bind: &str) -> bool {
        if !self.on.get() {
            return false;
        }
        match kernel::set_ulp(stream.as_raw_fd()) {
            Ok(()) => true,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                // No `tls` module. Each try would ask the kernel to load it again (modprobe
                // through a user-mode helper), so this shard stops trying on this listener.
                self.disable(
                    bind,
                    &format!("the kernel has no tls module ({e}; CONFIG_TLS, modprobe tls)"),
                );
                false
            }
            Err(e) => {
                // E.g. ENOTCONN: the client is already gone; the handshake will notice.
                log::debug!("kTLS on {bind}: TCP_ULP: {e}; this connection uses rustls");
                false
            }
        }
    }

    /// After the handshake of a connection [`prepare`](Self::prepare) readied: rustls' keys to
    /// the kernel. With the plaintext rustls had already decrypted, for the connection's
    /// input (none when the handshake read whole records, kept for safety). An error closes
    /// the connection: past the extraction rustls' state is gone.
    pub fn engage(
        &self,
        stream: TlsStream<TcpStream>,
        bind: &str,
        want_identity: bool,
    ) -> io::Result<(KtlsStream, BytesMut)> {
        let (io, state) = stream.into_parts();
        if !state.stash.is_empty() {
            // Ciphertext rustls did not take cannot go back into the socket for the kernel.
            return Err(io::Error::other("ciphertext read past the handshake"));
        }
        let mut conn = state.conn;
        let mut early = BytesMut::new();
        let mut chunk = [0u8; 4096];
        loop {
            match conn.reader().read(&mut chunk) {
                Ok(0) => break, // close_notify: the kernel's recv reports the end too
                Ok(n) => early.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        let identity = want_identity.then(|| crate::tls::identity(&conn)).flatten();
        let (Some(version), Some(suite)) =
            (conn.protocol_version(), conn.negotiated_cipher_suite())
        else {
            return Err(io::Error::other("handshake not complete"));
        };
        // (Flushed by the handshake: rustls refuses while TLS records wait to be sent, e.g. the
        // TLS 1.3 session tickets.)
        let secrets = conn
            .dangerous_extract_secrets()
            .map_err(|e| io::Error::other(format!("extracting the keys: {e}")))?;
        let mapped = CryptoInfo::new(version, Direction::Tx, secrets.tx)
            .and_then(|tx| Ok((tx, CryptoInfo::new(version, Direction::Rx, secrets.rx)?)));
        let (mut tx, mut rx) = match mapped {
            Ok(x) => x,
            Err(kernel::Unsupported(what)) => {
                let e = format!("{:?}: unsupported {what}", suite.suite());
                self.disable(bind, &e);
                return Err(io::Error::other(e));
            }
        };
        let fd = io.as_raw_fd();
        if let Err(e) = tx
            .install(fd, Direction::Tx)
            .and_then(|()| rx.install(fd, Direction::Rx))
        {
            // E.g. a kernel built without this cipher. The connection is lost; the next ones
            // on this shard use rustls.
            self.disable(bind, &format!("{:?} {}: {e}", suite.suite(), tx.cipher()));
            return Err(e);
        }
        log::debug!(
            "kTLS on {bind}: {version:?} {} ({:?})",
            tx.cipher(),
            suite.suite()
        );
        Ok((KtlsStream { io, identity }, early))
    }

    fn disable(&self, bind: &str, why: &str) {
        self.on.set(false);
        warn_once(bind, why);
    }
}

/// The fallback warning once per listener, whichever shard meets it first. A lock, but taken
/// at most once per shard and listener, never on the data path.
fn warn_once(bind: &str, why: &str) {
    static WARNED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut warned = WARNED.lock().unwrap_or_else(|p| p.into_inner());
    if warned.iter().any(|b| b == bind) {
        return;
    }
    warned.push(bind.to_owned());
    log::warn!("kTLS on {bind} is off, connections use rustls: {why}");
}
