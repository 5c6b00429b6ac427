//! Asking the shards: one [`Command::Query`] per shard asked, each carrying a clone of one reply
//! channel, and a bounded wait here for every answer. Never waits without a deadline: a shard
//! that does not answer in [`limits::HTTP_SHARD_ANSWER_WAIT`] makes the call a 503.

use crate::control::query::{Answer, Query, Reply};
use crate::control::{Command, Handle};
use crate::limits;
use std::sync::Arc;

/// Some shard could not take the question, or did not answer in time.
#[derive(Debug)]
pub struct Unavailable(pub String);

/// Ask `query` of `targets` (shard ids); the answers, ordered by shard.
pub async fn ask(
    control: &Handle,
    query: Query,
    targets: &[usize],
) -> Result<Vec<Answer>, Unavailable> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Reply>(targets.len().max(1));
    let query = Arc::new(query);
    for &t in targets {
        let Some(shard) = control.shards.get(t) else {
            return Err(Unavailable(format!("no shard {t}")));
        };
        let cmd = Command::Query {
            query: query.clone(),
            reply: tx.clone(),
        };
        if shard.try_send(cmd).is_err() {
            return Err(Unavailable(format!("shard {t} is not taking commands")));
        }
    }
    drop(tx);
    let mut got: Vec<Reply> = Vec::with_capacity(targets.len());
    let collect = async {
        while got.len() < targets.len() {
            match rx.recv().await {
                Some(r) => got.push(r),
                None => break,
            }
        }
    };
    if tokio::time::timeout(limits::HTTP_SHARD_ANSWER_WAIT, collect)
        .await
        .is_err()
    {
        return Err(Unavailable(format!(
            "{} of {} shard(s) did not answer within {:?}",
            targets.len() - got.len(),
            targets.len(),
            limits::HTTP_SHARD_ANSWER_WAIT
        )));
    }
    if got.len() < targets.len() {
        return Err(Unavailable("a shard dropped the question".into()));
    }
    got.sort_by_key(|r| r.shard);
    Ok(got.into_iter().map(|r| r.answer).collect())
}

/// Every shard's id.
pub fn all(control: &Handle) -> Vec<usize> {
    (0..control.shards.len()).collect()
}
