//! The shard-local link from a session to its live connection: an output buffer that any task
//! on the shard may append encoded packets to, and the waker of the connection task that
//! drains it into the socket. Many deliveries between two wake-ups become one write.
//!
//! Never shared across threads (`Rc`, `Cell`, `RefCell`): only the home shard touches it.

use crate::codec::{encode, Packet, Protocol};
use bytes::BytesMut;
use std::cell::{Cell, RefCell};
use std::task::Waker;

#[derive(Debug, Default)]
pub struct ConnLink {
    out: RefCell<BytesMut>,
    waker: RefCell<Option<Waker>>,
    /// A request from elsewhere on the shard to close this connection: the v5 reason code to
    /// send in DISCONNECT (e.g. 0x8E on session takeover).
    close_request: Cell<Option<u8>>,
    /// The session has messages queued behind this buffer: once the socket has taken enough of
    /// it, the connection task must refill it ([`crate::session::Session::pump`]) even if the
    /// client sends nothing (a QoS 0 subscriber never does).
    backlog: Cell<bool>,
}

impl ConnLink {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append an encoded packet and wake the connection. False if it could not be encoded.
    pub fn write_packet(&self, packet: &Packet, protocol: Protocol) -> bool {
        let ok = encode(packet, protocol, &mut self.out.borrow_mut()).is_ok();
        self.wake();
        ok
    }

    pub fn out_len(&self) -> usize {
        self.out.borrow().len()
    }

    /// Run `f` on the output buffer (the connection task writes from it).
    pub fn with_out<R>(&self, f: impl FnOnce(&mut BytesMut) -> R) -> R {
        f(&mut self.out.borrow_mut())
    }

    pub fn register(&self, waker: &Waker) {
        let mut w = self.waker.borrow_mut();
        match &*w {
            Some(old) if old.will_wake(waker) => {}
            _ => *w = Some(waker.clone()),
        }
    }

    pub fn wake(&self) {
        if let Some(w) = self.waker.borrow().as_ref() {
            w.wake_by_ref();
        }
    }

    pub fn request_close(&self, reason: u8) {
        if self.close_request.get().is_none() {
            self.close_request.set(Some(reason));
        }
        self.wake();
    }

    pub fn set_backlog(&self, queued: bool) {
        self.backlog.set(queued);
    }

    pub fn has_backlog(&self) -> bool {
        self.backlog.get()
    }

    pub fn close_requested(&self) -> Option<u8> {
        self.close_request.get()
    }
}
