//! The glue between shards and glommio: one pinned executor per shard, its SO_REUSEPORT
//! listener, the full meshes of lock-free channels (data, control and relay lanes), per peer and
//! lane a flusher task (outbox → channel, batched) and a receiver task (channel →
//! [`Shard::apply`]), and the shard's control task (commands from the control thread,
//! statistics snapshots, the slow-subscriber watchdog, shutdown).
//!
//! Never: shares a `Shard` between threads. Only `Send` things ([`MeshMsg`], control
//! [`Command`]s and [`Report`]s) cross.

use super::ctx::{spawn_ack_after, ShardCtx, ShardRef};
use super::{Deferred, Lane, MeshMsg, Shard};
use crate::auth::Registry;
use crate::config::Config;
use crate::control::{Command, Report, ShardPort};
use crate::limits;
use crate::net;
use glommio::channels::channel_mesh::{Full, MeshBuilder, Senders};
use glommio::{GlommioError, LocalExecutorBuilder, Placement};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Mesh = MeshBuilder<Vec<MeshMsg>, Full>;

/// Start `cfg.shard_count()` executors and serve until SIGTERM/SIGINT (or a shard fails), then
/// shut down gracefully. Returns the process exit code.
pub fn run(
    cfg: Config,
    security: crate::auth::security::Security,
    stop: crossbeam_channel::Receiver<i32>,
) -> std::io::Result<i32> {
    let shards = cfg.shard_count();
    if cfg.durability != crate::store::Durability::None {
        super::restore::check_layout(&cfg.data_dir, shards)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    }
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let data: Mesh = MeshBuilder::full(shards, cfg.mesh_channel_capacity);
    let control_lane: Mesh = MeshBuilder::full(shards, cfg.mesh_channel_capacity);
    let relay_lane: Mesh = MeshBuilder::full(shards, cfg.mesh_channel_capacity);
    let auth = Arc::new(Registry::from_config(&cfg));
    let admission = Arc::new(
        crate::net::admission::Admission::from_config(&cfg)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
    );
    let sessions_total: Arc<std::sync::atomic::AtomicUsize> = Default::default();
    if !auth.names().is_empty() {
        log::info!(
            "enhanced authentication methods: {}",
            auth.names().join(", ")
        );
    }
    // Bind every listener before starting executors so a busy port fails fast and clearly.
    let (configured, default) = cfg.listeners();
    let mut opened = Vec::new();
    let mut sockets: Vec<Vec<std::net::TcpListener>> = (0..shards).map(|_| Vec::new()).collect();
    for l in configured {
        let first = net::listener::ensure_unused(&l.bind)
            .and_then(|()| net::listener::bind(&l.bind, cfg.listen_backlog));
        match first {
            Ok(first) => {
                sockets[0].push(first);
                for per_shard in sockets.iter_mut().skip(1) {
                    per_shard.push(net::listener::bind(&l.bind, cfg.listen_backlog)?);
                }
                opened.push(l);
            }
            // The loopback default tries IPv6 too; a host without ::1 just serves IPv4.
            Err(e) if default && l.addr().is_some_and(|a| a.is_ipv6()) => {
                log::warn!("not listening on {}: {e}", l.bind);
            }
            Err(e) => return Err(e),
        }
    }
    let tls = crate::tls::load_all(&opened)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    log_listeners(&opened, default, &cfg);
    let (mut control, ports) = crate::control::plane(shards);
    if cfg.sys_interval_s > 0 {
        control.enable_sys(Duration::from_secs(cfg.sys_interval_s));
    }
    control.set_node_name(&cfg.node_name);
    let security = Arc::new(security);
    // The control thread's own copy of what shards run with, to reload from (a mutex the data
    // path never sees).
    let current = Arc::new(std::sync::Mutex::new(security.clone()));
    let (reload_from, reload_cfg, reload_current) = (opened.clone(), cfg.clone(), current.clone());
    control.on_reload(Box::new(move || {
        let tls = crate::tls::load_all(&reload_from)?;
        let mut cur = reload_current
            .lock()
            .map_err(|_| "security state poisoned".to_string())?;
        let r = cur.reload(&reload_cfg);
        for e in &r.errors {
            log::error!("reload: {e} (keeping the previous file)");
        }
        *cur = Arc::new(r.security);
        Ok(crate::control::Reload {
            tls,
            security: Some(cur.clone()),
            errors: r.errors,
        })
    }));
    let current_for_http = current.clone();
    let poll_current = current;
    control.on_poll(Box::new(move || {
        let mut cur = poll_current.lock().ok()?;
        let fresh = Arc::new(cur.poll()?);
        *cur = fresh.clone();
        Some(crate::control::Reload {
            tls: Vec::new(),
            security: Some(fresh),
            errors: Vec::new(),
        })
    }));
    // The admin API on its own control-plane thread; bound here, after the MQTT listeners, so
    // a busy port stops the start as clearly as theirs.
    let _http = crate::http::start(&cfg, control.handle(), &opened, current_for_http)?;
    for ((id, listener), port) in sockets.into_iter().enumerate().zip(ports) {
        let listener: Vec<_> = listener
            .into_iter()
            .zip(opened.iter().cloned().zip(tls.iter().cloned()))
            .collect();
        let cfg = cfg.clone();
        let meshes = (data.clone(), control_lane.clone(), relay_lane.clone());
        let auth = auth.clone();
        let shared = (admission.clone(), sessions_total.clone(), security.clone());
        let placement = if cfg.pin && shards <= cpus {
            Placement::Fixed(id)
        } else {
            Placement::Unbound
        };
        LocalExecutorBuilder::new(placement)
            .name(&format!("ringmq-shard-{id}"))
            // glommio's registered I/O buffers count against RLIMIT_MEMLOCK; our sockets do not
            // use them, so keep the reservation small (8 MiB hosts run several shards).
            .io_memory(limits::IO_MEMORY_BYTES)
            .ring_depth(limits::RING_DEPTH)
            .spawn(move || async move {
                let (admission, sessions_total, security) = shared;
                let shared = Shared {
                    auth,
                    admission,
                    sessions_total,
                    security,
                };
                shard_main(id, shards, cfg, meshes, listener, shared, port).await
            })
            .map_err(|e| std::io::Error::other(format!("starting shard {id}: {e}")))?;
    }
    Ok(control.run(stop, limits::SHUTDOWN_GRACE + Duration::from_secs(1)))
}

