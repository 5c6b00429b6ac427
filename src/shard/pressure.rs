//! Back-pressure on one shard: a subscriber session past its queue bounds holds back the
//! publishers whose messages it queued, wherever they are, until it drains; a subscriber that
//! makes no progress for `slow_subscriber_timeout_s` is disconnected so it cannot hold them
//! forever.
//!
//! A hold is addressed by the publisher's session uid, whose top byte is its home shard: a
//! local publisher's [`Session::holds`] is bumped directly, a remote one's through
//! [`MeshMsg::Hold`] / [`MeshMsg::Release`] on the control lane. Every hold a subscriber
//! registers is released exactly once (drained to half its bounds, offline, or ended), so the
//! counts pair up; a release for a session that no longer exists is ignored.
//!
//! Never: blocks, drops a message, or stalls the mesh: the receiving shard always accepts what
//! a peer routes to it (the overshoot is bounded by what was in flight before the hold landed).

use super::{MeshMsg, SessionRef, Shard};
use crate::session::{Admit, Session};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The home shard of a session uid (see [`Shard::next_uid`]).
pub fn uid_shard(uid: u64) -> usize {
    (uid >> 56) as usize
}

impl Shard {
    /// Act on what [`Session::deliver`] reported for a message of publisher `origin`.
    pub fn after_admit(&mut self, session: &SessionRef, admit: Admit, origin: u64) {
        let Admit::Held {
            new_waiter,
            newly_congested,
        } = admit
        else {
            return;
        };
        if newly_congested {
            self.congested.push(Rc::downgrade(session));
            self.stats.congestions += 1;
        }
        if new_waiter {
            self.hold(origin);
        }
    }

    /// One more subscriber holds publisher `uid` back.
    pub fn hold(&mut self, uid: u64) {
        self.stats.holds += 1;
        let home = uid_shard(uid);
        if home != self.id {
            self.send_to(home, MeshMsg::Hold(uid));
        } else {
            self.hold_local(uid);
        }
    }

    /// A hold for a publisher homed here (from this shard or a peer).
    pub(super) fn hold_local(&mut self, uid: u64) {
        if let Some(s) = self.by_uid.get(&uid) {
            s.borrow_mut().holds += 1;
        }
    }

    /// One subscriber stopped holding publisher `uid` back.
    pub fn release(&mut self, uid: u64) {
        let home = uid_shard(uid);
        if home != self.id {
            self.send_to(home, MeshMsg::Release(uid));
        } else {
            self.release_local(uid);
        }
    }

    /// A release for a publisher homed here; the last one wakes its connection.
    pub(super) fn release_local(&mut self, uid: u64) {
        if let Some(s) = self.by_uid.get(&uid) {
            let mut s = s.borrow_mut();
            s.holds = s.holds.saturating_sub(1);
            if s.holds == 0 {
                if let Some(link) = &s.conn {
                    link.wake();
                }
            }
        }
    }

    /// Release whatever `session` stopped holding (after an ack, a drain, a detach or its end).
    pub fn release_from(&mut self, session: &RefCell<Session>) {
        let released = match session.try_borrow_mut() {
            Ok(mut s) if s.has_released() => s.take_released(),
            Ok(_) => return,
            Err(_) => {
                // A lost release would hold its publishers until they reconnect.
                debug_assert!(false, "session borrowed while its releases are handed out");
                return;
            }
        };
        for uid in released {
            self.release(uid);
        }
    }

    /// Log what the bounds cost `session` since the last report, and count it for the shard.
    /// Called when its connection ends and when the session itself ends, so drops while it was
    /// offline (an expiring session never reconnects) are reported too.
    pub fn report_drops(&mut self, session: &RefCell<Session>) {
        let Ok(mut s) = session.try_borrow_mut() else {
            debug_assert!(false, "session borrowed while its drops are reported");
            return;
        };
        let drops = s.take_drops();
        if drops.total() == 0 {
            return;
        }
        log::info!(
            "client {}: dropped {} QoS 0 and {} QoS 1/2 messages at a full queue \
             (queue_full = drop), {} offline past the queue bounds, {} QoS 0 while offline, \
             {} over its maximum packet size, {} expired",
            s.client_id,
            drops.qos0,
            drops.qos12,
            drops.offline_full,
            drops.offline_qos0,
            drops.too_large,
            drops.expired
        );
        self.stats.add_drops(&drops);
    }

    /// The slow-subscriber watchdog, run about once a second: forget sessions no longer
    /// congested, and ask the connection of every one whose queue made no progress for
    /// `timeout` to close (its session goes offline, which releases its publishers).
    pub fn check_slow_subscribers(&mut self, now: Instant, timeout: Duration) {
        let mut i = 0;
        while i < self.congested.len() {
            let Some(session) = self.congested[i].upgrade() else {
                self.congested.swap_remove(i);
                continue;
            };
            let s = session.borrow();
            let Some(since) = s.congested_since() else {
                drop(s);
                self.congested.swap_remove(i);
                continue;
            };
            if !timeout.is_zero() && now.saturating_duration_since(since) >= timeout {
                if let Some(link) = &s.conn {
                    log::warn!(
                        "client {}: slow subscriber, no progress for {} s with {} messages \
                         ({} bytes) queued and {} publishers held back; disconnecting \
                         (slow_subscriber_timeout_s)",
                        s.client_id,
                        timeout.as_secs(),
                        s.queued_len(),
                        s.queued_bytes(),
                        s.waiters().len()
                    );
                    // 0x97 Quota exceeded: the session reached a limit the server imposes.
                    link.request_close(0x97);
                    self.stats.slow_disconnects += 1;
                }
                drop(s);
                self.congested.swap_remove(i);
                continue;
            }
            i += 1;
        }
    }
}
