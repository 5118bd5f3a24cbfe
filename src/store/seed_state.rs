//! Reads what Redis holds in the Go demo's key layout, for the audit of `consume --layout seed`:
//! every account of the accounts file, every bank and every pair of banks (the demo leaves a bank
//! or pair key missing until it is first moved). Read-only.

use anyhow::{Context, Result};
use redis::Value as RedisValue;
use redis::aio::ConnectionLike;

use crate::ledger::accounts::AccountsFile;
use crate::ledger::seed_layout::SeedState;
use crate::ledger::verify::Value;
use crate::store::keys::Keys;
use crate::store::retry::query_retrying;
use crate::store::snapshot::{MGET_CHUNK, value_of};

/// Reads the keys of every account, bank and pair of `file`.
pub async fn read(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    file: &AccountsFile,
) -> Result<SeedState> {
    let accounts: Vec<String> = file.accounts.iter().map(|a| keys.seed_account(&a.iban)).collect();
    let banks: Vec<String> = file.banks.iter().map(|b| keys.seed_bank(b)).collect();
    let pairs: Vec<String> = file
        .banks
        .iter()
        .flat_map(|a| file.banks.iter().map(move |b| (a, b)))
        .map(|(a, b)| keys.seed_pair(a, b))
        .collect();
    Ok(SeedState {
        accounts: read_all(conn, &accounts).await?,
        banks: read_all(conn, &banks).await?,
        pairs: read_all(conn, &pairs).await?,
    })
}

/// Each key's value, `MGET` by chunks (a key of another type reads as nil there; its
/// difference is then reported as missing).
async fn read_all(conn: &mut impl ConnectionLike, names: &[String]) -> Result<Vec<Value>> {
    let mut values = Vec::with_capacity(names.len());
    for chunk in names.chunks(MGET_CHUNK) {
        let read: Vec<RedisValue> = query_retrying(conn, redis::cmd("MGET").arg(chunk))
            .await
            .with_context(|| format!("reading {} keys from {}", chunk.len(), chunk[0]))?;
        values.extend(read.into_iter().map(value_of));
    }
    Ok(values)
}
