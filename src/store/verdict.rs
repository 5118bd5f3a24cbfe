//! Records what `consume` found for the views: the verdict (`P:verdict`) and each consumer's
//! position as of its last checkpoint (field NAME of `P:positions`). Each is one small JSON
//! string written with one command, so a reader sees the old record or the new one, never half.

use anyhow::{Context, Result};
use redis::aio::ConnectionLike;

use crate::store::keys::Keys;
use crate::store::retry::query_retrying;
use crate::view::facts::ConsumerFacts;
use crate::view::verdict::Verdict;

/// Stores the verdict of the last verification.
pub async fn record(conn: &mut impl ConnectionLike, keys: &Keys, verdict: &Verdict) -> Result<()> {
    let key = keys.verdict();
    query_retrying::<()>(conn, redis::cmd("SET").arg(&key).arg(verdict.to_json()))
        .await
        .with_context(|| format!("recording the verdict in {key}"))
}

/// Stores a consumer's position, after its checkpoint.
pub async fn record_position(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    position: &ConsumerFacts,
) -> Result<()> {
    let key = keys.positions();
    let json = serde_json::to_string(position).expect("a position always serializes");
    query_retrying::<()>(conn, redis::cmd("HSET").arg(&key).arg(&position.name).arg(json))
        .await
        .with_context(|| format!("recording the position in {key}"))
}
