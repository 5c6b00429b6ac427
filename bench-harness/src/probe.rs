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

/// What one successful probe saw.
pub struct Probed {
    pub rtt: Duration,
    /// Over TLS: the negotiated version and cipher suite, e.g. `TLSv1_3 TLS13_AES_256_GCM_SHA384`;
    /// `WebSocket` with `--ws`.
    pub tls: Option<String>,
}

/// Connect once (over TLS with `--tls`, over WebSocket with `--ws`); `Ok` when the broker
/// answers CONNACK 0.
pub fn probe_once(args: &ProbeArgs) -> Result<Probed, String> {
    let b = &args.broker;
    // Flag errors (such as --ws with --tls) before any connection attempt.
    let ws = crate::ws::from_args(b)?;
    let addr = crate::net::resolve(&b.host, b.port).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let tcp =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    if let Some(w) = ws {
        let mut s = BlockingWs::open(tcp, w.connection(u64::from(std::process::id())))?;
        exchange(&mut s, args)?;
        return Ok(Probed {
            rtt: t0.elapsed(),
            tls: Some("WebSocket".into()),
        });
    }
    match crate::tls::from_args(b)? {
        None => {
            let mut s = tcp;
            exchange(&mut s, args)?;
            Ok(Probed {
                rtt: t0.elapsed(),
                tls: None,
            })
        }
        Some(t) => {
            let conn = t.connection().map_err(|e| format!("TLS: {e}"))?;
            let mut s = rustls::StreamOwned::new(conn, tcp);
            exchange(&mut s, args)?;
            let rtt = t0.elapsed();
            let version = s.conn.protocol_version().map(|v| format!("{v:?}"));
            let suite = s
                .conn
                .negotiated_cipher_suite()
                .map(|c| format!("{:?}", c.suite()));
            Ok(Probed {
                rtt,
                tls: Some(format!(
                    "{} {}",
                    version.as_deref().unwrap_or("?"),
                    suite.as_deref().unwrap_or("?")
                )),
            })
        }
    }
}

/// A blocking stream of MQTT bytes over a WebSocket connection (`probe --ws`).
struct BlockingWs {
    tcp: TcpStream,
    ws: crate::ws::WsConn,
    /// MQTT bytes received and not yet read.
    rbuf: BytesMut,
}

impl BlockingWs {
    /// Send the upgrade request and read until the 101 has been checked.
    fn open(tcp: TcpStream, ws: crate::ws::WsConn) -> Result<BlockingWs, String> {
        let mut s = BlockingWs {
            tcp,
            ws,
            rbuf: BytesMut::new(),
        };
        s.send().map_err(|e| e.to_string())?;
        while !s.ws.is_open() {
            s.receive().map_err(|e| e.to_string())?;
        }
        Ok(s)
    }

    fn send(&mut self) -> std::io::Result<()> {
        self.tcp.write_all(&self.ws.out)?;
        self.ws.out.clear();
        Ok(())
    }

    fn receive(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 512];
        let n = self.tcp.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let r = self
            .ws
            .receive(&chunk[..n], &mut self.rbuf)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        if r.closed.is_some() {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.send()
    }
}

impl Read for BlockingWs {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.rbuf.is_empty() {
            self.receive()?;
        }
        let n = buf.len().min(self.rbuf.len());
        buf[..n].copy_from_slice(&self.rbuf.split_to(n));
        Ok(n)
    }
}

impl Write for BlockingWs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut b = BytesMut::from(buf);
        self.ws.frame(&mut b);
        self.send()?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.tcp.flush()
    }
}

/// CONNECT, wait for CONNACK, DISCONNECT.
fn exchange<S: Read + Write>(s: &mut S, args: &ProbeArgs) -> Result<(), String> {
    let b = &args.broker;
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
                let mut bye = BytesMut::new();
                let _ = codec::encode(
                    &Packet::Disconnect(Default::default()),
                    b.protocol,
                    &mut bye,
                );
                let _ = s.write_all(&bye);
                let _ = s.flush();
                return if ca.code == 0 {
                    Ok(())
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
            Ok(p) => {
                println!(
                    "ok: {}:{} answered CONNACK in {:.3} ms{}",
                    args.broker.host,
                    args.broker.port,
                    p.rtt.as_secs_f64() * 1000.0,
                    p.tls.map(|t| format!(" over {t}")).unwrap_or_default()
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
