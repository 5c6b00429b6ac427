//! TLS over a connection's byte stream: rustls' sans-IO `ServerConnection` driven by our own
//! small adapter instead of `futures-rustls`, because the TLS state has to move to the client
//! id's home shard with the socket after the CONNECT ([`TlsStream::into_parts`] /
//! [`TlsStream::from_parts`]), and a wrapper crate keeps it inside its stream type.
//!
//! Reads: ciphertext from the socket goes through one per-thread scratch buffer into rustls;
//! plaintext comes out into the caller's buffer. Writes: plaintext in, at most
//! [`CIPHERTEXT_PENDING_MAX`] of ciphertext buffered in rustls before `poll_write` waits for the
//! socket, so a slow reader cannot grow a TLS connection's memory without bound.
//!
//! For a kTLS listener the handshake reads the socket one TLS record at a time
//! ([`TlsStream::read_whole_records`]), so rustls never takes ciphertext past the handshake's
//! last record: that stays in the socket for the kernel (`transport::ktls`).
//!
//! Never: blocks, panics on peer bytes (a TLS error becomes an I/O error, after rustls' alert
//! is sent best effort), or holds bytes outside rustls that a hand-over would lose, except the
//! rare unfed ciphertext in `stash`, which moves with it.

use super::Transport;
use futures_lite::{AsyncRead, AsyncWrite};
use rustls::ServerConnection;
use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// Plaintext rustls may hold encrypted and unsent before writes wait for the socket.
const CIPHERTEXT_PENDING_MAX: usize = 64 * 1024;
/// One TLS record and its header: the most a read from the socket needs to take at once.
const READ_CHUNK: usize = 16 * 1024 + 512;

thread_local! {
    /// Ciphertext read from sockets on this thread, fed to rustls at once.
    static CIPHERTEXT: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_CHUNK]);
}

pub struct TlsStream<S> {
    io: S,
    conn: Box<ServerConnection>,
    /// Ciphertext read but not yet taken by rustls (its plaintext buffer was full).
    stash: Vec<u8>,
    /// The socket reached end of file.
    eof: bool,
    /// Set: reads stop at TLS record boundaries (kTLS listeners, until the keys move).
    records: Option<RecordCursor>,
}

/// Where a byte stream of TLS records is: in a 5-byte header or in a record's body.
#[derive(Debug, Default)]
struct RecordCursor {
    header: [u8; 5],
    header_len: usize,
    body_left: usize,
}

impl RecordCursor {
    /// The most bytes that can be read without crossing into the next record.
    fn want(&self) -> usize {
        if self.header_len < self.header.len() {
            self.header.len() - self.header_len
        } else {
            self.body_left
        }
    }

    /// `bytes` (at most [`want`](Self::want) of them) were read.
    fn advance(&mut self, bytes: &[u8]) {
        debug_assert!(bytes.len() <= self.want());
        if self.header_len < self.header.len() {
            let end = self.header_len + bytes.len();
            self.header[self.header_len..end].copy_from_slice(bytes);
            self.header_len = end;
            if end == self.header.len() {
                self.body_left = usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
            }
        } else {
            self.body_left -= bytes.len();
        }
        if self.header_len == self.header.len() && self.body_left == 0 {
            // An empty record (rustls refuses it) or the end of one: the next header.
            self.header_len = 0;
        }
    }
}

/// What a hand-over carries of a TLS connection besides the socket.
pub struct TlsState {
    pub conn: Box<ServerConnection>,
    pub stash: Vec<u8>,
}

