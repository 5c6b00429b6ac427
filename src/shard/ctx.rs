//! What the rest of the broker holds of its shard: the shared handle ([`ShardCtx`]) connection
//! tasks use, and the bounded wait for peer shards' acknowledgements. Lives apart from
//! [`super::runtime`] so that `net` depends on the shard, and only the runtime on `net`.
//!
//! Never: blocks; the waits here are futures on the shard's own executor.

use super::{AckToken, Shard};
use crate::auth::Registry;
use crate::config::Config;
use crate::limits;
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
    /// Connection admission (ban list, connection caps and rates), shared by every shard.
    pub admission: Arc<crate::net::admission::Admission>,
}

/// Acknowledge `reply` once every peer acknowledged `own` (or the wait timed out).
pub fn spawn_ack_after(shard: &ShardRef, own: u64, reply: AckToken) {
    let shard = shard.clone();
    glommio::spawn_local(async move {
        wait_acks_bounded(&shard, own).await;
        shard.borrow_mut().reply_ack(Some(reply));
    })
    .detach();
}

/// Wait until every peer acknowledged the change tagged with `token`, at most
/// [`limits::MESH_ACK_WAIT`]. False when it timed out (the token is then forgotten).
pub async fn wait_acks_bounded(shard: &ShardRef, token: u64) -> bool {
    let acked = poll_fn(|cx| {
        if shard.borrow_mut().poll_ack(token, cx.waker()) {
            Poll::Ready(true)
        } else {
            Poll::Pending
        }
    });
    let timeout = async {
        glommio::timer::sleep(limits::MESH_ACK_WAIT).await;
        false
    };
    let done = futures_lite::future::or(acked, timeout).await;
    if !done {
        shard.borrow_mut().forget_ack(token);
    }
    done
}
