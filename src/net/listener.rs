//! Listening sockets. Every shard binds its own socket on each listener's address with
//! SO_REUSEPORT, so the kernel spreads accepted connections across shards and accept needs no
//! shared lock.
//!
//! Owns: a shard's view of each listener: its configuration, for TLS the current rustls
//! configuration (replaced when the control thread reloads certificates on SIGHUP), and for
//! WebSocket the handshake's checks.
//! Never: reads a certificate file (the control thread does), or blocks in accept.

use super::accept;
use crate::listeners::ListenerConfig;
use crate::shard::ctx::ShardCtx;
use crate::transport::ktls::ListenerKtls;
use crate::transport::ws::handshake;
use glommio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// One configured listener, as one shard sees it.
pub struct Listener {
    pub cfg: ListenerConfig,
    tls: RefCell<Option<Arc<rustls::ServerConfig>>>,
    /// What a WebSocket listener's handshake accepts (`None`: not a WebSocket listener).
    pub ws: Option<WsPolicy>,
    /// kTLS (`ktls = true`), on this shard until the kernel refuses it.
    pub ktls: ListenerKtls,
}

/// A WebSocket listener's handshake checks and frame bound.
pub struct WsPolicy {
    pub handshake: handshake::Policy,
    /// The largest data frame payload: one packet of the broker's maximum size.
    pub frame_payload_max: u64,
}

impl Listener {
    pub fn new(
        cfg: ListenerConfig,
        tls: Option<Arc<rustls::ServerConfig>>,
        packet_bytes_max: usize,
    ) -> Listener {
        let ws = cfg.protocol.is_websocket().then(|| WsPolicy {
            handshake: handshake::Policy {
                path: cfg.ws_path().to_owned(),
                origins: cfg.origins.clone(),
            },
            frame_payload_max: packet_bytes_max as u64,
        });
        Listener {
            ktls: ListenerKtls::new(cfg.ktls),
            cfg,
            tls: RefCell::new(tls),
            ws,
        }
    }

    /// The TLS configuration new connections get (`None` for a plain listener).
    pub fn tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.tls.borrow().clone()
    }

    /// Certificates reloaded: connections accepted from now on use them; open ones keep theirs.
    pub fn set_tls(&self, tls: Option<Arc<rustls::ServerConfig>>) {
        if self.cfg.protocol.is_tls() && tls.is_some() {
            *self.tls.borrow_mut() = tls;
        }
    }
}

/// Fail if something already listens on `addr`. The shards' sockets use SO_REUSEPORT, which
/// would also let them join another process's listening group on the same port (a second
/// ringmq started by mistake): the kernel would then split clients between two brokers that
/// do not know each other. A plain bind (SO_REUSEADDR, so a restart's TIME_WAIT does not
/// count) is refused by any live listener, as Mosquitto's own bind would be.
pub fn ensure_unused(addr: &str) -> std::io::Result<()> {
    // A broker killed with SIGKILL leaves its listening socket alive for a moment: io_uring
    // requests still hold it until the kernel tears the ring down after the process is gone.
    // A restart (systemd, a supervisor, a crash test) must wait that out, not fail.
    let deadline = std::time::Instant::now() + PORT_RELEASE_WAIT;
    loop {
        match probe_unused(addr) {
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            r => return r,
        }
    }
}

/// How long start-up waits for a port a previous process is still releasing.
const PORT_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

fn probe_unused(addr: &str) -> std::io::Result<()> {
    let addr: SocketAddr = addr.parse().map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr}: {e}"))
    })?;
    if addr.port() == 0 {
        return Ok(());
    }
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    probe.set_reuse_address(true)?;
    if addr.is_ipv6() {
        probe.set_only_v6(true)?;
    }
    probe.bind(&addr.into()).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("binding {addr}: {e} (is another broker listening there?)"),
        )
    })
}

/// Bind one SO_REUSEPORT listener (called once per shard and listener, before the executors
/// start).
pub fn bind(addr: &str, backlog: u32) -> std::io::Result<std::net::TcpListener> {
    let addr: SocketAddr = addr.parse().map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr}: {e}"))
    })?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        // [::]:1883 serves IPv6 only; IPv4 gets its own listener, as Mosquitto's do.
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .map_err(|e| std::io::Error::new(e.kind(), format!("binding {addr}: {e}")))?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    Ok(socket.into())
}

/// Accept forever on this shard's socket of `listener`, one task per connection.
pub async fn accept_loop(ctx: ShardCtx, listener: Rc<Listener>, socket: std::net::TcpListener) {
    // SAFETY: the fd comes from a listening socket we own and give to glommio.
    let socket = unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) };
    loop {
        match socket.accept().await {
            Ok(stream) => {
                let peer = stream.peer_addr().ok().map(|a| a.ip());
                // Refused here, before the connection costs a task, a buffer or a handshake:
                // dropping the stream closes it.
                let Ok(ticket) = ctx.admission.admit(peer, std::time::Instant::now()) else {
                    continue;
                };
                ctx.shard.borrow_mut().stats.connections += 1;
                let task = accept::accept(ctx.clone(), listener.clone(), stream, ticket);
                glommio::spawn_local(task).detach();
            }
            Err(e) => {
                // EMFILE/ENFILE: out of descriptors. Back off instead of spinning; existing
                // clients keep being served.
                log::warn!("accept failed: {e} (see tuning/ for open-file limits)");
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
