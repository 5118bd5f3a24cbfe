//! Reads what the views show ([`Facts`]): every account, bank balance, interbank position and
//! money in flight, read so that they can be judged together, plus runs, streams, consumers'
//! positions and the last verdict.
//!
//! On one server the money is read in one `MULTI`, so its figures are of one instant. On a
//! cluster each bank's keys are read in one `MULTI` on its shard (one slot); banks are read one
//! after another, so money can move between two banks' reads. The whole round is then read
//! again, up to [`MAX_ROUNDS`] times: when two rounds in a row find every bank's stream ending at
//! the same entry, nothing changed between them (every change of a bank's keys appends to its
//! stream in the same script) and the figures are of one instant. Otherwise they are marked not
//! consistent, and the views judge only each bank on its own.
//!
//! Read-only: nothing here writes.

use anyhow::{Context, Result, bail};
use redis::Value as RedisValue;
use redis::aio::ConnectionLike;

use crate::ledger::events::{Layout, parse_outbound};
use crate::ledger::verify::Value;
use crate::store::connection::Connection;
use crate::store::keys::{ANCHOR_FIELD, Keys, cluster_slot};
use crate::store::meta::{self, Meta};
use crate::store::retry::{pipe_retrying, query_retrying};
use crate::store::snapshot::{MGET_CHUNK, value_of};
use crate::store::{dataset, runs};
use crate::view::facts::{BankFacts, ConsumerFacts, Facts, Loaded, RunFacts, StreamFacts};
use crate::view::verdict::Verdict;

/// Rounds of per-bank reads on a cluster before giving up on one instant.
pub const MAX_ROUNDS: usize = 3;
/// Inbox fields asked per `HMGET`.
const INBOX_FIELDS_PER_HMGET: usize = 1_000;
/// Accounts named per bank when their keys are missing or not integers.
const BAD_NAMED: usize = 5;
/// Consumers whose positions are shown.
const MAX_CONSUMERS: usize = 100;

/// The accounts of a data set, by bank: read once and kept while the set is the same.
#[derive(Debug, Clone)]
pub struct Directory {
    /// The accounts file's SHA-256 in `P:meta`, which changes with every `init`.
    pub sha256: String,
    /// Per bank, its accounts' keys.
    pub account_keys: Vec<Vec<String>>,
}

/// Reads the data set's directory.
pub async fn directory(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    meta: &Meta,
) -> Result<Directory> {
    let accounts = dataset::read_directory(conn, keys, meta).await?;
    let mut account_keys = vec![Vec::new(); meta.banks.len()];
    for (iban, bank) in accounts {
        let bank = usize::from(bank);
        account_keys[bank].push(keys.account(&meta.banks[bank], &iban));
    }
    Ok(Directory { sha256: meta.sha256.clone(), account_keys })
}

/// Reads everything the views show. `directory` is reused while it belongs to the loaded set and
/// replaced otherwise.
pub async fn read(
    conn: &mut Connection,
    keys: &Keys,
    directory: &mut Option<Directory>,
    now_ms: impl Fn() -> u64,
) -> Result<Facts> {
    let meta = meta::read(conn, keys).await?;
    if directory.as_ref().is_none_or(|d| d.sha256 != meta.sha256) {
        *directory = Some(self::directory(conn, keys, &meta).await?);
    }
    let dir = directory.as_ref().expect("just read");
    let (mut banks, interbank, streams, consistent) = match meta.layout {
        Layout::Single => read_instant(conn, keys, &meta, dir).await?,
        Layout::Sharded => read_rounds(conn, keys, &meta, dir).await?,
    };
    let owners = conn.slot_owners().await?;
    for bank in &mut banks {
        let slot = cluster_slot(&keys.bank_balance(&bank.name));
        bank.shard = owners.iter().find(|(a, b, _)| (*a..=*b).contains(&slot)).map(|o| o.2.clone());
    }
    let runs = read_runs(conn, keys, &meta).await?;
    let consumers = read_consumers(conn, keys).await?;
    let verdict = read_verdict(conn, keys).await?;
    Ok(Facts {
        read_at_ms: now_ms(),
        prefix: keys.prefix().to_string(),
        layout: meta.layout,
        loaded: Loaded {
            file: meta.file.clone(),
            accounts: meta.accounts as u64,
            total_cents: meta.total_cents,
            loaded_at_ms: meta.loaded_at_ms,
        },
        banks,
        interbank,
        runs,
        streams,
        consumers,
        verdict,
        consistent,
    })
}

