//! The shard's answers to the admin API ([`Query`]): listings of its sessions, connections,
//! subscriptions and retained copy, a kick, and a retained clear.
//!
//! Runs in the shard's control task (low rate: one question per admin request), never on the
//! message path. Owns: reading shard state into plain `Send` values. Never: blocks (the answer
//! goes out with `try_send`), or changes state except through the paths clients use (a kick is
//! the link's close request; a retained clear is [`Shard::set_retained`], as an empty retained
//! PUBLISH is, so the topic's home shard journals it).

use super::ctx::ShardRef;
use super::{SessionRef, Shard};
use crate::codec::{Properties, Protocol, QoS};
use crate::control::query::{
    smallest, Answer, ClientInfo, Query, Reply, ReplyTo, RetainedInfo, SessionInfo,
    SubscriptionInfo, Window, RETAINED_PAYLOAD_SHOWN_MAX,
};
use crate::session::{Message, Session};
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

/// v5 DISCONNECT reason for a kick: 0x98 Administrative action.
pub const KICK_REASON: u8 = 0x98;

/// Answer `q` and send the answer to `reply` (dropped if the asker gave up).
pub fn answer(shard: &ShardRef, q: &Query, reply: &ReplyTo) {
    let (id, answer) = {
        let mut s = shard.borrow_mut();
        let a = s.answer(q);
        (s.id, a)
    };
    let _ = reply.try_send(Reply { shard: id, answer });
}

fn proto_ver(p: Protocol) -> u8 {
    match p {
        Protocol::V310 => 3,
        Protocol::V311 => 4,
        Protocol::V5 => 5,
    }
}

/// Both ends of a connected socket, asked of the kernel (nothing is stored per connection).
pub(crate) fn addresses(fd: i32) -> (Option<SocketAddr>, Option<SocketAddr>) {
    if fd < 0 {
        return (None, None);
    }
    // SAFETY: `fd` is the connection's socket, open while its session is attached (see
    // `ConnInfo::fd`); it is only borrowed for two getsockname-style calls.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let s = socket2::SockRef::from(&fd);
    let peer = s.peer_addr().ok().and_then(|a| a.as_socket());
    let local = s.local_addr().ok().and_then(|a| a.as_socket());
    (peer, local)
}

fn client_info(id: usize, s: &Session) -> Option<ClientInfo> {
    let link = s.conn.as_ref()?;
    let info = link.info();
    let (peer, local) = addresses(info.fd);
    Some(ClientInfo {
        clientid: s.client_id.to_string(),
        username: s
            .identity
            .as_deref()
            .and_then(|a| a.username.as_deref())
            .map(str::to_owned),
        peer,
        local,
        proto_ver: proto_ver(s.protocol),
        keepalive: info.keep_alive_s,
        clean_start: info.clean_start,
        connected_at: info.connected_at_ms,
        shard: id,
        inflight: s.inflight_len(),
        queued: s.queued_len(),
        subscriptions: s.subscriptions.len(),
    })
}

impl Shard {
    /// Sessions whose client id contains `like`: how many, and the `window` smallest by id.
    fn matching(&self, w: &Window, connected_only: bool) -> (usize, Vec<&SessionRef>) {
        let all: Vec<(&str, &SessionRef)> = self
            .sessions
            .iter()
            .filter(|(id, s)| {
                id.contains(w.like.as_str()) && (!connected_only || s.borrow().is_connected())
            })
            .map(|(id, s)| (&**id, s))
            .collect();
        let count = all.len();
        let kept = smallest(all, w.window, |(k, _)| k);
        (count, kept.into_iter().map(|(_, s)| s).collect())
    }

    fn answer(&mut self, q: &Query) -> Answer {
        match q {
            Query::Clients(w) => {
                let (count, kept) = self.matching(w, true);
                let items = kept
                    .into_iter()
                    .filter_map(|s| client_info(self.id, &s.borrow()))
                    .collect();
                Answer::Clients { count, items }
            }
            Query::Client(id) => Answer::Client(
                self.sessions
                    .get(id.as_str())
                    .and_then(|s| client_info(self.id, &s.borrow())),
            ),
            Query::Kick(id) => {
                let link = self
                    .sessions
                    .get(id.as_str())
                    .and_then(|s| s.borrow().conn.clone());
                if let Some(l) = &link {
                    log::info!("client {id}: disconnected by the admin API");
                    l.request_close(KICK_REASON);
                }
                Answer::Done(link.is_some())
            }
            Query::Sessions(w) => {
                let (count, kept) = self.matching(w, false);
                let items = kept
                    .into_iter()
                    .map(|s| {
                        let s = s.borrow();
                        SessionInfo {
                            clientid: s.client_id.to_string(),
                            connected: s.is_connected(),
                            expiry_s: s.expiry_s,
                            subscriptions: s.subscriptions.len(),
                            queued: s.queued_len(),
                            inflight: s.inflight_len(),
                            shard: self.id,
                        }
                    })
                    .collect();
                Answer::Sessions { count, items }
            }
            Query::Subscriptions { window, exact } => {
                let mut all = Vec::new();
                for (id, s) in &self.sessions {
                    let wanted = if *exact {
                        **id == *window.like
                    } else {
                        id.contains(window.like.as_str())
                    };
                    if !wanted {
                        continue;
                    }
                    for (filter, sub) in &s.borrow().subscriptions {
                        all.push(SubscriptionInfo {
                            clientid: id.to_string(),
                            topic: filter.to_string(),
                            qos: sub.options.qos as u8,
                            shard: self.id,
                        });
                    }
                }
                let count = all.len();
                // Sorted by client id, then filter: one key string per entry.
                let mut keyed: Vec<(String, SubscriptionInfo)> = all
                    .into_iter()
                    .map(|i| (format!("{}\u{0}{}", i.clientid, i.topic), i))
                    .collect();
                keyed = smallest(keyed, window.window, |(k, _)| k);
                Answer::Subscriptions {
                    count,
                    items: keyed.into_iter().map(|(_, i)| i).collect(),
                }
            }
            Query::Retained(w) => {
                let mut all: Vec<(&str, &Arc<Message>)> = Vec::new();
                self.retained.for_each(|topic, m| {
                    if topic.contains(w.like.as_str()) {
                        all.push((topic, m));
                    }
                });
                let count = all.len();
                let items = smallest(all, w.window, |(t, _)| t)
                    .into_iter()
                    .map(|(topic, m)| {
                        let p = m.payload();
                        RetainedInfo {
                            topic: topic.to_owned(),
                            qos: m.qos as u8,
                            payload_size: p.len(),
                            payload: p[..p.len().min(RETAINED_PAYLOAD_SHOWN_MAX)].to_vec(),
                        }
                    })
                    .collect();
                Answer::Retained { count, items }
            }
            Query::Ping => Answer::Done(true),
            Query::RetainedDelete(topic) => {
                if self.retained.get(topic).is_none() {
                    return Answer::Done(false);
                }
                log::info!("retained message on {topic:?} cleared by the admin API");
                // What an empty retained PUBLISH from a client does, without delivering it.
                let clear = Arc::new(Message::owned(
                    topic,
                    &[],
                    QoS::AtMostOnce,
                    true,
                    Properties::default(),
                    0,
                ));
                self.set_retained(&clear, None);
                Answer::Done(true)
            }
        }
    }
}
