//! Fuzz the protocol engine with packet sequences: up to three clients on one in-memory shard
//! (1 or 2 shards configured, small queue and window bounds so holds, queues and drops happen)
//! send whatever bytes the input holds, between timer ticks and socket drains. The engine must
//! never panic, and everything it writes for a client must decode as the packets a client reads.
//!
//! Input layout: byte 0 picks the shard count; then records `[control][len][len bytes]`:
//! control bits 0-1 pick the client (3 = fire timers instead), bits 2-3 its protocol when it
//! (re)connects, bit 4 drains its output buffer afterwards, bit 5 confirms (or times out) a
//! pending SUBSCRIBE, bit 6 its clean start.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ringmq::codec::{self, Connect, Properties, Protocol};
use ringmq::config::Config;
use ringmq::engine::{Close, Engine, Step};
use ringmq::session::ConnLink;
use ringmq::shard::ctx::ShardCtx;
use ringmq::shard::Shard;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MAX: usize = 1 << 16;

struct Client {
    engine: Engine,
    link: Rc<ConnLink>,
    protocol: Protocol,
    rbuf: BytesMut,
}

/// What the client would read: every byte must decode as a packet.
fn check_output(link: &ConnLink, protocol: Protocol) {
    let mut out = BytesMut::from(&link.with_out(|o| o.take_all())[..]);
    loop {
        match codec::decode(&mut out, protocol, usize::MAX >> 4) {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => panic!("the engine wrote bytes a client cannot decode: {e}"),
        }
    }
    assert!(out.is_empty(), "a partial packet in the output buffer");
}

fn protocol_of(bits: u8) -> Protocol {
    match bits & 3 {
        0 => Protocol::V310,
        1 => Protocol::V311,
        _ => Protocol::V5,
    }
}

fn end(c: Client, close: Close) {
    if let Some(p) = c.engine.disconnect_packet(&close) {
        c.link.write_packet(&p, c.protocol);
    }
    c.engine.close(close);
    check_output(&c.link, c.protocol);
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, mut rest)) = data.split_first() else {
        return;
    };
    let shards = 1 + usize::from(first & 1);
    let cfg = Rc::new(Config {
        inflight_max: 2,
        queued_messages_max: 4,
        queued_bytes_max: 512,
        out_buffer_bytes_max: 2048,
        packet_bytes_max: MAX,
        receive_maximum: 4,
        topic_alias_maximum: 4,
        ..Config::default()
    });
    let ctx = ShardCtx {
        shard: Rc::new(RefCell::new(Shard::new(0, shards, cfg.clone()))),
        cfg,
        auth: Arc::new(ringmq::auth::Registry::default()),
        admission: Arc::new(ringmq::net::admission::Admission::open_door()),
    };
    let t0 = Instant::now();
    let mut ticks = 0u64;
    let mut clients: [Option<Client>; 3] = [None, None, None];
    while rest.len() >= 2 {
        let (control, len) = (rest[0], usize::from(rest[1]));
        let bytes = &rest[2..(2 + len).min(rest.len())];
        rest = &rest[(2 + len).min(rest.len())..];
        let who = usize::from(control & 3);
        if who == 3 {
            ticks += 1 + u64::from(control >> 2);
            ctx.shard
                .borrow_mut()
                .fire_timers(t0 + Duration::from_secs(ticks));
            continue;
        }
        let slot = &mut clients[who];
        if slot.is_none() {
            let protocol = protocol_of(control >> 2);
            let link = Rc::new(ConnLink::new());
            // Large payloads queued by reference, as on a plain TCP connection.
            link.set_shared_payloads(true);
            let connect = Box::new(Connect {
                protocol,
                clean_start: control & 0x40 != 0,
                keep_alive_s: u16::from(control >> 7) * 2,
                properties: Properties::default(),
                client_id: format!("c{who}").into(),
                will: None,
                username: None,
                password: None,
            });
            match Engine::open(&ctx, link.clone(), connect, false, None, Default::default()) {
                Ok(engine) => {
                    *slot = Some(Client {
                        engine,
                        link,
                        protocol,
                        rbuf: BytesMut::new(),
                    })
                }
                Err(_) => {
                    check_output(&link, protocol);
                    continue;
                }
            }
        }
        let Some(mut c) = slot.take() else { continue };
        c.rbuf.extend_from_slice(bytes);
        let mut closed = None;
        loop {
            match codec::decode_from_client(&mut c.rbuf, c.protocol, MAX) {
                Ok(Some(packet)) => match c.engine.handle(packet) {
                    Ok(Step::Done) => {}
                    Ok(Step::AwaitMesh(p)) => c.engine.finish_subscribe(*p, control & 0x20 != 0),
                    Err(close) => {
                        closed = Some(close);
                        break;
                    }
                },
                Ok(None) => break,
                Err(e) => {
                    closed = Some(Close::Protocol(e.reason_code()));
                    break;
                }
            }
        }
        if let Some(close) = closed {
            end(c, close);
            continue;
        }
        c.engine.resume();
        if control & 0x10 != 0 {
            check_output(&c.link, c.protocol);
            c.engine.pump_if_drained();
        }
        if let Some(reason) = c.link.close_requested() {
            end(c, Close::requested(reason));
            continue;
        }
        *slot = Some(c);
    }
    for c in clients.into_iter().flatten() {
        end(c, Close::Lost);
    }
});