type Money = (Vec<BankFacts>, Vec<Value>, Vec<StreamFacts>, bool);

/// One server: every bank and the stream in one `MULTI`.
async fn read_instant(
    conn: &mut Connection,
    keys: &Keys,
    meta: &Meta,
    dir: &Directory,
) -> Result<Money> {
    let mut pipe = redis::pipe();
    pipe.atomic().ignore_errors();
    for (bank, account_keys) in meta.banks.iter().zip(&dir.account_keys) {
        queue_bank(&mut pipe, keys, bank, account_keys, false);
    }
    queue_stream(&mut pipe, &keys.events());
    let replies: Vec<RedisValue> =
        pipe_retrying(conn, &pipe).await.context("reading the balances in one MULTI")?;
    let mut replies = replies.into_iter();
    let mut banks = Vec::with_capacity(meta.banks.len());
    let mut interbank = vec![Value::Int(0); meta.banks.len() * meta.banks.len()];
    for (index, (bank, account_keys)) in meta.banks.iter().zip(&dir.account_keys).enumerate() {
        banks.push(take_bank(
            &mut replies,
            meta,
            index,
            bank,
            account_keys,
            false,
            &mut interbank,
        )?);
    }
    let stream = take_stream(&mut replies, keys.events(), None)?;
    Ok((banks, interbank, vec![stream], true))
}

/// A transfer in a source bank's outbox: debited there, not yet settled.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Pending {
    from: usize,
    to: usize,
    id: String,
    amount_cents: i64,
}

/// A cluster: each bank in one `MULTI` on its shard, in rounds until two agree. Each round also
/// asks each destination's inbox about the transfers the round before saw in flight to it: one
/// credited there and not yet settled at its source is in the destination's accounts already,
/// so it no longer counts as money in flight (when the rounds agree, both saw the same outboxes).
async fn read_rounds(
    conn: &mut Connection,
    keys: &Keys,
    meta: &Meta,
    dir: &Directory,
) -> Result<Money> {
    let (mut last, mut pending) = read_round(conn, keys, meta, dir, &[]).await?;
    for _ in 1..MAX_ROUNDS {
        let (next, next_pending) = read_round(conn, keys, meta, dir, &pending).await?;
        let same = last.2.iter().zip(&next.2).all(|(a, b)| a.last_id == b.last_id);
        (last, pending) = (next, next_pending);
        if same {
            last.3 = true;
            return Ok(last);
        }
    }
    Ok(last)
}

async fn read_round(
    conn: &mut Connection,
    keys: &Keys,
    meta: &Meta,
    dir: &Directory,
    previous: &[Pending],
) -> Result<(Money, Vec<Pending>)> {
    let mut banks = Vec::with_capacity(meta.banks.len());
    let mut interbank = vec![Value::Int(0); meta.banks.len() * meta.banks.len()];
    let mut streams = Vec::with_capacity(meta.banks.len());
    let mut pending = Vec::new();
    let mut credited = Vec::new();
    for (index, (bank, account_keys)) in meta.banks.iter().zip(&dir.account_keys).enumerate() {
        let asked: Vec<&Pending> = previous.iter().filter(|p| p.to == index).collect();
        let mut pipe = redis::pipe();
        pipe.atomic().ignore_errors();
        queue_bank(&mut pipe, keys, bank, account_keys, true);
        queue_stream(&mut pipe, &keys.events_of(bank));
        for chunk in asked.chunks(INBOX_FIELDS_PER_HMGET) {
            let fields: Vec<String> =
                chunk.iter().map(|p| format!("{}|{}", meta.banks[p.from], p.id)).collect();
            pipe.cmd("HMGET").arg(keys.inbox(bank)).arg(fields);
        }
        let replies: Vec<RedisValue> = pipe_retrying(conn, &pipe)
            .await
            .with_context(|| format!("reading bank {bank}'s keys in one MULTI"))?;
        let mut replies = replies.into_iter();
        let mut facts =
            take_bank(&mut replies, meta, index, bank, account_keys, true, &mut interbank)?;
        pending.extend(take_outbox(&mut replies, meta, index, &mut facts)?);
        banks.push(facts);
        streams.push(take_stream(&mut replies, keys.events_of(bank), Some(bank.clone()))?);
        for chunk in asked.chunks(INBOX_FIELDS_PER_HMGET) {
            let RedisValue::Array(answers) = next(&mut replies)? else {
                bail!("HMGET of bank {bank}'s inbox did not answer a list")
            };
            let was_credited = |answer: &RedisValue| matches!(answer, RedisValue::BulkString(b) if b.as_slice() == b"C");
            credited.extend(
                chunk
                    .iter()
                    .zip(&answers)
                    .filter(|(_, a)| was_credited(a))
                    .map(|(p, _)| (*p).clone()),
            );
        }
    }
    for transfer in credited.iter().filter(|c| pending.contains(c)) {
        let amount = i128::from(transfer.amount_cents);
        banks[transfer.from].credited_unsettled_cents += amount;
        banks[transfer.from].in_flight_to_cents[transfer.to] -= amount;
    }
    Ok(((banks, interbank, streams, false), pending))
}

