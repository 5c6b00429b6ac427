//! CONNECT on the home shard: the connection policy (redirect, version rules, will limits,
//! keep alive cap), session create / resume / take over, and the CONNACK.
//!
//! Never: awaits while the shard or a session is borrowed, or keeps a byte of the CONNECT
//! that aliases the read buffer (client id, will topic and payload are copied).

use super::{reauth, topic_within_limits, Engine, Refused};
use crate::codec::{ConnAck, Connect, Packet, Properties, Will};
use crate::session::{own_properties, ConnLink, Session, Subscription};
use crate::shard::ctx::ShardCtx;
use crate::shard::shared::MemberOp;
use bytestring::ByteString;
use std::rc::Rc;

impl Engine {
    /// CONNECT on the home shard: validate, create / resume / take over the session, write
    /// CONNACK, and watch the keep alive on the shard's timers. `Err` means a failure CONNACK is
    /// in `link` and the connection must close.
    pub fn open(
        ctx: &ShardCtx,
        link: Rc<ConnLink>,
        c: Box<Connect>,
        assigned: bool,
        authenticated: Option<Option<bytes::Bytes>>,
        identity: crate::auth::security::Authenticated,
    ) -> Result<Engine, Refused> {
        let cfg = ctx.cfg.clone();
        let v5 = c.protocol.is_v5();
        let refuse = |v3_code: u8, v5_code: u8| {
            let code = if v5 { v5_code } else { v3_code };
            link.write_packet(
                &Packet::ConnAck(ConnAck {
                    session_present: false,
                    code,
                    properties: Properties::default(),
                }),
                c.protocol,
            );
            Err(Refused)
        };
        if !cfg.redirect_server_reference.is_empty() {
            // Redirect [MQTT-4.11]: v5 learns where to go; v3 can only be told "unavailable".
            let code = if cfg.redirect_permanent { 0x9D } else { 0x9C };
            let mut properties = Properties::default();
            if v5 {
                properties.server_reference = Some(cfg.redirect_server_reference.as_str().into());
            }
            link.write_packet(
                &Packet::ConnAck(ConnAck {
                    session_present: false,
                    code: if v5 { code } else { 0x03 },
                    properties,
                }),
                c.protocol,
            );
            return Err(Refused);
        }
        // [MQTT-3.1.3-8]: a v3 client with an empty id must ask for a clean session.
        if assigned && !c.clean_start && !v5 {
            return refuse(0x02, 0x85);
        }
        if c.properties.authentication_method.is_some() && authenticated.is_none() {
            return refuse(0x05, 0x8C); // [MQTT-4.12.0-1]
        }
        if let Some(w) = &c.will {
            if w.qos as u8 > cfg.maximum_qos {
                return refuse(0x05, 0x9B);
            }
            if w.retain && !cfg.retain_available {
                return refuse(0x05, 0x9A);
            }
            if !topic_within_limits(&w.topic, &cfg) {
                return refuse(0x05, 0x90);
            }
            // A will the client could not publish itself is refused with the CONNECT, as
            // Mosquitto does (and never under $SYS).
            let writable = ctx.shard.borrow().security.acl.check_with_claims(
                identity.claim_acl.as_ref(),
                identity.username.as_deref(),
                &c.client_id,
                &w.topic,
                crate::auth::acl::Access::Write,
            );
            if !writable {
                log::info!(
                    "client {}: will topic {} not allowed by the ACL; refused",
                    c.client_id,
                    w.topic
                );
                return refuse(0x05, 0x87);
            }
        }
        let expiry_s = session_expiry(&c, &cfg);
        // `server_keep_alive_s` caps the keep alive, as Mosquitto's max_keepalive does: a v5
        // client asking for more (or for none) is told the cap [MQTT-3.2.2-21]; a v3 client
        // cannot be told, so it is refused as Mosquitto refuses it (identifier rejected).
        let mut keep_alive_s = c.keep_alive_s;
        let cap = cfg.server_keep_alive_s;
        if cap > 0 && (keep_alive_s == 0 || keep_alive_s > cap) {
            if !v5 {
                return refuse(0x02, 0x85);
            }
            keep_alive_s = cap;
        }

        let shard = ctx.shard.clone();
        if cfg.sessions_max > 0 {
            let s = shard.borrow();
            let total = s.sessions_total.load(std::sync::atomic::Ordering::Relaxed);
            if total >= cfg.sessions_max && !s.sessions.contains_key(&c.client_id) {
                drop(s);
                let n = {
                    let mut s = shard.borrow_mut();
                    s.stats.sessions_refused += 1;
                    s.stats.sessions_refused
                };
                if crate::shard::worth_logging(n) {
                    log::warn!(
                        "client {}: refused, {total} sessions kept (sessions_max); {n} refused \
                         so far",
                        c.client_id
                    );
                }
                return refuse(0x03, 0x97); // server unavailable / quota exceeded
            }
        }
        let (session, session_present) = {
            let mut s = shard.borrow_mut();
            let existing = s.sessions.get(&c.client_id).cloned();
            let mut present = false;
            let session = match existing {
                Some(old) => {
                    let (old_link, old_will, old_uid) = {
                        let mut o = old.borrow_mut();
                        (o.conn.take(), o.will.take(), o.uid)
                    };
                    // A reconnect cancels a pending delayed will [MQTT-3.1.3-9] and the expiry.
                    s.cancel_timers(old_uid);
                    if let Some(l) = old_link {
                        // Session takeover [MQTT-3.1.4-3]: the old connection closes with 0x8E.
                        l.request_close(0x8E);
                    }
                    if let Some(w) = old_will {
                        // The old connection's will: published now unless delayed (a delayed
                        // will is cancelled by this reconnect [MQTT-3.1.3-9]).
                        let delayed = w.properties.will_delay_interval_s.unwrap_or(0) > 0;
                        if !delayed {
                            s.publish_will(w);
                        }
                    }
                    if c.clean_start {
                        s.end_session(&old);
                        None
                    } else {
                        present = true;
                        Some(old)
                    }
                }
                None => None,
            };
            let session = match session {
                Some(x) => x,
                None => {
                    let uid = s.next_uid();
                    let fresh = Rc::new(std::cell::RefCell::new(Session::new(
                        c.client_id.clone(),
                        uid,
                        c.protocol,
                        s.session_limits.clone(),
                    )));
                    s.insert_session(fresh.clone());
                    fresh
                }
            };
            (session, present)
        };
        log::debug!(
            "shard {}: client {}: CONNECT (clean start {}), session present {session_present}",
            ctx.shard.borrow().id,
            c.client_id,
            c.clean_start
        );
        if let Some(exp_s) = identity.expires_at_s {
            let now_s = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let left = std::time::Duration::from_secs(exp_s.saturating_sub(now_s));
            let uid = session.borrow().uid;
            shard
                .borrow_mut()
                .watch_token_expiry(uid, std::time::Instant::now() + left);
        }
        let uid = {
            let mut se = session.borrow_mut();
            se.identity = (identity.username.is_some() || identity.claim_acl.is_some())
                .then(|| Box::new(identity));
            se.expiry_s = expiry_s;
            super::persist::journal_connect(
                &mut se,
                shard.borrow().journal.as_ref(),
                c.protocol.level(),
            );
            se.will = c.will.as_ref().map(|w| Box::new(owned_will(w)));
            se.set_client_limits(
                c.properties.receive_maximum,
                c.properties.maximum_packet_size,
                c.properties.topic_alias_maximum,
            );
            se.uid
        };

        let mut props = Properties::default();
        if v5 {
            if assigned {
                props.assigned_client_identifier = Some(c.client_id.clone());
            }
            props.receive_maximum = Some(cfg.receive_maximum);
            props.maximum_packet_size = Some(cfg.packet_bytes_max.min(u32::MAX as usize) as u32);
            if cfg.maximum_qos < 2 {
                props.maximum_qos = Some(cfg.maximum_qos);
            }
            if !cfg.retain_available {
                props.retain_available = Some(0);
            }
            if let Some(data) = &authenticated {
                props.authentication_method = c.properties.authentication_method.clone();
                props.authentication_data = data.clone();
            }
            if cfg.topic_alias_maximum > 0 {
                props.topic_alias_maximum = Some(cfg.topic_alias_maximum);
            }
            if c.properties.request_response_information == Some(1)
                && !cfg.response_information.is_empty()
            {
                props.response_information = Some(cfg.response_information.as_str().into());
            }
            if keep_alive_s != c.keep_alive_s {
                props.server_keep_alive_s = Some(keep_alive_s);
            }
            let asked = c.properties.session_expiry_interval_s.unwrap_or(0);
            if asked != expiry_s {
                props.session_expiry_interval_s = Some(expiry_s);
            }
        }
        link.write_packet(
            &Packet::ConnAck(ConnAck {
                session_present,
                code: 0,
                properties: props,
            }),
            c.protocol,
        );
        session.borrow_mut().attach(link.clone(), c.protocol);
        let client_id = session.borrow().client_id.clone();
        if let Some(timeout) = super::keep_alive_timeout(keep_alive_s) {
            link.watch_keep_alive(timeout, crate::clock::now_ms());
            shard.borrow_mut().watch_keep_alive(uid, timeout);
        }
        let conn = Engine {
            ctx: ctx.clone(),
            protocol: c.protocol,
            client_id,
            session,
            link,
            uid,
            keep_alive_s,
            connect_expiry_zero: expiry_s == 0,
            aliases_in: Vec::new(),
            auth: c
                .properties
                .authentication_method
                .clone()
                .map(reauth::EnhancedAuth::new),
            acks: Default::default(),
            need: Default::default(),
            progress: shard.borrow().journal.as_ref().map(|j| j.progress.clone()),
            budget: super::publish::PublishBudget::new(
                cfg.max_publish_rate_per_client,
                cfg.max_publish_bytes_per_client,
                crate::clock::now_ms(),
            ),
        };
        if session_present {
            conn.set_group_presence(true);
        }
        Ok(conn)
    }