/// Say what is served where, and who may connect: the start-up line an operator reads first.
fn log_listeners(listeners: &[crate::listeners::ListenerConfig], default: bool, cfg: &Config) {
    for l in listeners {
        let anonymous = if l.anonymous_allowed(cfg.allow_anonymous) {
            "anonymous clients allowed"
        } else {
            "anonymous clients refused (set allow_anonymous = true to admit them)"
        };
        log::info!(
            "listening on {}://{}{}{}: {anonymous}",
            l.protocol.name(),
            l.bind,
            if l.protocol.is_websocket() {
                l.ws_path()
            } else {
                ""
            },
            if default {
                " (default: loopback only; add a [[listener]] or --bind to serve the network)"
            } else {
                ""
            }
        );
    }
}

type Sockets = Vec<(
    std::net::TcpListener,
    (
        crate::listeners::ListenerConfig,
        Option<Arc<rustls::ServerConfig>>,
    ),
)>;

/// What every shard shares with the others (read-only, or counted with atomics off the data
/// path).
struct Shared {
    auth: Arc<Registry>,
    admission: Arc<crate::net::admission::Admission>,
    sessions_total: Arc<std::sync::atomic::AtomicUsize>,
    security: Arc<crate::auth::security::Security>,
}

async fn shard_main(
    id: usize,
    shards: usize,
    cfg: Config,
    meshes: (Mesh, Mesh, Mesh),
    listener: Sockets,
    shared: Shared,
    port: ShardPort,
) {
    let cfg = Rc::new(cfg);
    let mut s = Shard::new(id, shards, cfg.clone());
    s.sessions_total = shared.sessions_total;
    s.security = shared.security;
    // Recovery reads this shard's log on this shard's thread: shards recover in parallel.
    let image = match super::restore::open_store(&mut s).await {
        Ok(image) => image,
        Err(why) => {
            log::error!("shard {id}: {why}");
            port.report(Report::Fatal { shard: id, why });
            return;
        }
    };
    let shard = Rc::new(RefCell::new(s));
    if let Some(image) = image {
        // Before the mesh and the listeners: no CONNECT can see this shard without its stored
        // sessions. What peers must learn (retained messages, interests) waits in the outboxes
        // for the flushers.
        super::restore::restore(&shard, image);
        log::debug!("shard {id}: store state restored");
    }
    let ctx = ShardCtx {
        shard: shard.clone(),
        cfg: cfg.clone(),
        auth: shared.auth,
        admission: shared.admission,
    };
    let port = Rc::new(port);
    let lanes = [
        (Lane::Data, meshes.0),
        (Lane::Control, meshes.1),
        (Lane::Relay, meshes.2),
    ];
    for (lane, mesh) in lanes {
        let (senders, mut receivers) = match mesh.join().await {
            Ok(x) => x,
            Err(e) => {
                log::error!("shard {id}: joining the shard mesh failed: {e}");
                port.report(Report::Fatal {
                    shard: id,
                    why: format!("joining the shard mesh failed: {e}"),
                });
                return;
            }
        };
        let senders = Rc::new(senders);
        for peer in (0..shards).filter(|&p| p != id) {
            let f = flusher(shard.clone(), senders.clone(), lane, peer, port.clone());
            glommio::spawn_local(f).detach();
        }
        for (peer, rx) in receivers.streams() {
            let ctx = ctx.clone();
            glommio::spawn_local(async move {
                if lane != Lane::Control {
                    // Data waits for every peer's restore (`MeshMsg::Restored`).
                    let ev = ctx.shard.borrow().restored.clone();
                    let notified = ev.wait();
                    if !ctx.shard.borrow().all_peers_restored() {
                        notified.await;
                    }
                }
                while let Some(batch) = rx.recv().await {
                    ctx.shard.borrow_mut().stats.mesh_batches_in += 1;
                    let mut confirm = 0;
                    for msg in batch {
                        confirm = confirm.max(msg.confirm_tag());
                        let deferred = ctx.shard.borrow_mut().apply(msg);
                        match deferred {
                            Some(Deferred::HandOver(h)) => {
                                net::arrival::spawn_handed_over(&ctx, *h)
                            }
                            Some(Deferred::AckAfter(own, reply)) => {
                                spawn_ack_after(&ctx.shard, own, reply)
                            }
                            None => {}
                        }
                    }
                    if confirm != 0 {
                        // One confirmation per batch: the publisher's shard learns its messages
                        // are stored here once the commit covering them completes.
                        ctx.shard.borrow_mut().confirm_to(peer, lane, confirm);
                    }
                }
                log::debug!("shard {id}: {lane:?} channel from shard {peer} closed");
            })
            .detach();
        }
    }
    // After everything restore queued for the peers, on the same control lanes.
    shard.borrow_mut().send_restored(1);
    let journal = shard.borrow().journal.clone();
    if let Some(j) = &journal {
        let interval = Duration::from_micros(cfg.commit_interval_us);
        glommio::spawn_local(j.log.clone().run_committer(interval)).detach();
        glommio::spawn_local(super::restore::commit_pump(shard.clone(), j.clone())).detach();
        glommio::spawn_local(super::compact::compactor(shard.clone(), j.clone())).detach();
    }
    let shutdown = Rc::new(super::event::Event::default());
    // No client before the restore barrier (`MeshMsg::Restored`): a resent PUBLISH must find
    // every restored shared group. Milliseconds: the peers only exchange two control messages.
    {
        let ev = shard.borrow().restored.clone();
        let notified = ev.wait();
        if !shard.borrow().all_peers_restored() {
            notified.await;
        }
    }
    let mut views = Vec::new();
    let mut accepting = Vec::new();
    for (socket, (lcfg, tls)) in listener {
        let view = Rc::new(net::listener::Listener::new(
            lcfg,
            tls,
            ctx.cfg.packet_bytes_max,
        ));
        views.push(view.clone());
        accepting.push(glommio::spawn_local(net::listener::accept_loop(
            ctx.clone(),
            view,
            socket,
        )));
    }
    glommio::spawn_local(control_task(
        shard.clone(),
        port.clone(),
        shutdown.clone(),
        views,
    ))
    .detach();
    log::debug!("shard {id} serving");
    shutdown.wait().await;
    for task in accepting {
        // Stop accepting: cancelled at its next await.
        drop(task);
    }
    drain_connections(&shard).await;
    if let Some(j) = journal {
        // What is appended gets committed before the shard reports it stopped.
        j.log.close();
        let _ = futures_lite::future::or(
            async {
                let _ = j.log.commit().await;
            },
            glommio::timer::sleep(limits::SHUTDOWN_GRACE),
        )
        .await;
    }
    // The last counts, so the control thread's total includes what arrived since the last
    // once-a-second report.
    let stats = shard.borrow().snapshot();
    port.report(Report::Stats { shard: id, stats });
    port.report(Report::Stopped { shard: id });
}

