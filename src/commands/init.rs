//! `interbank init`: replaces this tool's keys with the accounts of a validated file.
//!
//! The whole file is checked before Redis is touched (see [`crate::ledger::accounts`]). Then only keys
//! under the prefix are removed (`SCAN MATCH prefix:*` + `UNLINK`; never `FLUSHALL`/`FLUSHDB`),
//! and the accounts are loaded with pipelined `MSET`/`RPUSH` commands grouped by bank, so every
//! command touches one hash tag. `P:meta` says `loading` until the last write and `ready` after
//! it: the broker and `consume` refuse a half-loaded set.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::commands::now_ms;
use crate::ledger::accounts::AccountsFile;
use crate::store::keys::{Keys, SCHEMA_VERSION};
use crate::store::retry::query_retrying;

/// Keys per `MSET` or `RPUSH`, and commands per pipeline round trip.
const CHUNK_ITEMS: usize = 10_000;
const PIPELINE_COMMANDS: usize = 8;
/// Keys asked for per `SCAN` step; the scan ends when the cursor returns to 0.
const SCAN_COUNT: usize = 1_000;

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

/// Removes every key under the prefix; returns how many were removed.
pub async fn remove_our_keys(
    conn: &mut redis::aio::MultiplexedConnection,
    keys: &Keys,
) -> Result<u64> {
    let mut cursor: u64 = 0;
    let mut removed = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(keys.all_keys_pattern())
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query_async(conn)
            .await
            .context("scanning for this tool's keys")?;
        if !batch.is_empty() {
            removed += redis::cmd("UNLINK")
                .arg(&batch)
                .query_async::<u64>(conn)
                .await
                .context("removing old keys")?;
        }
        cursor = next;
        if cursor == 0 {
            return Ok(removed);
        }
    }
}

/// Loads a validated accounts file under `keys`, replacing what was there.
pub async fn init(
    target: &crate::store::target::Target,
    keys: &Keys,
    file: &AccountsFile,
) -> Result<InitReport> {
    let started = Instant::now();
    let mut conn = crate::store::connection::dedicated(target).await?;
    let removed_keys = remove_our_keys(&mut conn, keys).await?;
    let meta = keys.meta();
    let _: () = redis::cmd("HSET")
        .arg(&meta)
        .arg(&[
            ("status", "loading".to_string()),
            ("schema", SCHEMA_VERSION.to_string()),
            ("file", file.path.display().to_string()),
            ("sha256", file.sha256.clone()),
            ("accounts", file.accounts.len().to_string()),
            ("banks", file.banks.len().to_string()),
            ("total_cents", file.total_cents.to_string()),
        ])
        .query_async(&mut conn)
        .await
        .with_context(|| format!("writing {meta}"))?;

    let mut pipe = redis::pipe();
    pipe.rpush(keys.banks(), &file.banks).ignore();
    for bank in &file.banks {
        pipe.set(keys.bank_balance(bank), 0).ignore();
        let others: Vec<(&str, i64)> = file
            .banks
            .iter()
            .filter(|other| *other != bank)
            .map(|other| (other.as_str(), 0))
            .collect();
        if !others.is_empty() {
            pipe.cmd("HSET").arg(keys.interbank(bank)).arg(&others).ignore();
        }
    }
    let _: () = pipe.query_async(&mut conn).await.context("writing the banks")?;

    let mut by_bank: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, account) in file.accounts.iter().enumerate() {
        by_bank.entry(account.bank).or_default().push(i);
    }
    let mut pipe = redis::pipe();
    let mut queued = 0;
    for (&bank, members) in &by_bank {
        let bank_name = &file.banks[bank];
        for chunk in members.chunks(CHUNK_ITEMS) {
            let pairs: Vec<(String, i64)> = chunk
                .iter()
                .map(|&i| {
                    (
                        keys.account(bank_name, &file.accounts[i].iban),
                        file.accounts[i].balance_cents,
                    )
                })
                .collect();
            let ibans: Vec<&str> = chunk.iter().map(|&i| file.accounts[i].iban.as_str()).collect();
            pipe.mset(&pairs).ignore();
            pipe.rpush(keys.directory(bank_name), ibans).ignore();
            queued += 2;
            if queued >= PIPELINE_COMMANDS {
                let _: () = pipe.query_async(&mut conn).await.context("loading accounts")?;
                pipe = redis::pipe();
                queued = 0;
            }
        }
    }
    if queued > 0 {
        let _: () = pipe.query_async(&mut conn).await.context("loading accounts")?;
    }
    let _: () = redis::cmd("HSET")
        .arg(&meta)
        .arg(&[("status", "ready".to_string()), ("loaded_at_ms", now_ms().to_string())])
        .query_async(&mut conn)
        .await
        .with_context(|| format!("writing {meta}"))?;
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

/// What `init` recorded, as the broker and `consume` need it.
#[derive(Debug, Clone)]
pub struct Meta {
    pub sha256: String,
    pub accounts: u64,
    pub total_cents: i64,
    pub banks: Vec<String>,
}

/// Reads `P:meta` and the bank list, refusing a set that is missing or not fully loaded.
pub async fn read_meta(conn: &mut impl redis::aio::ConnectionLike, keys: &Keys) -> Result<Meta> {
    let fields: HashMap<String, String> =
        query_retrying(conn, redis::cmd("HGETALL").arg(keys.meta()))
            .await
            .with_context(|| format!("reading {}", keys.meta()))?;
    let get = |name: &str| fields.get(name).cloned().unwrap_or_default();
    match get("status").as_str() {
        "ready" => {}
        "" => anyhow::bail!(
            "no accounts are loaded under the prefix {:?} ({} is missing): run `interbank init` first",
            keys.prefix(),
            keys.meta()
        ),
        "loading" => anyhow::bail!(
            "{} says an `interbank init` is loading or was interrupted: run `interbank init` again",
            keys.meta()
        ),
        other => anyhow::bail!("{} has status {other:?}; run `interbank init` again", keys.meta()),
    }
    let schema = get("schema");
    anyhow::ensure!(
        schema == SCHEMA_VERSION.to_string(),
        "{} has schema {schema:?}, this tool writes {SCHEMA_VERSION}: run `interbank init` again",
        keys.meta()
    );
    let number = |name: &str| -> Result<i64> {
        get(name).parse().with_context(|| format!("{} field {name} is not an integer", keys.meta()))
    };
    let banks: Vec<String> =
        query_retrying(conn, redis::cmd("LRANGE").arg(keys.banks()).arg(0).arg(-1))
            .await
            .with_context(|| format!("reading {}", keys.banks()))?;
    Ok(Meta {
        sha256: get("sha256"),
        accounts: number("accounts")? as u64,
        total_cents: number("total_cents")?,
        banks,
    })
}