/// Queues the reads of one bank: its accounts, balance and interbank hash, and when sharded its
/// money in flight and outbox.
fn queue_bank(
    pipe: &mut redis::Pipeline,
    keys: &Keys,
    bank: &str,
    accounts: &[String],
    sharded: bool,
) {
    for chunk in accounts.chunks(MGET_CHUNK) {
        pipe.cmd("MGET").arg(chunk);
    }
    pipe.cmd("GET").arg(keys.bank_balance(bank));
    pipe.cmd("HGETALL").arg(keys.interbank(bank));
    if sharded {
        pipe.cmd("GET").arg(keys.in_flight(bank));
        pipe.cmd("HGETALL").arg(keys.outbox(bank));
    }
}

fn queue_stream(pipe: &mut redis::Pipeline, key: &str) {
    pipe.cmd("XLEN").arg(key);
    pipe.cmd("XREVRANGE").arg(key).arg("+").arg("-").arg("COUNT").arg(1);
}

fn next(replies: &mut impl Iterator<Item = RedisValue>) -> Result<RedisValue> {
    replies.next().context("Redis answered fewer replies than commands sent")
}

/// Takes one bank's replies, in the order [`queue_bank`] queued them.
fn take_bank(
    replies: &mut impl Iterator<Item = RedisValue>,
    meta: &Meta,
    index: usize,
    bank: &str,
    accounts: &[String],
    sharded: bool,
    interbank: &mut [Value],
) -> Result<BankFacts> {
    let mut facts = BankFacts {
        name: bank.to_string(),
        accounts: accounts.len() as u64,
        accounts_cents: 0,
        bad_accounts: Vec::new(),
        bad_account_count: 0,
        balance: Value::Missing,
        in_flight: Value::Missing,
        in_flight_to_cents: vec![0; meta.banks.len()],
        credited_unsettled_cents: 0,
        shard: None,
    };
    for chunk in accounts.chunks(MGET_CHUNK) {
        let RedisValue::Array(values) = next(replies)? else {
            bail!("MGET of bank {bank}'s accounts did not answer a list")
        };
        for (key, value) in chunk.iter().zip(values) {
            match value_of(value) {
                Value::Int(cents) => facts.accounts_cents += i128::from(cents),
                _ => {
                    facts.bad_account_count += 1;
                    if facts.bad_accounts.len() < BAD_NAMED {
                        facts.bad_accounts.push(key.clone());
                    }
                }
            }
        }
    }
    facts.balance = value_of(next(replies)?);
    let n = meta.banks.len();
    let hash = next(replies)?;
    if let RedisValue::ServerError(err) = &hash {
        // Not a hash (a key of another type): every position of this bank is unreadable.
        for other in (0..n).filter(|&b| b != index) {
            interbank[index * n + other] = Value::Error(format!("{err:?}"));
        }
    }
    for (field, value) in pairs(hash) {
        if let Some(other) = meta.banks.iter().position(|b| *b == field) {
            interbank[index * n + other] = value_of(RedisValue::BulkString(value.into_bytes()));
        }
    }
    if sharded {
        facts.in_flight = value_of(next(replies)?);
    }
    Ok(facts)
}