/// Shutdown on this shard: every connected client is asked to close with 0x8B (its connection
/// then writes DISCONNECT and flushes what it had), and the shard waits for them, bounded.
async fn drain_connections(shard: &ShardRef) {
    let links: Vec<_> = {
        let mut s = shard.borrow_mut();
        s.stopping = true;
        s.sessions
            .values()
            .filter_map(|se| se.borrow().conn.clone())
            .collect()
    };
    for l in links {
        l.request_close(0x8B);
    }
    let deadline = Instant::now() + limits::SHUTDOWN_GRACE;
    while shard.borrow().live_connections > 0 && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
}

/// The shard's side of the control plane, in the background: commands and due timers (session
/// expiry, delayed wills) every tick, a statistics snapshot and the slow-subscriber watchdog
/// about once a second.
async fn control_task(
    shard: ShardRef,
    port: Rc<ShardPort>,
    shutdown: Rc<super::event::Event>,
    listeners: Vec<Rc<net::listener::Listener>>,
) {
    let timeout = Duration::from_secs(shard.borrow().cfg.slow_subscriber_timeout_s);
    // The idle sweep's period in ticks (0: hibernation off): half `hibernate_idle_ms`, so a
    // connection sleeps after one to two of it without traffic.
    let sweep_ticks = match shard.borrow().cfg.hibernate_idle_ms {
        0 => 0,
        ms => (ms / 2 / limits::CONTROL_TICK.as_millis() as u64).max(1),
    };
    let mut ticks: u64 = 0;
    loop {
        glommio::timer::sleep(limits::CONTROL_TICK).await;
        ticks += 1;
        // Every command waiting (bounded by the channel's capacity), not one per tick.
        while let Ok(command) = port.commands.try_recv() {
            match command {
                Command::Shutdown => {
                    shutdown.notify();
                    return;
                }
                Command::Reload(r) => {
                    for (l, tls) in listeners.iter().zip(r.tls.iter()) {
                        l.set_tls(tls.clone());
                    }
                    if let Some(sec) = &r.security {
                        shard.borrow_mut().security = sec.clone();
                    }
                }
                Command::Sys(values) => shard.borrow_mut().publish_sys(&values),
                Command::Query { query, reply } => super::query::answer(&shard, &query, &reply),
            }
        }
        shard.borrow_mut().fire_timers(Instant::now());
        if sweep_ticks > 0 && ticks.is_multiple_of(sweep_ticks) {
            let s = shard.borrow();
            net::dormant::sweep(
                s.sessions
                    .values()
                    .filter_map(|se| se.borrow().conn.clone()),
            );
        }
        net::dormant::collect_after_sleeps();
        if ticks.is_multiple_of(limits::CONTROL_TICKS_PER_SECOND) {
            let mut s = shard.borrow_mut();
            s.check_slow_subscribers(Instant::now(), timeout);
            let stats = s.snapshot();
            port.report(Report::Stats { shard: s.id, stats });
            port.report(Report::Topics {
                shard: s.id,
                rows: s.prefixes.snapshot(),
            });
        }
    }
}

