//! A data set in Redis: removing this tool's keys (and only those), loading a validated accounts
//! file, and reading back the per-bank directories the broker picks accounts from.
//!
//! Loading groups everything by bank: each `MSET` and `RPUSH` touches the keys of one bank (one
//! hash tag), as Redis Cluster requires.

use std::collections::HashMap;

use anyhow::{Context, Result, ensure};
use redis::aio::ConnectionLike;

use crate::ledger::accounts::AccountsFile;
use crate::ledger::events::Layout;
use crate::store::connection::{Connection, Server};
use crate::store::keys::{ANCHOR_FIELD, INBOX_ABOUT, Keys, OUTBOX_ABOUT, hash_tag};
use crate::store::meta::Meta;
use crate::store::retry::query_retrying;
use crate::store::scan::{self, MAX_SCAN_STEPS};

/// Keys per `MSET` or `RPUSH`, and commands per pipeline round trip.
const CHUNK_ITEMS: usize = 10_000;
const PIPELINE_COMMANDS: usize = 8;
/// IBANs read per `LRANGE` of a directory.
const LRANGE_CHUNK: usize = 100_000;

/// Whether the prefix holds the Go demo's event stream and no `P:meta` of this tool: data the
/// demo wrote, which `init` would remove before anyone audited it.
pub async fn holds_demo_data(conn: &mut impl ConnectionLike, keys: &Keys) -> Result<bool> {
    let status: Option<String> =
        query_retrying(conn, redis::cmd("HGET").arg(keys.meta()).arg("status"))
            .await
            .with_context(|| format!("reading {}", keys.meta()))?;
    let events: u64 = query_retrying(conn, redis::cmd("XLEN").arg(keys.seed_stream()))
        .await
        .with_context(|| format!("reading {}", keys.seed_stream()))?;
    Ok(events > 0 && status.is_none())
}

/// Removes every key under the prefix (`SCAN MATCH prefix:*` on every master, then `UNLINK`;
/// never `FLUSHALL` or `FLUSHDB`); returns how many were removed.
pub async fn remove_our_keys(conn: &mut Connection, keys: &Keys) -> Result<u64> {
    let mut removed = 0;
    for server in conn.masters().await? {
        removed += remove_on(conn, &server, keys).await?;
    }
    Ok(removed)
}

/// Removes our keys from one server: those of one hash tag together (one slot, as a cluster
/// requires of a multi-key command), the others one by one.
async fn remove_on(conn: &mut Connection, server: &Server, keys: &Keys) -> Result<u64> {
    let mut cursor: u64 = 0;
    let mut removed = 0;
    for _ in 0..MAX_SCAN_STEPS {
        let (next, batch) = scan::step(conn, server, &keys.all_keys_pattern(), cursor).await?;
        for same_slot in group_by_hash_tag(batch) {
            let unlink = redis::cmd("UNLINK").arg(&same_slot).clone();
            removed += conn
                .query_on::<u64>(server, &unlink)
                .await
                .with_context(|| format!("removing old keys from {server}"))?;
        }
        cursor = next;
        if cursor == 0 {
            return Ok(removed);
        }
    }
    anyhow::bail!("SCAN of {server} did not end after {MAX_SCAN_STEPS} steps")
}

/// Keys sharing a hash tag (`{B}`: they share a slot) together, every other key alone.
fn group_by_hash_tag(keys: Vec<String>) -> Vec<Vec<String>> {
    let mut tagged: HashMap<String, Vec<String>> = HashMap::new();
    let mut groups = Vec::new();
    for key in keys {
        match hash_tag(&key) {
            Some(tag) => tagged.entry(tag.to_string()).or_default().push(key),
            None => groups.push(vec![key]),
        }
    }
    groups.extend(tagged.into_values());
    groups
}

/// Writes the banks (their list, zero balances and interbank positions, and in the sharded layout
/// zero in-flight totals and the outboxes' and inboxes' anchors) and every account with its
/// directory entry. Run between
/// [`crate::store::meta::write_loading`] and `write_ready`.
pub async fn load(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    file: &AccountsFile,
    layout: Layout,
) -> Result<()> {
    load_banks(conn, keys, file, layout).await?;
    load_accounts(conn, keys, file).await
}

