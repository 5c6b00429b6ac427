//! `probe`: one blocking CONNECT/CONNACK exchange. Scripts use it (with `--wait`) to know a
//! freshly started broker is accepting MQTT, not merely listening.

use crate::cli::ProbeArgs;
use crate::client;
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use ringmq_codec::{self as codec, Packet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Connect once; `Ok(round trip)` when the broker answers CONNACK 0.
pub fn probe_once(args: &ProbeArgs) -> Result<Duration, String> {
    let b = &args.broker;
    let addr = crate::net::resolve(&b.host, b.port).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    let id = ByteString::from(format!("rbprobe{}", std::process::id()));
    let user = b.username.clone().map(ByteString::from);
    let pass = b.password.clone().map(Bytes::from);
    let pkt = client::connect_packet(&id, b.protocol, 10, user.as_ref(), pass.as_ref());
    let mut out = BytesMut::new();
    codec::encode(&pkt, b.protocol, &mut out).map_err(|e| e.to_string())?;
    s.write_all(&out).map_err(|e| e.to_string())?;
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 512];
    loop {
        let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before CONNACK".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        match codec::decode(&mut buf, b.protocol, 1 << 20) {
            Ok(Some(Packet::ConnAck(ca))) => {
                let rtt = t0.elapsed();
                let mut bye = BytesMut::new();
                let _ = codec::encode(
                    &Packet::Disconnect(Default::default()),
                    b.protocol,
                    &mut bye,
                );
                let _ = s.write_all(&bye);
                return if ca.code == 0 {
                    Ok(rtt)
                } else {
                    Err(format!("CONNACK refused with code 0x{:02x}", ca.code))
                };
            }
            Ok(Some(other)) => return Err(format!("expected CONNACK, got {other:?}")),
            Ok(None) => {}
            Err(e) => return Err(format!("decode: {e}")),
        }
    }
}

pub fn run(args: &ProbeArgs) -> Result<(), String> {
    let deadline = Instant::now() + args.wait;
    loop {
        match probe_once(args) {
            Ok(rtt) => {
                println!(
                    "ok: {}:{} answered CONNACK in {:.3} ms",
                    args.broker.host,
                    args.broker.port,
                    rtt.as_secs_f64() * 1000.0
                );
                return Ok(());
            }
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("{}:{}: {e}", args.broker.host, args.broker.port))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}
