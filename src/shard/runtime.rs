//! The glue between shards and glommio: one pinned executor per shard, its SO_REUSEPORT
//! listener, the full mesh of lock-free channels, and per peer a flusher task (outbox → channel,
//! batched) and a receiver task (channel → [`Shard::apply`]).
//!
//! Never: shares a `Shard` between threads. Only `Send` things ([`MeshMsg`]) cross.

use super::{AckToken, Deferred, MeshMsg, Shard};
use crate::auth::Registry;
use crate::config::Config;
use crate::limits;
use crate::net;
use glommio::channels::channel_mesh::{MeshBuilder, Senders};
use glommio::{LocalExecutorBuilder, Placement};
use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;

pub type ShardRef = Rc<RefCell<Shard>>;

/// Everything a connection task needs from its shard.
#[derive(Clone)]
pub struct ShardCtx {
    pub shard: ShardRef,
    pub cfg: Rc<Config>,
    /// Authentication methods; built once, read-only, shared by every shard.
    pub auth: Arc<Registry>,
}

/// Start `cfg.shard_count()` executors and block until they all stop (they run until the
/// process is killed, or one fails to bind).
pub fn run(cfg: Config) -> std::io::Result<()> {
    let shards = cfg.shard_count();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mesh: MeshBuilder<Vec<MeshMsg>, _> = MeshBuilder::full(shards, cfg.mesh_channel_capacity);
    let auth = Arc::new(Registry::from_config(&cfg));
    if !auth.names().is_empty() {
        log::info!(
            "enhanced authentication methods: {}",
            auth.names().join(", ")
        );
    }
    // Bind every listener before starting executors so a busy port fails fast and clearly.
    let mut listeners = Vec::with_capacity(shards);
    for _ in 0..shards {
        listeners.push(net::listener::bind(&cfg.bind, cfg.listen_backlog)?);
    }
    let mut handles = Vec::with_capacity(shards);
    for (id, listener) in listeners.into_iter().enumerate() {
        let cfg = cfg.clone();
        let mesh = mesh.clone();
        let auth = auth.clone();
        let placement = if cfg.pin && shards <= cpus {
            Placement::Fixed(id)
        } else {
            Placement::Unbound
        };
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("ringmq-shard-{id}"))
            // glommio's registered I/O buffers count against RLIMIT_MEMLOCK; our sockets do not
            // use them, so keep the reservation small (8 MiB hosts run several shards).
            .io_memory(limits::IO_MEMORY_BYTES)
            .ring_depth(limits::RING_DEPTH)
            .spawn(move || async move { shard_main(id, shards, cfg, mesh, listener, auth).await })
            .map_err(|e| std::io::Error::other(format!("starting shard {id}: {e}")))?;
        handles.push(handle);
    }
    for h in handles {
        h.join()
            .map_err(|e| std::io::Error::other(format!("shard stopped: {e}")))?;
    }
    Ok(())
}

async fn shard_main(
    id: usize,
    shards: usize,
    cfg: Config,
    mesh: MeshBuilder<Vec<MeshMsg>, glommio::channels::channel_mesh::Full>,
    listener: std::net::TcpListener,
    auth: Arc<Registry>,
) {
    let cfg = Rc::new(cfg);
    let shard = Rc::new(RefCell::new(Shard::new(id, shards, cfg.clone())));
    let ctx = ShardCtx {
        shard: shard.clone(),
        cfg: cfg.clone(),
        auth,
    };
    let (senders, mut receivers) = match mesh.join().await {
        Ok(x) => x,
        Err(e) => {
            log::error!("shard {id}: joining the shard mesh failed: {e}");
            return;
        }
    };
    let senders = Rc::new(senders);
    for peer in (0..shards).filter(|&p| p != id) {
        glommio::spawn_local(flusher(shard.clone(), senders.clone(), peer)).detach();
    }
    for (peer, rx) in receivers.streams() {
        let ctx = ctx.clone();
        glommio::spawn_local(async move {
            while let Some(batch) = rx.recv().await {
                for msg in batch {
                    let deferred = ctx.shard.borrow_mut().apply(msg);
                    match deferred {
                        Some(Deferred::HandOver(h)) => net::connection::spawn_handed_over(&ctx, *h),
                        Some(Deferred::AckAfter(own, reply)) => {
                            spawn_ack_after(&ctx.shard, own, reply)
                        }
                        None => {}
                    }
                }
            }
            log::debug!("shard {id}: channel from shard {peer} closed");
        })
        .detach();
    }
    log::info!("shard {id} serving on {}", cfg.bind);
    net::listener::accept_loop(ctx, listener).await;
}

/// Sends this shard's outbox for `peer` in batches. A full channel makes this task wait, not
/// drop: the outbox then grows up to [`super::OUTBOX_MAX`] and publishers wait in turn. One
/// flusher per peer keeps per-publisher order.
async fn flusher(shard: ShardRef, senders: Rc<Senders<Vec<MeshMsg>>>, peer: usize) {
    loop {
        let (batch, ready, drained) = {
            let mut s = shard.borrow_mut();
            let batch = s.take_outbox(peer, limits::MESH_BATCH_MAX);
            (
                batch,
                s.outbox_ready[peer].clone(),
                s.outbox_drained.clone(),
            )
        };
        if batch.is_empty() {
            ready.wait().await;
            // Let the tasks that are already runnable add to the batch before it leaves.
            glommio::yield_if_needed().await;
            continue;
        }
        if let Err(e) = senders.send_to(peer, batch).await {
            log::error!("shard mesh: channel to shard {peer} failed, batch not delivered: {e}");
            return;
        }
        drained.notify();
    }
}

/// Acknowledge `reply` once every peer acknowledged `own`.
pub fn spawn_ack_after(shard: &ShardRef, own: u64, reply: AckToken) {
    let shard = shard.clone();
    glommio::spawn_local(async move {
        wait_acks(&shard, own).await;
        shard.borrow_mut().reply_ack(Some(reply));
    })
    .detach();
}

/// Wait until every peer acknowledged the change tagged with `token`.
pub async fn wait_acks(shard: &ShardRef, token: u64) {
    poll_fn(|cx| {
        if shard.borrow_mut().poll_ack(token, cx.waker()) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}
