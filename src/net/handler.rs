//! The protocol handler of one connected client on its home shard: CONNECT (session create,
//! resume or take over), then each packet matched on the session state first. Every refusal
//! maps to exactly one close reason here, and [`Conn::disconnect_packet`] turns it into the v5
//! DISCONNECT reason code.
//!
//! Never: holds the shard's or a session's `RefCell` borrow across an `.await`, or routes while
//! its own session is borrowed (a client may subscribe to what it publishes).

use crate::codec::{
    self, Ack, ConnAck, Connect, Disconnect, Packet, Properties, Protocol, Publish, QoS, SubAck,
    Subscribe, UnsubAck, Unsubscribe, Will,
};
use crate::session::{ConnLink, Delivery, Message, Session, Subscription};
use crate::shard::runtime::{spawn_ack_after, wait_acks, ShardCtx};
use crate::shard::shared::MemberOp;
use crate::shard::SessionRef;
use bytestring::ByteString;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// Why a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// DISCONNECT with reason 0x00 (or any v3 DISCONNECT): the will is discarded.
    Normal,
    /// v5 DISCONNECT 0x04: "disconnect with will message".
    NormalWithWill,
    /// The client broke the protocol: v5 DISCONNECT with this reason code, will published.
    Protocol(u8),
    /// The network connection was lost or closed without DISCONNECT: will published.
    Lost,
    /// Nothing received for 1.5 × keep alive [MQTT-3.1.2-24]: v5 reason 0x8D, will published.
    KeepAlive,
    /// Another connection took the session over (or the broker asked us to close).
    TakenOver(u8),
}

pub struct Conn {
    pub ctx: ShardCtx,
    pub protocol: Protocol,
    pub client_id: ByteString,
    session: SessionRef,
    link: Rc<ConnLink>,
    uid: u64,
    keep_alive_s: u16,
    /// The Session Expiry Interval of CONNECT was 0: a DISCONNECT may not raise it
    /// [MQTT-3.14.2-2].
    connect_expiry_zero: bool,
    /// Topic aliases the client defined on this connection (index = alias - 1).
    aliases_in: Vec<Option<ByteString>>,
    /// The enhanced authentication method of CONNECT; re-authentication must use it.
    auth_method: Option<ByteString>,
    /// A re-authentication in progress [MQTT-4.12.1].
    reauth: Option<Box<dyn crate::auth::AuthExchange>>,
}

impl Conn {
    /// CONNECT on the home shard: validate, create / resume / take over the session, write
    /// CONNACK. `Err` means a failure CONNACK is in `link` and the connection must close.
    pub async fn open(
        ctx: &ShardCtx,
        link: Rc<ConnLink>,
        c: Box<Connect>,
        assigned: bool,
        authenticated: Option<Option<bytes::Bytes>>,
    ) -> Result<Conn, ()> {
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
            Err(())
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
            return Err(());
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
        }
        let expiry_s = session_expiry(&c, &cfg);
        let mut keep_alive_s = c.keep_alive_s;
        if v5 && cfg.server_keep_alive_s > 0 {
            keep_alive_s = cfg.server_keep_alive_s;
        }