impl std::fmt::Debug for TlsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsState")
            .field("stash", &self.stash.len())
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream<S> {
    pub fn new(io: S, conn: ServerConnection) -> Self {
        let mut conn = Box::new(conn);
        conn.set_buffer_limit(Some(CIPHERTEXT_PENDING_MAX));
        TlsStream {
            io,
            conn,
            stash: Vec::new(),
            eof: false,
            records: None,
        }
    }

    /// From now on read the socket one TLS record at a time (before the handshake of a kTLS
    /// connection): whatever follows the handshake's last record must reach the kernel, and
    /// bytes rustls took cannot be given back. Costs two reads per record, only during the
    /// handshake.
    pub fn read_whole_records(&mut self) {
        self.records = Some(RecordCursor::default());
    }

    pub fn from_parts(io: S, state: TlsState) -> Self {
        TlsStream {
            io,
            conn: state.conn,
            stash: state.stash,
            eof: false,
            records: None,
        }
    }

    pub fn into_parts(self) -> (S, TlsState) {
        (
            self.io,
            TlsState {
                conn: self.conn,
                stash: self.stash,
            },
        )
    }

    pub fn connection(&self) -> &ServerConnection {
        &self.conn
    }

    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// Drive the handshake to completion (the caller bounds it with a deadline).
    pub async fn handshake(&mut self) -> io::Result<()> {
        while self.conn.is_handshaking() {
            std::future::poll_fn(|cx| self.poll_handshake_step(cx)).await?;
        }
        std::future::poll_fn(|cx| self.poll_send_tls(cx)).await
    }

    fn poll_handshake_step(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.conn.wants_write() {
            ready!(self.poll_send_tls(cx))?;
        }
        if !self.conn.is_handshaking() {
            return Poll::Ready(Ok(()));
        }
        if ready!(self.poll_recv_tls(cx))? == 0 {
            return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
        }
        Poll::Ready(Ok(()))
    }

    /// Write what rustls has encrypted until it has nothing more or the socket is full.
    fn poll_send_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.conn.wants_write() {
            let mut w = SyncWriter {
                io: &mut self.io,
                cx,
            };
            match self.conn.write_tls(&mut w) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Read ciphertext from the socket (or the stash) into rustls and process it. Ready(0) at
    /// the end of the socket's stream.
    fn poll_recv_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if !self.stash.is_empty() {
            let stash = std::mem::take(&mut self.stash);
            let n = stash.len();
            self.feed(&stash)?;
            return Poll::Ready(Ok(n));
        }
        if self.eof {
            return Poll::Ready(Ok(0));
        }
        CIPHERTEXT.with(|buf| {
            let mut buf = buf.borrow_mut();
            let want = self
                .records
                .as_ref()
                .map_or(buf.len(), |r| r.want().min(buf.len()));
            let n = ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf[..want]))?;
            if n == 0 {
                self.eof = true;
                return Poll::Ready(Ok(0));
            }
            if let Some(r) = &mut self.records {
                r.advance(&buf[..n]);
            }
            self.feed(&buf[..n])?;
            Poll::Ready(Ok(n))
        })
    }

    /// Give `bytes` to rustls; what it cannot take yet (its plaintext buffer is full until the
    /// reader drains it) waits in the stash.
    fn feed(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            if !self.conn.wants_read() {
                self.stash.extend_from_slice(bytes);
                return Ok(());
            }
            match self.conn.read_tls(&mut bytes) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(e),
            }
            if let Err(e) = self.conn.process_new_packets() {
                // rustls queued an alert for the peer; the caller's next write or close sends
                // what the socket takes.
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
        Ok(())
    }
}

/// `io::Write` over a non-blocking async stream for rustls' `write_tls`: a pending socket is
/// `WouldBlock` (the waker is registered by the poll).
struct SyncWriter<'a, 'b, S> {
    io: &'a mut S,
    cx: &'a mut Context<'b>,
}

impl<S: AsyncWrite + Unpin> Write for SyncWriter<'_, '_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write(self.cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            match this.conn.reader().read(buf) {
                Ok(n) => return Poll::Ready(Ok(n)), // 0: the peer's close_notify
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            // Handshake messages and key updates the reads produced go out now.
            if this.conn.wants_write() {
                if let Poll::Ready(Err(e)) = this.poll_send_tls(cx) {
                    return Poll::Ready(Err(e));
                }
            }
            if ready!(this.poll_recv_tls(cx))? == 0 {
                // The socket ended without close_notify: end of stream all the same (MQTT has
                // its own DISCONNECT; a truncation attack cannot forge one).
                return Poll::Ready(Ok(0));
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Earlier ciphertext first: plaintext only goes in when the socket took what was there.
        ready!(this.poll_send_tls(cx))?;
        let n = this.conn.writer().write(buf)?;
        if let Poll::Ready(Err(e)) = this.poll_send_tls(cx) {
            return Poll::Ready(Err(e));
        }
        if n == 0 && !buf.is_empty() {
            // rustls' buffer is full and the socket took nothing: the waker is registered.
            return Poll::Pending;
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_tls(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.conn.send_close_notify();
        ready!(this.poll_send_tls(cx))?;
        Pin::new(&mut this.io).poll_close(cx)
    }
}

impl<S: Transport> Transport for TlsStream<S> {
    async fn shutdown_write(&mut self) -> io::Result<()> {
        // close_notify, so the peer knows the stream ended here and was not cut.
        self.conn.send_close_notify();
        std::future::poll_fn(|cx| self.poll_send_tls(cx)).await?;
        self.io.shutdown_write().await
    }

    fn socket_fd(&self) -> std::os::fd::RawFd {
        self.io.socket_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::RecordCursor;

    #[test]
    fn record_reads_never_cross_a_record_boundary() {
        // Two records (bodies of 3 and 300 bytes) and the start of a third, in one stream.
        let mut stream = vec![22, 3, 3, 0, 3, 1, 2, 3, 23, 3, 3, 1, 44];
        stream.extend(std::iter::repeat_n(7, 300));
        stream.extend([23, 3, 3]);
        let mut c = RecordCursor::default();
        let mut reads = Vec::new();
        let mut at = 0;
        while at < stream.len() {
            // The socket gives at most 2 bytes per read here, at most `want` when asked.
            let n = c.want().min(2).min(stream.len() - at);
            c.advance(&stream[at..at + n]);
            at += n;
            reads.push((at, c.want()));
        }
        assert_eq!(reads[2], (5, 3), "header read: the body is next");
        assert!(
            reads.contains(&(8, 5)),
            "first record ends exactly at byte 8"
        );
        assert!(
            reads.contains(&(313, 5)),
            "second record ends exactly at byte 313"
        );
        assert_eq!(c.want(), 2, "mid-header of the third");
    }
}
