//! `interbank init`: replaces this tool's keys with the accounts of a validated file.
//!
//! The whole file is checked before Redis is touched (see [`crate::ledger::accounts`]). Then only keys
//! under the prefix are removed (never `FLUSHALL`/`FLUSHDB`) and the accounts are loaded, grouped
//! by bank (see [`crate::store::dataset`]). `P:meta` says `loading` until the last write and
//! `ready` after it: the broker and `consume` refuse a half-loaded set.

use std::time::Instant;

use anyhow::Result;

use crate::commands::now_ms;
use crate::ledger::accounts::AccountsFile;
use crate::ledger::events::Layout;
use crate::store::connection::Connection;
use crate::store::keys::{KeyLayout, Keys};
use crate::store::target::Target;
use crate::store::{dataset, meta};

/// What `init` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InitReport {
    pub accounts: usize,
    pub banks: usize,
    pub total_cents: i64,
    /// Accounts whose IBAN's entity code is that of their bank (the seed's files have none).
    pub entity_codes_matching: usize,
    pub removed_keys: u64,
    pub elapsed_ms: u128,
}

/// Loads a validated accounts file under `keys`, replacing what was there.
pub async fn init(
    target: &Target,
    keys: &Keys,
    file: &AccountsFile,
    key_layout: KeyLayout,
    replace: bool,
) -> Result<InitReport> {
    let started = Instant::now();
    let mut conn = Connection::open(target).await?;
    anyhow::ensure!(
        !(conn.is_cluster() && key_layout == KeyLayout::Seed),
        "{target} is a Redis Cluster: the Go demo's keys (--layout seed) carry no hash tags, so a transfer would span slots; use a single server, or this tool's own layout"
    );
    anyhow::ensure!(
        replace || !dataset::holds_demo_data(&mut conn, keys).await?,
        "{} holds the Go demo's events and no {} of this tool: audit them first with `interbank consume --layout seed --accounts FILE`, then run init again with --replace to remove them",
        keys.seed_stream(),
        keys.meta()
    );
    let removed_keys = dataset::remove_our_keys(&mut conn, keys).await?;
    let layout = if conn.is_cluster() { Layout::Sharded } else { Layout::Single };
    meta::write_loading(&mut conn, keys, file, layout, key_layout).await?;
    match key_layout {
        KeyLayout::Ours => dataset::load(&mut conn, keys, file, layout).await?,
        KeyLayout::Seed => dataset::load_seed(&mut conn, keys, file).await?,
    }
    meta::write_ready(&mut conn, keys, now_ms()).await?;
    Ok(InitReport {
        accounts: file.accounts.len(),
        banks: file.banks.len(),
        total_cents: file.total_cents,
        entity_codes_matching: entity_codes_matching(file),
        removed_keys,
        elapsed_ms: started.elapsed().as_millis(),
    })
}

/// How many accounts have a Spanish IBAN whose entity code belongs to the bank named beside it.
/// Informative only: the bank column is the truth (the seed's IBANs carry other codes).
pub fn entity_codes_matching(file: &AccountsFile) -> usize {
    file.accounts
        .iter()
        .filter(|a| {
            crate::ledger::iban::spanish_entity_code(&a.iban)
                .and_then(crate::ledger::banks::bank_for_entity_code)
                .is_some_and(|known| known.name == file.banks[a.bank])
        })
        .count()
}
