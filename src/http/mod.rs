//! The admin HTTP API (`/api/v1/...`), Prometheus `/metrics` and the dashboard's assets: hyper's
//! HTTP/1.1 server on a current-thread tokio runtime, on a thread of its own beside the control
//! thread (`[http] bind`, default 127.0.0.1:18083).
//!
//! Owns: the listener, per-connection limits (header deadline, body size, connection count),
//! login tokens and the failed-login rate limit (in memory, on this thread), and the fan-out of
//! admin queries to the shards. Never: runs on a shard or touches shard state; it reads the
//! control thread's statistics snapshot and asks shards by message ([`crate::control::query`]),
//! waiting for them here, bounded, while they only `try_send` their answers.

pub mod auth;
pub mod openapi;
pub mod routes;
mod shards;
mod users;

use crate::auth::security::Security;
use crate::config::Config;
use crate::control::Handle;
use crate::limits;
use crate::listeners::ListenerConfig;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Everything a request handler reads: immutable configuration, the control plane's handle,
/// and this thread's own mutable state behind uncontended locks (only tasks of this one thread
/// take them).
pub struct State {
    pub cfg: Config,
    pub control: Handle,
    pub listeners: Vec<ListenerConfig>,
    /// The control thread's current passwords and ACL (what shards run with).
    pub security: Arc<Mutex<Arc<Security>>>,
    pub admins: auth::AdminUsers,
    pub sessions: Mutex<auth::Tokens>,
    pub failures: Mutex<auth::LoginFailures>,
}

/// A request's header must be complete within this time (a slowloris holds nothing longer).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Bind `[http] bind` and serve it on a thread of its own; `None` when `[http] enabled =
/// false`. A busy address is an error, like an MQTT listener's.
pub fn start(
    cfg: &Config,
    control: Handle,
    listeners: &[ListenerConfig],
    security: Arc<Mutex<Arc<Security>>>,
) -> std::io::Result<Option<std::thread::JoinHandle<()>>> {
    if !cfg.http.enabled {
        log::info!("admin HTTP API disabled ([http] enabled = false)");
        return Ok(None);
    }
    let addr: SocketAddr = cfg.http.bind.parse().map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("http.bind {}: not an address:port", cfg.http.bind),
        )
    })?;
    let listener = std::net::TcpListener::bind(addr).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("admin HTTP API on {addr}: {e} (set [http] bind or --http-bind, or --http-enabled false)"),
        )
    })?;
    listener.set_nonblocking(true)?;
    let users_file = cfg.admin_users_file();
    let admins = auth::AdminUsers::new(users_file.clone());
    log_start(addr, &users_file, &admins);
    let state = Arc::new(State {
        cfg: cfg.clone(),
        control,
        listeners: listeners.to_vec(),
        security,
        admins,
        sessions: Mutex::new(auth::Tokens::default()),
        failures: Mutex::new(auth::LoginFailures::default()),
    });
    let thread = std::thread::Builder::new()
        .name("ringmq-http".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    log::error!("admin HTTP API: cannot start its runtime: {e}");
                    return;
                }
            };
            rt.block_on(serve(listener, state));
        })?;
    Ok(Some(thread))
}

fn log_start(addr: SocketAddr, users_file: &std::path::Path, admins: &auth::AdminUsers) {
    log::info!("admin HTTP API on http://{addr}/api/v1 (dashboard at /, Prometheus at /metrics)");
    match admins.count() {
        Ok(0) => log::warn!(
            "admin HTTP API closed: no admin user in {} (there is no default password); add one \
             with `ringmq admin add-user NAME` (give it the broker's --config or --data-dir)",
            users_file.display()
        ),
        Ok(n) => log::info!(
            "admin HTTP API: {n} admin user(s) in {}",
            users_file.display()
        ),
        Err(e) => log::error!("admin HTTP API closed: {e}"),
    }
}

async fn serve(listener: std::net::TcpListener, state: Arc<State>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            log::error!("admin HTTP API: {e}");
            return;
        }
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(limits::HTTP_CONNECTIONS_MAX));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and the like: wait a little rather than spin.
                log::warn!("admin HTTP API: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                routes::handle(state.clone(), peer.ip(), req)
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                log::debug!("admin HTTP API: connection from {peer}: {e}");
            }
            drop(permit);
        });
    }
}
