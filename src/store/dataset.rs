//! A data set in Redis: removing this tool's keys (and only those), loading a validated accounts
//! file, and reading back the per-bank directories the broker picks accounts from.
//!
//! Loading groups everything by bank: each `MSET` and `RPUSH` touches the keys of one bank (one
//! hash tag), as Redis Cluster requires.

use std::collections::HashMap;

use anyhow::{Context, Result, ensure};
use redis::aio::ConnectionLike;

use crate::ledger::accounts::AccountsFile;
use crate::store::keys::Keys;
use crate::store::meta::Meta;
use crate::store::retry::query_retrying;

/// Keys per `MSET` or `RPUSH`, and commands per pipeline round trip.
const CHUNK_ITEMS: usize = 10_000;
const PIPELINE_COMMANDS: usize = 8;
/// Keys asked for per `SCAN` step; the scan ends when the cursor returns to 0.
const SCAN_COUNT: usize = 1_000;
/// IBANs read per `LRANGE` of a directory.
const LRANGE_CHUNK: usize = 100_000;
/// The most `SCAN` steps: far more than a keyspace of 2^32 keys needs at `SCAN_COUNT` a step.
const MAX_SCAN_STEPS: u64 = 1 << 32;

/// Removes every key under the prefix (`SCAN MATCH prefix:*` + `UNLINK`; never `FLUSHALL` or
/// `FLUSHDB`); returns how many were removed.
pub async fn remove_our_keys(conn: &mut impl ConnectionLike, keys: &Keys) -> Result<u64> {
    let mut cursor: u64 = 0;
    let mut removed = 0;
    for _ in 0..MAX_SCAN_STEPS {
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
    anyhow::bail!("SCAN of {} did not end after {MAX_SCAN_STEPS} steps", keys.all_keys_pattern())
}

/// Writes the banks (their list, zero balances, zero interbank positions) and every account with
/// its directory entry. Run between [`crate::store::meta::write_loading`] and `write_ready`.
pub async fn load(conn: &mut impl ConnectionLike, keys: &Keys, file: &AccountsFile) -> Result<()> {
    load_banks(conn, keys, file).await?;
    load_accounts(conn, keys, file).await
}

async fn load_banks(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    file: &AccountsFile,
) -> Result<()> {
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
    pipe.query_async::<()>(conn).await.context("writing the banks")
}

async fn load_accounts(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    file: &AccountsFile,
) -> Result<()> {
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
                    let account = &file.accounts[i];
                    (keys.account(bank_name, &account.iban), account.balance_cents)
                })
                .collect();
            let ibans: Vec<&str> = chunk.iter().map(|&i| file.accounts[i].iban.as_str()).collect();
            pipe.mset(&pairs).ignore();
            pipe.rpush(keys.directory(bank_name), ibans).ignore();
            queued += 2;
            if queued >= PIPELINE_COMMANDS {
                pipe.query_async::<()>(conn).await.context("loading accounts")?;
                pipe = redis::pipe();
                queued = 0;
            }
        }
    }
    if queued > 0 {
        pipe.query_async::<()>(conn).await.context("loading accounts")?;
    }
    Ok(())
}

/// Sets one account's balance (the benchmark's ceiling funds its two accounts this way).
pub async fn set_balance(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    bank: &str,
    iban: &str,
    balance_cents: i64,
) -> Result<()> {
    let key = keys.account(bank, iban);
    redis::cmd("SET")
        .arg(&key)
        .arg(balance_cents)
        .query_async::<()>(conn)
        .await
        .with_context(|| format!("setting {key}"))
}

/// Every account of every bank in `meta`, with the index of its bank, as the directory lists
/// hold them; refused unless they hold exactly the number of accounts `meta` says.
pub async fn read_directory(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    meta: &Meta,
) -> Result<Vec<(Box<str>, u16)>> {
    let mut accounts = Vec::with_capacity(meta.accounts);
    for (bank_index, bank) in meta.banks.iter().enumerate() {
        let bank_index = u16::try_from(bank_index).context("too many banks")?;
        let key = keys.directory(bank);
        let mut start = 0;
        while accounts.len() <= meta.accounts {
            let mut cmd = redis::cmd("LRANGE");
            cmd.arg(&key).arg(start).arg(start + LRANGE_CHUNK - 1);
            let chunk: Vec<String> =
                query_retrying(conn, &cmd).await.with_context(|| format!("reading {key}"))?;
            let read = chunk.len();
            ensure!(
                accounts.len() + read <= meta.accounts,
                "{key} lists more accounts than {} says were loaded: run `interbank init` again",
                keys.meta()
            );
            accounts.extend(chunk.into_iter().map(|iban| (iban.into_boxed_str(), bank_index)));
            if read < LRANGE_CHUNK {
                break;
            }
            start += LRANGE_CHUNK;
        }
    }
    ensure!(
        accounts.len() == meta.accounts,
        "the bank directories list {} accounts but {} says {}: run `interbank init` again",
        accounts.len(),
        keys.meta(),
        meta.accounts
    );
    Ok(accounts)
}
