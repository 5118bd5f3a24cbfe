//! What Redis holds once the runs are over, read for the verification: every account, bank
//! balance and interbank pair the ledger knows of, each run's record, and each atomic producer's
//! outcomes. One command per key, pipelined, so a key of the wrong type shows as that key's error
//! instead of failing the whole read.

use anyhow::{Context, Result, ensure};
use redis::Value as RedisValue;
use redis::aio::ConnectionLike;

use crate::ledger::events;
use crate::ledger::events::Layout;
use crate::ledger::replay::Ledger;
use crate::ledger::runs::{RunRecord, Strategy};
use crate::ledger::verify::{OutboxRecord, ProducerRecord, Snapshot, Value};
use crate::store::keys::{ANCHOR_FIELD, Keys};
use crate::store::retry::{pipe_retrying, query_retrying};
use crate::store::runs;

/// Keys per `MGET` (the snapshot's, and the views' reads), and bytes per `GETRANGE` of a producer
/// key.
pub const MGET_CHUNK: usize = 10_000;
const GETRANGE_CHUNK: u64 = 1 << 20;

fn to_value(value: redis::RedisResult<RedisValue>) -> Value {
    match value {
        Ok(read) => value_of(read),
        Err(err) => Value::Error(err.to_string()),
    }
}

/// A value Redis answered, as the ledger checks it: missing, an integer, or something else
/// (with what it was, or the error Redis gave for it).
pub fn value_of(read: RedisValue) -> Value {
    match read {
        RedisValue::Nil => Value::Missing,
        RedisValue::Int(v) => Value::Int(v),
        RedisValue::BulkString(bytes) => {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            text.parse().map_or(Value::Invalid(text), Value::Int)
        }
        RedisValue::ServerError(err) => Value::Error(format!("{err:?}")),
        other => Value::Invalid(format!("{other:?}")),
    }
}

/// Reads every balance the ledger knows of, and each atomic producer's record, as the ledger's
/// layout keeps them.
pub async fn read(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    ledger: &Ledger,
    runs: Vec<RunRecord>,
) -> Result<Snapshot> {
    match ledger.layout {
        Layout::Single => read_single(conn, keys, ledger, runs).await,
        Layout::Sharded => read_sharded(conn, keys, ledger, runs).await,
    }
}

async fn read_single(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    ledger: &Ledger,
    runs: Vec<RunRecord>,
) -> Result<Snapshot> {
    let account_keys: Vec<String> = ledger
        .ibans
        .iter()
        .zip(&ledger.account_bank)
        .map(|(iban, bank)| keys.account(&ledger.banks[usize::from(*bank)], iban))
        .collect();
    let mut accounts = Vec::with_capacity(account_keys.len());
    for chunk in account_keys.chunks(MGET_CHUNK) {
        let values = read_each(conn, "GET", chunk).await?;
        accounts.extend(values.into_iter().map(to_value));
    }
    let bank_keys: Vec<String> = ledger.banks.iter().map(|b| keys.bank_balance(b)).collect();
    let banks = read_each(conn, "GET", &bank_keys).await?.into_iter().map(to_value).collect();
    let interbank = read_interbank(conn, keys, ledger).await?;
    let mut producers = Vec::new();
    for run in runs.iter().filter(|r| r.strategy == Strategy::Atomic) {
        let applied = runs::applied_per_producer(conn, keys, run.id, run.producers).await?;
        for (producer, applied) in (1..=run.producers).zip(applied) {
            let key = keys.producer(&events::producer_id(run.id, producer));
            let completed = count_completed(conn, &key, applied).await?;
            producers.push(ProducerRecord {
                run: run.id,
                producer,
                bank: None,
                applied,
                completed,
            });
        }
    }
    Ok(Snapshot {
        accounts,
        banks,
        interbank,
        runs,
        producers,
        in_flight: Vec::new(),
        outbox: Vec::new(),
    })
}

/// Each bank's interbank hash, one pipeline per bank (one slot each).
async fn read_interbank(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    ledger: &Ledger,
) -> Result<Vec<Value>> {
    let n = ledger.banks.len();
    let mut interbank = vec![Value::Int(0); n * n];
    for (a, bank) in ledger.banks.iter().enumerate() {
        let key = keys.interbank(bank);
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for other in ledger.banks.iter().filter(|o| *o != bank) {
            pipe.cmd("HGET").arg(&key).arg(other);
        }
        let values: Vec<redis::RedisResult<RedisValue>> =
            pipe_retrying(conn, &pipe).await.with_context(|| format!("reading {key}"))?;
        let others = (0..n).filter(|&b| b != a);
        for (b, value) in others.zip(values) {
            interbank[a * n + b] = to_value(value);
        }
    }
    Ok(interbank)
}

