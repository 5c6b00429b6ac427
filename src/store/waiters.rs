//! Tasks waiting for an LSN to be committed. The broker parks one per acknowledgement that
//! needs durability (PUBACK, PUBREC, SUBACK of a persistent session), so a commit must wake
//! exactly the waiters it satisfied without visiting the others: they are kept ordered by LSN
//! and a commit splits off the satisfied prefix.
//!
//! Owns: the wakers. Never: locks or atomics (one shard thread touches it).

use super::log::Log;
use super::record::Lsn;
use super::StoreError;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Debug, Default)]
pub(crate) struct Waiters {
    /// (LSN waited for, ticket) → waker. The ticket makes keys unique and lets a dropped
    /// future remove exactly its own entry.
    by_lsn: BTreeMap<(Lsn, u64), Waker>,
    next_ticket: u64,
}

impl Waiters {
    /// Register (or refresh) a waiter for `lsn`; returns its key for `remove`.
    pub(crate) fn park(&mut self, key: Option<(Lsn, u64)>, lsn: Lsn, waker: &Waker) -> (Lsn, u64) {
        let key = key.unwrap_or_else(|| {
            self.next_ticket += 1;
            (lsn, self.next_ticket)
        });
        match self.by_lsn.get_mut(&key) {
            Some(w) if w.will_wake(waker) => {}
            Some(w) => w.clone_from(waker),
            None => {
                self.by_lsn.insert(key, waker.clone());
            }
        }
        key
    }

    pub(crate) fn remove(&mut self, key: (Lsn, u64)) {
        self.by_lsn.remove(&key);
    }

    /// Wake everyone waiting for an LSN up to `committed`; the rest stay parked.
    pub(crate) fn wake_through(&mut self, committed: Lsn) {
        let rest = self.by_lsn.split_off(&(committed.saturating_add(1), 0));
        let ready = std::mem::replace(&mut self.by_lsn, rest);
        for (_, w) in ready {
            w.wake();
        }
    }

    /// Wake everyone (a commit failed: each waiter learns it and decides).
    pub(crate) fn wake_all(&mut self) {
        for (_, w) in std::mem::take(&mut self.by_lsn) {
            w.wake();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_lsn.len()
    }
}

/// Resolves when there is something to commit or the log is closed (the commit task's wait).
pub(crate) struct AppendedOrClosed<'a> {
    pub(crate) log: &'a Log,
}

impl Future for AppendedOrClosed<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.log.poll_appended(cx)
    }
}

/// The future of [`Log::wait_committed`].
pub struct WaitCommitted<'a> {
    pub(crate) log: &'a Log,
    pub(crate) lsn: Lsn,
    pub(crate) key: Option<(Lsn, u64)>,
    /// Failed commits when the wait began: a change means a commit failed meanwhile.
    pub(crate) failures: u64,
}

impl Future for WaitCommitted<'_> {
    type Output = Result<Lsn, StoreError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (committed, failures) = self.log.commit_state();
        if committed >= self.lsn {
            return Poll::Ready(Ok(committed));
        }
        if failures != self.failures {
            return Poll::Ready(Err(StoreError::CommitFailed));
        }
        let (lsn, key) = (self.lsn, self.key);
        self.key = Some(self.log.waiters_mut().park(key, lsn, cx.waker()));
        Poll::Pending
    }
}

impl Drop for WaitCommitted<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.log.waiters_mut().remove(key);
        }
    }
}