/// The seed layout (the Go demo's keys): the bank list and each bank's directory (under our
/// prefix, for the broker), every account as `P:accounts:IBAN`, and the holders' names and
/// loaded balances (for the events). No bank or pair key: the demo reads a missing one as 0.
/// Single server only: these keys carry no hash tags.
pub async fn load_seed(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    file: &AccountsFile,
) -> Result<()> {
    write_bank_list(conn, keys, file).await?;
    for chunk in file.accounts.chunks(CHUNK_ITEMS) {
        let mut pipe = redis::pipe();
        let balances: Vec<(String, i64)> =
            chunk.iter().map(|a| (keys.seed_account(&a.iban), a.balance_cents)).collect();
        let people: Vec<(&str, &str)> =
            chunk.iter().map(|a| (a.iban.as_str(), a.name.as_str())).collect();
        let initial: Vec<(&str, i64)> =
            chunk.iter().map(|a| (a.iban.as_str(), a.balance_cents)).collect();
        pipe.mset(&balances).ignore();
        pipe.cmd("HSET").arg(keys.seed_people()).arg(&people).ignore();
        pipe.cmd("HSET").arg(keys.seed_initial()).arg(&initial).ignore();
        for account in chunk {
            pipe.rpush(keys.directory(&file.banks[account.bank]), &account.iban).ignore();
        }
        pipe.query_async::<()>(conn).await.context("loading the accounts in the seed layout")?;
    }
    Ok(())
}

/// `P:banks`: the bank names in the banks file's order (both layouts).
async fn write_bank_list(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    file: &AccountsFile,
) -> Result<()> {
    redis::cmd("RPUSH")
        .arg(keys.banks())
        .arg(&file.banks)
        .query_async::<()>(conn)
        .await
        .with_context(|| format!("writing {}", keys.banks()))
}

/// The bank list, then each bank's balance, interbank positions and (sharded layout) in-flight
/// total and anchors in one pipeline per bank.
async fn load_banks(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    file: &AccountsFile,
    layout: Layout,
) -> Result<()> {
    write_bank_list(conn, keys, file).await?;
    for bank in &file.banks {
        let mut pipe = redis::pipe();
        pipe.set(keys.bank_balance(bank), 0).ignore();
        if layout == Layout::Sharded {
            // Every key a script changes exists from the start, so that a call which fails
            // halfway and undoes its changes leaves the keys exactly as they were.
            pipe.set(keys.in_flight(bank), 0).ignore();
            pipe.hset(keys.outbox(bank), ANCHOR_FIELD, OUTBOX_ABOUT).ignore();
            pipe.hset(keys.inbox(bank), ANCHOR_FIELD, INBOX_ABOUT).ignore();
        }
        let others: Vec<(&str, i64)> = file
            .banks
            .iter()
            .filter(|other| *other != bank)
            .map(|other| (other.as_str(), 0))
            .collect();
        if !others.is_empty() {
            pipe.cmd("HSET").arg(keys.interbank(bank)).arg(&others).ignore();
        }
        pipe.query_async::<()>(conn).await.with_context(|| format!("writing bank {bank}"))?;
    }
    Ok(())
}

/// Each bank's accounts and directory, in pipelines of that bank's keys only.
async fn load_accounts(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    file: &AccountsFile,
) -> Result<()> {
    let mut by_bank: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, account) in file.accounts.iter().enumerate() {
        by_bank.entry(account.bank).or_default().push(i);
    }
    for (&bank, members) in &by_bank {
        let bank_name = &file.banks[bank];
        for commands in members.chunks(CHUNK_ITEMS * PIPELINE_COMMANDS / 2) {
            let mut pipe = redis::pipe();
            for chunk in commands.chunks(CHUNK_ITEMS) {
                let pairs: Vec<(String, i64)> = chunk
                    .iter()
                    .map(|&i| {
                        let account = &file.accounts[i];
                        (keys.account(bank_name, &account.iban), account.balance_cents)
                    })
                    .collect();
                let ibans: Vec<&str> =
                    chunk.iter().map(|&i| file.accounts[i].iban.as_str()).collect();
                pipe.mset(&pairs).ignore();
                pipe.rpush(keys.directory(bank_name), ibans).ignore();
            }
            pipe.query_async::<()>(conn)
                .await
                .with_context(|| format!("loading the accounts of bank {bank_name}"))?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_one_hash_tag_are_removed_together() {
        let keys = ["p:{A}:balance", "p:meta", "p:{B}:balance", "p:{A}:interbank", "p:runs"];
        let mut groups = group_by_hash_tag(keys.iter().map(|k| k.to_string()).collect());
        groups.sort();
        assert_eq!(
            groups,
            vec![
                vec!["p:meta".to_string()],
                vec!["p:runs".to_string()],
                vec!["p:{A}:balance".to_string(), "p:{A}:interbank".to_string()],
                vec!["p:{B}:balance".to_string()],
            ]
        );
    }
}