/// The sharded layout: every read touches one bank's keys (one slot) at a time.
async fn read_sharded(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    ledger: &Ledger,
    runs: Vec<RunRecord>,
) -> Result<Snapshot> {
    let mut accounts = vec![Value::Missing; ledger.ibans.len()];
    let (mut banks, mut in_flight, mut outbox) = (Vec::new(), Vec::new(), Vec::new());
    for (index, bank) in ledger.banks.iter().enumerate() {
        let members: Vec<usize> = (0..ledger.ibans.len())
            .filter(|&i| usize::from(ledger.account_bank[i]) == index)
            .collect();
        for chunk in members.chunks(MGET_CHUNK) {
            let names: Vec<String> =
                chunk.iter().map(|&i| keys.account(bank, &ledger.ibans[i])).collect();
            for (&i, value) in chunk.iter().zip(read_each(conn, "GET", &names).await?) {
                accounts[i] = to_value(value);
            }
        }
        let [balance, cents]: [redis::RedisResult<RedisValue>; 2] =
            read_each(conn, "GET", &[keys.bank_balance(bank), keys.in_flight(bank)])
                .await?
                .try_into()
                .map_err(|_| anyhow::anyhow!("two GETs gave another number of answers"))?;
        banks.push(to_value(balance));
        in_flight.push(match to_value(cents) {
            Value::Missing => Value::Int(0),
            cents => cents,
        });
        let bank_index = u16::try_from(index).context("too many banks")?;
        let key = keys.outbox(bank);
        let entries: Vec<(String, String)> = query_retrying(conn, redis::cmd("HGETALL").arg(&key))
            .await
            .with_context(|| format!("reading {key}"))?;
        outbox.extend(
            entries
                .into_iter()
                .filter(|(id, _)| id != ANCHOR_FIELD)
                .map(|(id, value)| OutboxRecord { bank: bank_index, id, value }),
        );
    }
    let interbank = read_interbank(conn, keys, ledger).await?;
    let producers = read_sharded_producers(conn, keys, ledger, &runs).await?;
    Ok(Snapshot { accounts, banks, interbank, runs, producers, in_flight, outbox })
}

/// Each atomic run's producer records, bank by bank.
async fn read_sharded_producers(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    ledger: &Ledger,
    runs: &[RunRecord],
) -> Result<Vec<ProducerRecord>> {
    let mut producers = Vec::new();
    for run in runs.iter().filter(|r| r.strategy == Strategy::Atomic) {
        for (index, bank) in ledger.banks.iter().enumerate() {
            let bank_index = u16::try_from(index).context("too many banks")?;
            let applied = runs::applied_in_bank(conn, keys, run.id, run.producers, bank).await?;
            for (producer, applied) in (1..=run.producers).zip(applied) {
                let key = keys.producer_in(bank, &events::producer_id(run.id, producer));
                let completed = count_completed(conn, &key, applied).await?;
                let bank = Some(bank_index);
                producers.push(ProducerRecord { run: run.id, producer, bank, applied, completed });
            }
        }
    }
    Ok(producers)
}

/// One command per key, pipelined, so a key of the wrong type shows as that key's error.
async fn read_each(
    conn: &mut impl ConnectionLike,
    command: &str,
    keys: &[String],
) -> Result<Vec<redis::RedisResult<RedisValue>>> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for key in keys {
        pipe.cmd(command).arg(key);
    }
    let values = pipe_retrying(conn, &pipe).await.context("reading balances")?;
    Ok(values)
}

/// Counts the `C` letters of a producer key, a chunk at a time.
async fn count_completed(conn: &mut impl ConnectionLike, key: &str, length: u64) -> Result<u64> {
    let mut completed = 0;
    let mut start = 0;
    while start < length {
        let end = (start + GETRANGE_CHUNK).min(length) - 1;
        let chunk: Vec<u8> =
            query_retrying(conn, redis::cmd("GETRANGE").arg(key).arg(start).arg(end))
                .await
                .with_context(|| format!("reading {key}"))?;
        ensure!(!chunk.is_empty(), "{key} is shorter than its length");
        let read = u64::try_from(chunk.len()).expect("at most GETRANGE_CHUNK bytes");
        ensure!(read <= end + 1 - start, "{key} answered more bytes than asked");
        completed += chunk.iter().map(|&c| u64::from(c == b'C')).sum::<u64>();
        start += read;
    }
    Ok(completed)
}
