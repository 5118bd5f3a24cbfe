//! A consumer's durable checkpoint: the last stream entry it replayed and the replay up to it,
//! in one Redis string (`P:consumer:NAME`), written with one `SET` so it is never half-written.
//!
//! A consumer that is killed and started again continues from its checkpoint instead of the
//! start of the stream and reaches the same verdict. `init` removes checkpoints with every other
//! key, so a checkpoint always belongs to the data set that is loaded; it also records the
//! accounts file's SHA-256 and is refused for another file.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::ledger::replay::{Ledger, LedgerState};
use crate::store::keys::Keys;
use crate::store::retry::query_retrying;

/// Bumped when the stored form changes; an older checkpoint is then ignored, not misread.
const CHECKPOINT_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint {
    version: u32,
    sha256: String,
    /// The last entry replayed of the one stream (single layout) or of the first bank's.
    last_id: String,
    /// Sharded layout: the last entry replayed of each bank's stream, in the banks' order.
    #[serde(default)]
    last_ids: Vec<String>,
    state: LedgerState,
}

/// Where a consumer starts.
pub enum Resume {
    /// No usable checkpoint: from the start of the streams.
    Start,
    /// From after these stream entries (one per stream); the ledger holds the replay up to them.
    After(Vec<String>),
}

/// Loads `name`'s checkpoint into `ledger` if there is one for this accounts file.
pub async fn load(
    conn: &mut impl redis::aio::ConnectionLike,
    keys: &Keys,
    name: &str,
    sha256: &str,
    ledger: &mut Ledger,
) -> Result<Resume> {
    let key = keys.consumer(name);
    let stored: Option<Vec<u8>> = query_retrying(conn, redis::cmd("GET").arg(&key))
        .await
        .with_context(|| format!("reading the checkpoint {key}"))?;
    let Some(bytes) = stored else { return Ok(Resume::Start) };
    let checkpoint: Checkpoint = serde_json::from_slice(&bytes).with_context(|| {
        format!("{key} is not a checkpoint of this version: remove it or pass --restart")
    })?;
    anyhow::ensure!(
        checkpoint.version == CHECKPOINT_VERSION,
        "{key} was written by another version (format {}, this one reads {CHECKPOINT_VERSION}): pass --restart",
        checkpoint.version
    );
    anyhow::ensure!(
        checkpoint.sha256 == sha256,
        "{key} was made from another accounts file: pass the same --accounts, or --restart"
    );
    ledger.restore(checkpoint.state).map_err(|why| {
        anyhow::anyhow!("{key} does not fit these accounts: {why}; pass --restart")
    })?;
    if checkpoint.last_ids.is_empty() {
        return Ok(Resume::After(vec![checkpoint.last_id]));
    }
    Ok(Resume::After(checkpoint.last_ids))
}

/// Stores the replay up to `last_ids` (one per stream) as `name`'s checkpoint.
pub async fn save(
    conn: &mut impl redis::aio::ConnectionLike,
    keys: &Keys,
    name: &str,
    sha256: &str,
    last_ids: &[String],
    ledger: &Ledger,
) -> Result<()> {
    let key = keys.consumer(name);
    let (first, more) = last_ids.split_first().context("a checkpoint of no stream")?;
    let checkpoint = Checkpoint {
        version: CHECKPOINT_VERSION,
        sha256: sha256.to_string(),
        last_id: first.clone(),
        last_ids: if more.is_empty() { Vec::new() } else { last_ids.to_vec() },
        state: ledger.state(),
    };
    let bytes = serde_json::to_vec(&checkpoint).context("encoding the checkpoint")?;
    query_retrying::<()>(conn, redis::cmd("SET").arg(&key).arg(bytes))
        .await
        .with_context(|| format!("writing the checkpoint {key}"))?;
    Ok(())
}