        let shard = ctx.shard.clone();
        let (session, session_present) = {
            let mut s = shard.borrow_mut();
            let existing = s.sessions.get(&c.client_id).cloned();
            let mut present = false;
            let session = match existing {
                Some(old) => {
                    let (old_link, old_will) = {
                        let mut o = old.borrow_mut();
                        (o.conn.take(), o.will.take())
                    };
                    if let Some(l) = old_link {
                        // Session takeover [MQTT-3.1.4-3]: the old connection closes with 0x8E.
                        l.request_close(0x8E);
                    }
                    if let Some(w) = old_will {
                        // The old connection's will: published now unless delayed (a delayed
                        // will is cancelled by this reconnect [MQTT-3.1.3-9]).
                        let delayed = w.properties.will_delay_interval_s.unwrap_or(0) > 0;
                        if !delayed {
                            drop(s);
                            publish_will(ctx, w, 0);
                            s = shard.borrow_mut();
                        }
                    }
                    if c.clean_start {
                        s.remove_session(&old);
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
                        s.session_limits,
                    )));
                    s.sessions.insert(c.client_id.clone(), fresh.clone());
                    fresh
                }
            };
            (session, present)
        };
        let uid = {
            let mut se = session.borrow_mut();
            se.expiry_s = expiry_s;
            se.will = c.will.clone().map(Box::new);
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
        let conn = Conn {
            ctx: ctx.clone(),
            protocol: c.protocol,
            client_id: c.client_id.clone(),
            session,
            link,
            uid,
            keep_alive_s,
            connect_expiry_zero: expiry_s == 0,
            aliases_in: Vec::new(),
            auth_method: c.properties.authentication_method.clone(),
            reauth: None,
        };
        if session_present {
            conn.set_group_presence(true);
        }
        Ok(conn)
    }

    /// Tell the owners of this session's shared groups that it is (not) connected, so they
    /// prefer connected members.
    fn set_group_presence(&self, online: bool) {
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

    /// 1.5 × keep alive, or `None` when keep alive is 0 (disabled) [MQTT-3.1.2-24].
    pub fn keep_alive_timeout(&self) -> Option<Duration> {
        (self.keep_alive_s > 0).then(|| Duration::from_millis(u64::from(self.keep_alive_s) * 1500))
    }

    fn write(&self, p: Packet) {
        self.link.write_packet(&p, self.protocol);
    }

    /// One packet from the client. State first: only what a connected client may send.
    /// Every packet but SUBSCRIBE (see [`Conn::on_subscribe`], which may wait for peers).
    pub fn handle(&mut self, packet: Packet) -> Result<(), Close> {
        match packet {
            Packet::Publish(p) => self.on_publish(p),
            Packet::PubAck(a) => {
                self.session.borrow_mut().on_puback(a.packet_id);
                Ok(())
            }
            Packet::PubRec(a) => {
                self.session.borrow_mut().on_pubrec(&a);
                Ok(())
            }
            Packet::PubRel(a) => {
                // [MQTT-4.3.3-11]: answer PUBCOMP; an unknown id gets 0x92 in v5.
                let known = self.session.borrow_mut().incoming_qos2.remove(&a.packet_id);
                self.write(Packet::PubComp(Ack {
                    packet_id: a.packet_id,
                    reason: if known { 0 } else { 0x92 },
                    properties: Properties::default(),
                }));
                Ok(())
            }
            Packet::PubComp(a) => {
                self.session.borrow_mut().on_pubcomp(a.packet_id);
                Ok(())
            }
            Packet::Subscribe(_) => {
                debug_assert!(false, "SUBSCRIBE goes to on_subscribe");
                Ok(())
            }
            Packet::Unsubscribe(u) => {
                self.on_unsubscribe(u);
                Ok(())
            }
            Packet::PingReq => {
                self.write(Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect(d) => Err(self.on_disconnect(d)),
            // A second CONNECT is a protocol violation [MQTT-3.1.0-2]; so are packets only a
            // server sends, and AUTH without an authentication method [MQTT-4.12.0-1].
            Packet::Connect(_)
            | Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp => Err(Close::Protocol(0x82)),
            Packet::Auth(a) => self.on_auth(a),
        }
    }

    /// Re-authentication [MQTT-4.12.1]: AUTH 0x19 starts it with the CONNECT's method, AUTH
    /// 0x18 continues it; failure disconnects.
    fn on_auth(&mut self, a: codec::Auth) -> Result<(), Close> {
        let Some(method) = self.auth_method.clone() else {
            return Err(Close::Protocol(0x82)); // AUTH without a method in CONNECT [MQTT-4.12.0-7]
        };
        if a.properties.authentication_method.as_ref() != Some(&method) {
            return Err(Close::Protocol(0x82)); // [MQTT-4.12.1-1]
        }
        let data = a.properties.authentication_data.as_deref();
        let step = match (a.reason, self.reauth.as_mut()) {
            (0x19, None) => {
                let Some(auth) = self.ctx.auth.get(&method) else {
                    return Err(Close::Protocol(0x8C));
                };
                let (ex, step) = auth.start(data);
                self.reauth = ex;
                step
            }
            (0x18, Some(ex)) => ex.step(data),
            _ => return Err(Close::Protocol(0x82)),
        };
        let (reason, data) = match step {
            crate::auth::AuthStep::Continue(d) => (0x18, Some(d)),
            crate::auth::AuthStep::Success(d) => {
                self.reauth = None;
                (0x00, d)
            }
            // DISCONNECT has no 0x86 or 0x8C: a failed re-authentication is 0x87 Not
            // authorized [MQTT-4.12.1-2].
            crate::auth::AuthStep::Fail(_) => return Err(Close::Protocol(0x87)),
        };
        self.write(Packet::Auth(codec::Auth {
            reason,
            properties: Properties {
                authentication_method: Some(method),
                authentication_data: data,
                ..Properties::default()
            },
        }));
        Ok(())
    }

    /// Resolve or define a client topic alias [MQTT-3.3.2-8..12].
    fn resolve_alias(&mut self, p: &mut Publish) -> Result<(), Close> {
        let Some(alias) = p.properties.topic_alias.take() else {
            return Ok(());
        };
        let max = self.ctx.cfg.topic_alias_maximum;
        if alias == 0 || alias > max {
            return Err(Close::Protocol(0x94)); // [MQTT-3.3.2-9], [MQTT-3.3.2-10]
        }
        let slot = usize::from(alias - 1);
        if p.topic.is_empty() {
            match self.aliases_in.get(slot).and_then(|t| t.clone()) {
                Some(topic) => p.topic = topic,
                // An alias never defined on this connection is a Protocol Error.
                None => return Err(Close::Protocol(0x82)),
            }
        } else {
            if self.aliases_in.len() <= slot {
                self.aliases_in.resize(slot + 1, None);
            }
            self.aliases_in[slot] = Some(p.topic.clone());
        }
        Ok(())
    }

    fn on_publish(&mut self, mut p: Publish) -> Result<(), Close> {
        let cfg = self.ctx.cfg.clone();
        self.resolve_alias(&mut p)?;
        if !topic_within_limits(&p.topic, &cfg) {
            return Err(Close::Protocol(0x90));
        }
        if !p.properties.subscription_identifiers.is_empty() {
            // Only the server sends Subscription Identifiers [MQTT-3.3.4-6].
            return Err(Close::Protocol(0x82));
        }
        if p.qos as u8 > cfg.maximum_qos {
            return Err(Close::Protocol(0x9B)); // [MQTT-3.2.2-11]
        }
        if p.retain && !cfg.retain_available {
            return Err(Close::Protocol(0x9A)); // [MQTT-3.2.2-14]
        }
        if p.qos == QoS::ExactlyOnce {
            let mut s = self.session.borrow_mut();
            if s.incoming_qos2.contains(&p.packet_id) {
                // A retransmission of a message we already own: acknowledge, don't route twice.
                drop(s);
                self.write(pubrec(p.packet_id));
                return Ok(());
            }
            if s.incoming_qos2.len() >= cfg.receive_maximum as usize {
                return Err(Close::Protocol(0x93)); // [MQTT-3.3.4-9]
            }
            s.incoming_qos2.insert(p.packet_id);
        }
        let (qos, packet_id, retain) = (p.qos, p.packet_id, p.retain);
        let msg = Arc::new(message_from_publish(p, self.uid));
        let matched = {
            let mut shard = self.ctx.shard.borrow_mut();
            if retain {
                shard.set_retained(&msg, None);
            }
            shard.route(msg, false)
        };
        // v5: 0x10 "No matching subscribers" is still a success [MQTT-3.4.2.1].
        let reason = if matched || !self.protocol.is_v5() {
            0x00
        } else {
            0x10
        };
        let ack = Ack {
            packet_id,
            reason,
            properties: Properties::default(),
        };
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.write(Packet::PubAck(ack)),
            QoS::ExactlyOnce => self.write(Packet::PubRec(ack)),
        }
        Ok(())
    }

    pub async fn on_subscribe(&mut self, s: Subscribe) -> Result<(), Close> {
        let cfg = self.ctx.cfg.clone();
        let v5 = self.protocol.is_v5();
        let identifier = s.properties.subscription_identifiers.first().copied();
        let mut codes = Vec::with_capacity(s.filters.len());
        let mut announce: Vec<ByteString> = Vec::new();
        // Acks to wait for before SUBACK: shared-group joins at their owners.
        let mut joins: Vec<u64> = Vec::new();
        // (filter, granted options, subscription existed before): retained candidates.
        let mut granted: Vec<(ByteString, codec::SubOptions, bool)> = Vec::new();
        for (filter, mut opts) in s.filters {
            let shared = crate::shard::shared::parse_shared(&filter);
            if !topic_within_limits(&filter, &cfg) || matches!(shared, Some(Err(()))) {
                codes.push(if v5 { 0x8F } else { 0x80 });
                continue;
            }
            let (count, known) = {
                let se = self.session.borrow();
                (
                    se.subscriptions.len(),
                    se.subscriptions.contains_key(&filter),
                )
            };
            if !known && count >= cfg.subscriptions_per_session_max {
                codes.push(if v5 { 0x97 } else { 0x80 });
                continue;
            }
            if opts.qos as u8 > cfg.maximum_qos {
                opts.qos = QoS::from_u8(cfg.maximum_qos).unwrap_or(QoS::AtMostOnce);
            }
            if !v5 {
                opts = codec::SubOptions {
                    qos: opts.qos,
                    ..Default::default()
                };
            }
            self.session.borrow_mut().subscriptions.insert(
                filter.clone(),
                Subscription {
                    options: opts,
                    identifier,
                },
            );
            codes.push(opts.qos as u8);
            if let Some(Ok((_, inner))) = shared {
                // A shared subscription: join the group at its owner; no retained messages
                // [MQTT-4.8.2-?: shared subscriptions get no retained messages on subscribe].
                joins.push(self.join_group(&filter, inner, opts.qos, identifier));
                continue;
            }
            let (existed, tell) = self.ctx.shard.borrow_mut().subscribe(
                &self.session,
                self.uid,
                &filter,
                opts,
                identifier,
            );
            if tell {
                announce.push(filter.clone());
            }
            granted.push((filter, opts, existed));
        }
        if !announce.is_empty() {
            // SUBACK only once every shard routes this filter here, so a publish made after
            // the SUBACK reaches the subscriber whatever shard it arrives on.
            let token = {
                let mut shard = self.ctx.shard.borrow_mut();
                let peers = shard.shards - 1;
                let token = shard.begin_ack(peers * announce.len());
                for f in &announce {
                    shard.broadcast_interest(f, true, Some(token));
                }
                token
            };
            joins.push(token.token);
        }
        for token in joins {
            wait_acks(&self.ctx.shard, token).await;
        }
        self.write(Packet::SubAck(SubAck {
            packet_id: s.packet_id,
            properties: Properties::default(),
            codes,
        }));
        // Retained messages after the SUBACK, per Retain Handling [MQTT-3.3.1-9..11].
        for (filter, opts, existed) in granted {
            let send = match opts.retain_handling {
                0 => true,
                1 => !existed,
                _ => false,
            };
            if !send {
                continue;
            }
            let retained = self.ctx.shard.borrow().retained_matching(&filter);
            let mut session = self.session.borrow_mut();
            for m in retained {
                let qos = opts.qos.min(m.qos);
                session.deliver(Delivery {
                    msg: m,
                    qos,
                    retain: true,
                    sub_ids: identifier.into_iter().collect(),
                    shared: None,
                });
            }
        }
        Ok(())
    }

    /// Join (or update membership of) the shared group `key`; returns the ack token to wait
    /// for before SUBACK.
    fn join_group(
        &mut self,
        key: &ByteString,
        inner: &str,
        qos: QoS,
        identifier: Option<u32>,
    ) -> u64 {
        let mut shard = self.ctx.shard.borrow_mut();
        let member = shard.member_of(&self.session, qos, identifier);
        let reply = shard.begin_ack(1);
        let pending = shard.share_op(
            key.clone(),
            inner.into(),
            member,
            MemberOp::Join,
            Some(reply),
        );
        drop(shard);
        if let Some((own, reply)) = pending {
            spawn_ack_after(&self.ctx.shard, own, reply);
        }
        reply.token
    }

    fn on_unsubscribe(&mut self, u: Unsubscribe) {
        let mut codes = Vec::with_capacity(u.filters.len());
        for filter in u.filters {
            let had = self
                .session
                .borrow_mut()
                .subscriptions
                .remove(&filter)
                .is_some();
            let existed = self
                .ctx
                .shard
                .borrow_mut()
                .drop_subscription(&self.session, &filter);
            // 0x11: no subscription existed [MQTT-3.11.3-1] (v5 only; v3 UNSUBACK has no codes).
            codes.push(if existed && had { 0x00 } else { 0x11 });
        }
        if !self.protocol.is_v5() {
            codes.clear();
        }
        self.write(Packet::UnsubAck(UnsubAck {
            packet_id: u.packet_id,
            properties: Properties::default(),
            codes,
        }));
    }

    fn on_disconnect(&mut self, d: Disconnect) -> Close {
        if self.protocol.is_v5() {
            if let Some(e) = d.properties.session_expiry_interval_s {
                if self.connect_expiry_zero && e != 0 {
                    return Close::Protocol(0x82); // [MQTT-3.14.2-2]
                }
                let capped = cap_expiry(e, &self.ctx.cfg);
                self.session.borrow_mut().expiry_s = capped;
            }
            // 0x04 asks for the will; so does any error reason: only a normal disconnect
            // discards it [MQTT-3.1.2-8], [MQTT-3.14.4-3].
            if d.reason == 0x04 || d.reason >= 0x80 {
                return Close::NormalWithWill;
            }
        }
        Close::Normal
    }

    /// Runs between read batches: wait here when a peer shard's outbox is congested, so a fast
    /// publisher slows down instead of growing memory.
    pub async fn after_batch(&mut self) {
        loop {
            let drained = {
                let s = self.ctx.shard.borrow();
                if !s.outbox_congested() {
                    return;
                }
                s.outbox_drained.clone()
            };
            drained.wait().await;
        }
    }

    /// After the socket took bytes: refill the output buffer from the session queue.
    pub fn pump_if_drained(&mut self) {
        let half = self.ctx.cfg.out_buffer_bytes_max / 2;
        if self.link.out_len() < half {
            if let Ok(mut s) = self.session.try_borrow_mut() {
                if s.queued_len() > 0 {
                    s.pump();
                }
            }
        }
    }

    /// The DISCONNECT a v5 client gets for this close, if any [MQTT-4.13.1-1].
    pub fn disconnect_packet(&self, close: &Close) -> Option<Packet> {
        if !self.protocol.is_v5() {
            return None;
        }
        let reason = match close {
            Close::Protocol(r) | Close::TakenOver(r) => *r,
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
        let (will, expiry_s, generation, give_back, drops) = {
            let mut s = self.session.borrow_mut();
            let give_back = s.detach();
            let will = s.will.take();
            let drops = std::mem::take(&mut s.drops);
            (will, s.expiry_s, s.generation, give_back, drops)
        };
        if drops != Default::default() {
            // What the bounds cost this client while it was connected: say it where an
            // operator looks, and count it for the shard.
            log::info!(
                "client {}: dropped {} QoS 0 and {} QoS 1/2 messages (queued_messages_max, \
                 out_buffer_bytes_max), {} over its maximum packet size, {} expired",
                self.client_id,
                drops.qos0,
                drops.qos12,
                drops.too_large,
                drops.expired
            );
            shard.borrow_mut().stats.add_drops(&drops);
        }
        self.set_group_presence(false);
        // Unacknowledged shared-group messages go to another member of their group.
        for d in give_back {
            let mut sh = shard.borrow_mut();
            if let Some(key) = &d.shared {
                let owner = sh.share_owner(key);
                sh.share_publish(key, owner, d.msg, self.uid);
            }
        }
        let publish = !matches!(close, Close::Normal);
        if let (Some(w), true) = (will, publish) {
            let delay = w.properties.will_delay_interval_s.unwrap_or(0);
            if delay == 0 || expiry_s == 0 {
                // The will is sent when the session ends even if its delay has not passed
                // [MQTT-3.1.3-9]; with expiry 0 that is now.
                publish_will(&self.ctx, w, 0);
            } else {
                let ctx = self.ctx.clone();
                let session = self.session.clone();
                let wait = delay.min(expiry_s);
                glommio::spawn_local(async move {
                    glommio::timer::sleep(Duration::from_secs(u64::from(wait))).await;
                    let unchanged = {
                        let s = session.borrow();
                        s.generation == generation && !s.is_connected()
                    };
                    if unchanged {
                        publish_will(&ctx, w, 0);
                    }
                })
                .detach();
            }
        }
        if expiry_s == 0 {
            shard.borrow_mut().remove_session(&self.session);
        } else if expiry_s != u32::MAX {
            let session = self.session.clone();
            glommio::spawn_local(async move {
                glommio::timer::sleep(Duration::from_secs(u64::from(expiry_s))).await;
                let expired = {
                    let s = session.borrow();
                    s.generation == generation && !s.is_connected()
                };
                if expired {
                    shard.borrow_mut().remove_session(&session);
                }
            })
            .detach();
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
        0x8C => "bad authentication method",
        0x8D => "keep alive timeout",
        0x8E => "session taken over by another connection",
        0x90 => "topic name invalid or over the configured length/level limits",
        0x93 => "receive maximum exceeded",
        0x94 => "topic alias invalid",
        0x95 => "packet too large",
        0x99 => "payload format invalid",
        0x9A => "retain not supported",
        0x9B => "QoS not supported",
        _ => return None,
    })
}

fn pubrec(packet_id: u16) -> Packet {
    Packet::PubRec(Ack {
        packet_id,
        ..Ack::default()
    })
}

/// Session Expiry Interval for this CONNECT: v5 asks for it; a v3 persistent session lasts
/// "forever" (`u32::MAX`), both capped by `session_expiry_max_s` when set.
fn session_expiry(c: &Connect, cfg: &crate::config::Config) -> u32 {
    let asked = if c.protocol.is_v5() {
        c.properties.session_expiry_interval_s.unwrap_or(0)
    } else if c.clean_start {
        0
    } else {
        u32::MAX
    };
    cap_expiry(asked, cfg)
}

fn cap_expiry(asked: u32, cfg: &crate::config::Config) -> u32 {
    if cfg.session_expiry_max_s > 0 {
        asked.min(cfg.session_expiry_max_s)
    } else {
        asked
    }
}

fn topic_within_limits(topic: &str, cfg: &crate::config::Config) -> bool {
    // A topic of n bytes has at most n + 1 levels: the common short topic skips the count,
    // which would be a second scan of every PUBLISH's topic.
    topic.len() <= cfg.topic_bytes_max
        && (topic.len() < cfg.topic_levels_max
            || topic.bytes().filter(|&b| b == b'/').count() < cfg.topic_levels_max)
}

fn message_from_publish(p: Publish, origin_uid: u64) -> Message {
    let mut properties = p.properties;
    // Per-hop properties are not forwarded [MQTT-3.3.2-7], [MQTT-3.3.4-6].
    properties.topic_alias = None;
    properties.subscription_identifiers.clear();
    Message {
        topic: p.topic,
        payload: p.payload,
        qos: p.qos,
        retain: p.retain,
        expires_at: crate::session::expiry_from(&properties),
        properties,
        origin_uid,
    }
}

/// Publish a will message as if its client had sent it.
fn publish_will(ctx: &ShardCtx, w: Box<Will>, origin_uid: u64) {
    let w = *w;
    let mut properties = w.properties;
    properties.will_delay_interval_s = None;
    let msg = Arc::new(Message {
        topic: w.topic,
        payload: w.payload,
        qos: w.qos,
        retain: w.retain,
        expires_at: crate::session::expiry_from(&properties),
        properties,
        origin_uid,
    });
    let mut shard = ctx.shard.borrow_mut();
    if msg.retain {
        shard.set_retained(&msg, None);
    }
    shard.route(msg, false);
}