    /// Tell the owners of this session's shared groups that it is (not) connected, so they
    /// prefer connected members.
    pub(super) fn set_group_presence(&self, online: bool) {
        let groups: Vec<(ByteString, Subscription)> = self
            .session
            .borrow()
            .subscriptions
            .iter()
            .filter(|(f, _)| crate::shard::shared::parse_shared(f).is_some())
            .map(|(f, s)| (f.clone(), *s))
            .collect();
        let mut shard = self.ctx.shard.borrow_mut();
        for (key, sub) in groups {
            let Some(Ok((_, inner))) = crate::shard::shared::parse_shared(&key) else {
                continue;
            };
            let inner = ByteString::from(inner);
            let member = shard.member_of(&self.session, sub.options.qos, sub.identifier);
            let _ = shard.share_op(key, inner, member, MemberOp::Online(online), None);
        }
    }
}

/// The will with its own copies of topic, payload and properties: it may wait for the session's
/// expiry, long after the CONNECT's read buffer is gone.
fn owned_will(w: &Will) -> Will {
    Will {
        qos: w.qos,
        retain: w.retain,
        topic: ByteString::from(&*w.topic),
        payload: bytes::Bytes::copy_from_slice(&w.payload),
        properties: own_properties(w.properties.clone()),
    }
}

/// Session Expiry Interval for this CONNECT: v5 asks for it; a v3 persistent session cannot,
/// and gets `persistent_session_expiry_s` (0: "forever", `u32::MAX`), both capped by
/// `session_expiry_max_s` when set.
fn session_expiry(c: &Connect, cfg: &crate::config::Config) -> u32 {
    let asked = if c.protocol.is_v5() {
        c.properties.session_expiry_interval_s.unwrap_or(0)
    } else if c.clean_start {
        0
    } else if cfg.persistent_session_expiry_s > 0 {
        cfg.persistent_session_expiry_s
    } else {
        u32::MAX
    };
    cap_expiry(asked, cfg)
}

pub(crate) fn cap_expiry(asked: u32, cfg: &crate::config::Config) -> u32 {
    if cfg.session_expiry_max_s > 0 {
        asked.min(cfg.session_expiry_max_s)
    } else {
        asked
    }
}