/// Takes a bank's outbox (the reply after its in-flight total): what it has in flight to each
/// bank, and each transfer.
fn take_outbox(
    replies: &mut impl Iterator<Item = RedisValue>,
    meta: &Meta,
    index: usize,
    facts: &mut BankFacts,
) -> Result<Vec<Pending>> {
    let mut pending = Vec::new();
    for (id, value) in pairs(next(replies)?).into_iter().filter(|(id, _)| id != ANCHOR_FIELD) {
        let Ok(outbound) = parse_outbound(&value) else { continue };
        if let Some(to) = meta.banks.iter().position(|b| b == outbound.to_bank) {
            facts.in_flight_to_cents[to] += i128::from(outbound.amount_cents);
            pending.push(Pending { from: index, to, id, amount_cents: outbound.amount_cents });
        }
    }
    Ok(pending)
}

fn take_stream(
    replies: &mut impl Iterator<Item = RedisValue>,
    key: String,
    bank: Option<String>,
) -> Result<StreamFacts> {
    let length = match next(replies)? {
        RedisValue::Int(n) => u64::try_from(n).unwrap_or(0),
        other => bail!("XLEN {key} answered {other:?}"),
    };
    let last_id = match next(replies)? {
        RedisValue::Array(entries) => entries.into_iter().next().and_then(|entry| match entry {
            RedisValue::Array(mut parts) if !parts.is_empty() => match parts.swap_remove(0) {
                RedisValue::BulkString(id) => Some(String::from_utf8_lossy(&id).into_owned()),
                _ => None,
            },
            _ => None,
        }),
        other => bail!("XREVRANGE {key} answered {other:?}"),
    };
    Ok(StreamFacts { key, bank, length, last_id })
}

/// A hash's `HGETALL` reply as (field, value) text pairs (RESP2 list or RESP3 map).
fn pairs(reply: RedisValue) -> Vec<(String, String)> {
    let text = |v: RedisValue| match v {
        RedisValue::BulkString(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        RedisValue::Int(n) => n.to_string(),
        other => format!("{other:?}"),
    };
    match reply {
        RedisValue::Array(items) => {
            let mut items = items.into_iter();
            let mut out = Vec::with_capacity(items.len() / 2);
            while let (Some(field), Some(value)) = (items.next(), items.next()) {
                out.push((text(field), text(value)));
            }
            out
        }
        RedisValue::Map(entries) => entries.into_iter().map(|(f, v)| (text(f), text(v))).collect(),
        _ => Vec::new(),
    }
}

/// Every run, with the transfers applied so far for those still running.
async fn read_runs(conn: &mut Connection, keys: &Keys, meta: &Meta) -> Result<Vec<RunFacts>> {
    let records = runs::read_all(conn, keys).await?;
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        let applied = if record.ended_ms.is_none() {
            let per_producer = match meta.layout {
                Layout::Single => {
                    runs::applied_per_producer(conn, keys, record.id, record.producers).await?
                }
                Layout::Sharded => {
                    runs::applied_per_producer_in_banks(
                        conn,
                        keys,
                        record.id,
                        record.producers,
                        &meta.banks,
                    )
                    .await?
                }
            };
            Some(per_producer.iter().sum())
        } else {
            None
        };
        out.push(RunFacts { record, applied });
    }
    Ok(out)
}

/// The positions consumers recorded with their checkpoints, by name (the first
/// [`MAX_CONSUMERS`]; one that cannot be read is left out).
async fn read_consumers(conn: &mut Connection, keys: &Keys) -> Result<Vec<ConsumerFacts>> {
    let key = keys.positions();
    let stored: Vec<(String, String)> = query_retrying(conn, redis::cmd("HGETALL").arg(&key))
        .await
        .with_context(|| format!("reading {key}"))?;
    let mut consumers: Vec<ConsumerFacts> =
        stored.iter().filter_map(|(_, json)| serde_json::from_str(json).ok()).collect();
    consumers.sort_by(|a, b| a.name.cmp(&b.name));
    consumers.truncate(MAX_CONSUMERS);
    Ok(consumers)
}

/// The last verdict; one this version cannot read (another version's, or not ours) is left out.
async fn read_verdict(conn: &mut Connection, keys: &Keys) -> Result<Option<Verdict>> {
    let key = keys.verdict();
    let stored: Option<String> = query_retrying(conn, redis::cmd("GET").arg(&key))
        .await
        .with_context(|| format!("reading {key}"))?;
    Ok(stored.and_then(|text| Verdict::from_json(&text).ok()))
}
