//! The end of a connection: the DISCONNECT a v5 client is told, the will (now or after its
//! delay), the drop report, shared-group give-back, releasing held publishers, and the
//! session's detach, end or expiry.
//!
//! Never: touches a session another connection has taken over.

use super::{Close, Engine};
use crate::codec::{self, Disconnect, Packet, Properties};
use crate::shard::shared::Again;
use bytestring::ByteString;
use std::rc::Rc;

impl Engine {
    /// The DISCONNECT a v5 client gets for this close, if any [MQTT-4.13.1-1].
    pub fn disconnect_packet(&self, close: &Close) -> Option<Packet> {
        if !self.protocol.is_v5() {
            return None;
        }
        let reason = match close {
            Close::Protocol(r) | Close::Server(r) => *r,
            Close::KeepAlive => 0x8D,
            Close::Normal | Close::NormalWithWill | Close::Lost => return None,
        };
        let with_reason = Packet::Disconnect(Disconnect {
            reason,
            properties: Properties {
                reason_string: reason_string(reason).map(ByteString::from_static),
                ..Properties::default()
            },
        });
        // Never over the client's Maximum Packet Size: drop the Reason String first
        // [MQTT-3.14.2-3], and send nothing if even the bare packet is too big.
        let max = self.session.borrow().client_packet_bytes_max as usize;
        if codec::encoded_len(&with_reason, self.protocol) <= max {
            return Some(with_reason);
        }
        let bare = Packet::Disconnect(Disconnect {
            reason,
            properties: Properties::default(),
        });
        (codec::encoded_len(&bare, self.protocol) <= max).then_some(bare)
    }

    /// What a presence event says about this connection, read now: the CONNECT's keep alive
    /// and clean start and the connect time from the link, the address from the socket.
    pub fn presence(&self) -> crate::sys::events::Presence {
        let info = self.link.info();
        let username = self
            .session
            .borrow()
            .identity
            .as_ref()
            .and_then(|i| i.username.clone());
        crate::sys::events::Presence {
            client_id: self.client_id.to_string(),
            username,
            peer: crate::shard::query::addresses(info.fd).0,
            proto_ver: self.protocol.level(),
            keepalive: info.keep_alive_s,
            clean_start: info.clean_start,
            connected_at_ms: info.connected_at_ms,
        }
    }

    /// EMQX's name for why this connection ended (presence events): a session another
    /// connection took over is `takenover` when that connection kept it (clean start 0) and
    /// `discarded` when it started afresh.
    pub fn end_reason(&self, close: &Close) -> &'static str {
        let still_ours = {
            let s = self.session.borrow();
            s.conn.as_ref().is_some_and(|l| Rc::ptr_eq(l, &self.link))
        };
        if still_ours {
            return crate::sys::events::reason_name(close);
        }
        let kept = self
            .ctx
            .shard
            .borrow()
            .sessions
            .get(&self.client_id)
            .is_some_and(|s| Rc::ptr_eq(s, &self.session));
        if kept {
            "takenover"
        } else {
            "discarded"
        }
    }

    /// The connection is over: publish or schedule the will, then detach or end the session.
    pub fn close(self, close: Close) {
        let shard = self.ctx.shard.clone();
        let still_ours = {
            let s = self.session.borrow();
            s.conn.as_ref().is_some_and(|l| Rc::ptr_eq(l, &self.link))
        };
        if !still_ours {
            // Taken over: the new connection owns the session (and dealt with our will).
            return;
        }
        shard.borrow_mut().unwatch_keep_alive(self.uid);
        let persistent = self.session.borrow().expiry_s > 0;
        let (will, expiry_s, give_back) = {
            let mut s = self.session.borrow_mut();
            // A persistent session that is the only member of a group this shard owns keeps
            // that group's messages, as a plain subscription's: given back they would be
            // dropped. (Where another shard owns the group, this shard does not know its
            // members: it gives them back marked `takes_back`, and the owner, finding nobody
            // else, sends them back here to wait in this session.)
            let give_back = {
                let sh = shard.borrow();
                s.detach_keeping(|key| persistent && sh.sole_member_here(key, self.uid))
            };
            let will = s.will.take();
            (will, s.expiry_s, give_back)
        };
        shard.borrow_mut().report_drops(&self.session);
        // Offline now: the publishers this session held back go on.
        shard.borrow_mut().release_from(&self.session);
        self.set_group_presence(false);
        // Unacknowledged shared-group messages go to another member of their group. This
        // session lets go of each only after the next holder is on the log (the next member's
        // enqueue, or a stored forward), so a crash between the two duplicates, never loses.
        for d in give_back {
            if let Some(key) = &d.shared {
                let again = d.msg.clone();
                shard.borrow_mut().share_again(
                    key,
                    again,
                    &self.client_id,
                    self.uid,
                    Again::GivenBack { persistent },
                );
            }
            self.session.borrow().log_done(&d);
        }
        let publish = !matches!(close, Close::Normal);
        let mut sh = shard.borrow_mut();
        if let (Some(w), true) = (will, publish) {
            let delay = w.properties.will_delay_interval_s.unwrap_or(0);
            if delay == 0 || expiry_s == 0 {
                // The will is sent when the session ends even if its delay has not passed
                // [MQTT-3.1.3-9]; with expiry 0 that is now.
                sh.publish_will(w);
            } else {
                // Armed before the expiry below, so at the same instant the will goes first.
                let delay = delay.min(expiry_s);
                if let Some(j) = &self.session.borrow().journal {
                    let at = crate::shard::journal::unix_ms() + u64::from(delay) * 1000;
                    j.will_set(&self.client_id, at, &w);
                }
                sh.delay_will(self.uid, w, delay);
            }
        }
        if expiry_s == 0 {
            sh.remove_session(&self.session);
            return;
        }
        if expiry_s != u32::MAX {
            sh.expire_later(self.uid, expiry_s);
        }
        let mut s = self.session.borrow_mut();
        s.offline_since_ms = crate::shard::journal::unix_ms();
        if let Some(j) = &s.journal {
            let proto = s.protocol.level();
            j.session_upsert(&s.client_id, proto, expiry_s, s.offline_since_ms);
        }
    }
}

/// Human-readable Reason String for the reason codes the broker sends in DISCONNECT.
pub fn reason_string(code: u8) -> Option<&'static str> {
    Some(match code {
        0x81 => "malformed packet",
        0x82 => "protocol error",
        0x86 => "bad user name or password",
        0x87 => "not authorized",
        0x8B => "server shutting down",
        0x8C => "bad authentication method",
        0x8D => "keep alive timeout",
        0x8E => "session taken over by another connection",
        0x90 => "topic name invalid or over the configured length/level limits",
        0x93 => "receive maximum exceeded",
        0x94 => "topic alias invalid",
        0x95 => "packet too large",
        0x97 => "quota exceeded: a slow subscriber past its queue bounds (slow_subscriber_timeout_s), or a full store",
        0x98 => "administrative action: disconnected by the admin API",
        0x99 => "payload format invalid",
        0x9A => "retain not supported",
        0x9B => "QoS not supported",
        _ => return None,
    })
}