/// Sends this shard's outbox for `peer` on `lane` in batches. A full channel makes this task
/// wait, never drop: the data outbox then grows up to [`super::OUTBOX_MAX`] and publishers wait
/// in turn. One flusher per peer and lane keeps per-publisher order. A closed channel means the
/// peer shard is gone: outside shutdown that is fatal for the broker (reported, not ignored).
async fn flusher(
    shard: ShardRef,
    senders: Rc<Senders<Vec<MeshMsg>>>,
    lane: Lane,
    peer: usize,
    port: Rc<ShardPort>,
) {
    loop {
        let (batch, ready, drained) = {
            let mut s = shard.borrow_mut();
            let batch = s.take_outbox(lane, peer, limits::MESH_BATCH_MAX);
            (
                batch,
                s.outbox_ready[lane as usize][peer].clone(),
                s.outbox_drained.clone(),
            )
        };
        if batch.is_empty() {
            ready.wait().await;
            // Let the tasks that are already runnable add to the batch before it leaves.
            glommio::yield_if_needed().await;
            continue;
        }
        shard.borrow_mut().stats.mesh_batches_out += 1;
        if let Err(e) = senders.send_to(peer, batch).await {
            let (id, stopping) = {
                let s = shard.borrow();
                (s.id, s.stopping)
            };
            if !stopping {
                let why = match e {
                    GlommioError::Closed(_) => format!("{lane:?} channel to shard {peer} closed"),
                    other => format!("{lane:?} channel to shard {peer} failed: {other}"),
                };
                port.report(Report::Fatal { shard: id, why });
            }
            return;
        }
        drained.notify();
    }
}
