//! A shard-local notification: tasks wait for the next `notify`. No lock, no atomics: only the
//! owning executor thread touches it.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Debug, Default)]
pub struct Event {
    generation: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
}

impl Event {
    pub fn notify(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Completes at the first `notify` after this call (not after the first poll), so a check
    /// followed by `wait()` never misses a notification in between.
    pub fn wait(&self) -> Wait<'_> {
        Wait {
            event: self,
            seen: self.generation.get(),
        }
    }
}

pub struct Wait<'a> {
    event: &'a Event,
    seen: u64,
}

impl Future for Wait<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.event.generation.get() != self.seen {
            return Poll::Ready(());
        }
        let mut w = self.event.waiters.borrow_mut();
        if !w.iter().any(|x| x.will_wake(cx.waker())) {
            w.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
