//! Broker runs as recorded in Redis (`P:runs`, `P:run:N`), so `consume` knows which runs exist,
//! which strategy made their events, whether each has ended, and how many events to expect.

use std::collections::HashMap;

use crate::store::retry::{pipe_retrying, query_retrying};
use anyhow::{Context, Result};

use crate::ledger::runs::{RunRecord, RunStatus, Strategy};
use crate::store::keys::Keys;

/// Starts a run: takes the next run number and records what it will do.
pub async fn start(
    conn: &mut impl redis::aio::ConnectionLike,
    keys: &Keys,
    strategy: Strategy,
    workers: u32,
    producers: u32,
    planned: u64,
    started_ms: u64,
) -> Result<u64> {
    let id: u64 =
        redis::cmd("INCR").arg(keys.runs()).query_async(conn).await.context("numbering the run")?;
    // A run number handed out twice means Redis lost the INCR that handed it out before (a
    // restart or a failover): the old run's producer keys would answer this run's transfers.
    let before: Option<String> = redis::cmd("HGET")
        .arg(keys.run(id))
        .arg("status")
        .query_async(conn)
        .await
        .with_context(|| format!("checking {}", keys.run(id)))?;
    let reused = before.is_some();
    anyhow::ensure!(
        !reused,
        "{} already exists: Redis handed out run number {id} twice, so it lost acknowledged \
         writes (a restart or a failover); run `interbank consume` to see what it kept, then \
         `interbank init` to start again",
        keys.run(id)
    );
    redis::cmd("HSET")
        .arg(keys.run(id))
        .arg(&[
            ("strategy", strategy.as_str().to_string()),
            ("workers", workers.to_string()),
            ("producers", producers.to_string()),
            ("planned", planned.to_string()),
            ("started_ms", started_ms.to_string()),
            ("status", RunStatus::Running.as_str().to_string()),
        ])
        .query_async::<()>(conn)
        .await
        .with_context(|| format!("recording {}", keys.run(id)))?;
    Ok(id)
}

/// Records how a run ended.
pub async fn finish(
    conn: &mut impl redis::aio::ConnectionLike,
    keys: &Keys,
    id: u64,
    status: RunStatus,
    ended_ms: u64,
    events: u64,
    fields: &[(&str, String)],
) -> Result<()> {
    let mut all = vec![
        ("status", status.as_str().to_string()),
        ("ended_ms", ended_ms.to_string()),
        ("events", events.to_string()),
    ];
    all.extend(fields.iter().cloned());
    let mut cmd = redis::cmd("HSET");
    cmd.arg(keys.run(id)).arg(&all);
    query_retrying::<()>(conn, &cmd)
        .await
        .with_context(|| format!("recording {}", keys.run(id)))?;
    Ok(())
}

/// Counts the transfers applied for each of a run's producers: the length of each outcome string.
pub async fn applied_per_producer(
    conn: &mut impl redis::aio::ConnectionLike,
    keys: &Keys,
    run: u64,
    producers: u32,
) -> Result<Vec<u64>> {
    let mut pipe = redis::pipe();
    for producer in 1..=producers {
        pipe.strlen(keys.producer(&crate::ledger::events::producer_id(run, producer)));
    }
    pipe_retrying(conn, &pipe).await.context("reading the producer keys")
}

/// Sharded layout: the transfers applied for each of a run's producers, summed over the banks
/// (each bank keeps its own outcome string per producer; one pipeline per bank, one slot each).
pub async fn applied_per_producer_in_banks(
    conn: &mut impl redis::aio::ConnectionLike,
    keys: &Keys,
    run: u64,
    producers: u32,
    banks: &[String],
) -> Result<Vec<u64>> {
    let mut total = vec![0_u64; usize::try_from(producers).context("too many producers")?];
    for bank in banks {
        for (sum, n) in
            total.iter_mut().zip(applied_in_bank(conn, keys, run, producers, bank).await?)
        {
            *sum += n;
        }
    }
    Ok(total)
}

/// Sharded layout: the transfers out of `bank` applied for each of a run's producers, in one
/// pipeline (the keys share the bank's slot).
pub async fn applied_in_bank(
    conn: &mut impl redis::aio::ConnectionLike,
    keys: &Keys,
    run: u64,
    producers: u32,
    bank: &str,
) -> Result<Vec<u64>> {
    let mut pipe = redis::pipe();
    for producer in 1..=producers {
        pipe.strlen(keys.producer_in(bank, &crate::ledger::events::producer_id(run, producer)));
    }
    pipe_retrying(conn, &pipe)
        .await
        .with_context(|| format!("reading the producer keys of bank {bank}"))
}

/// The most runs one data set may record (each is read back by `consume`).
pub const MAX_RUNS: u64 = 100_000;

/// Reads every run recorded under the prefix, oldest first.
pub async fn read_all(
    conn: &mut impl redis::aio::ConnectionLike,
    keys: &Keys,
) -> Result<Vec<RunRecord>> {
    let last: Option<u64> = query_retrying(conn, redis::cmd("GET").arg(keys.runs()))
        .await
        .context("reading the runs")?;
    let last = last.unwrap_or(0);
    if last == 0 {
        return Ok(Vec::new());
    }
    anyhow::ensure!(
        last <= MAX_RUNS,
        "{} says {last} runs, more than the {MAX_RUNS} this tool reads: run `interbank init` again",
        keys.runs()
    );
    // One command per run: run records live in different slots, which a cluster pipeline
    // refuses; there are few runs.
    let mut all: Vec<HashMap<String, String>> = Vec::new();
    for id in 1..=last {
        let fields = query_retrying(conn, redis::cmd("HGETALL").arg(keys.run(id)))
            .await
            .with_context(|| format!("reading {}", keys.run(id)))?;
        all.push(fields);
    }
    let mut runs = Vec::with_capacity(all.len());
    for (fields, id) in all.into_iter().zip(1..) {
        // A broker killed between taking its number and recording its run made no transfer: it
        // records the run before its first one.
        if fields.is_empty() {
            continue;
        }
        runs.push(
            parse_run(id, &fields)
                .with_context(|| format!("{} is not a run record", keys.run(id)))?,
        );
    }
    Ok(runs)
}

fn parse_run(id: u64, fields: &HashMap<String, String>) -> Result<RunRecord> {
    let get = |name: &str| fields.get(name).map(String::as_str);
    let number = |name: &str| -> Result<Option<u64>> {
        get(name)
            .map(|v| v.parse::<u64>().with_context(|| format!("field {name} is {v:?}")))
            .transpose()
    };
    let required = |name: &str| -> Result<u64> {
        number(name)?.with_context(|| format!("field {name} is missing"))
    };
    let workers = u32::try_from(required("workers")?).context("field workers is too large")?;
    Ok(RunRecord {
        id,
        strategy: get("strategy")
            .and_then(Strategy::parse)
            .context("field strategy is missing or unknown")?,
        workers,
        // Runs recorded before group commit had one producer per worker.
        producers: number("producers")?
            .map_or(Ok(workers), u32::try_from)
            .context("field producers is too large")?,
        planned: required("planned")?,
        started_ms: required("started_ms")?,
        status: get("status")
            .and_then(RunStatus::parse)
            .context("field status is missing or unknown")?,
        ended_ms: number("ended_ms")?,
        events: number("events")?,
        error: get("error").map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_records_parse_and_name_bad_fields() {
        let mut fields: HashMap<String, String> = [
            ("strategy", "atomic"),
            ("workers", "20"),
            ("planned", "100000"),
            ("started_ms", "5"),
            ("status", "running"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let run = parse_run(3, &fields).unwrap();
        assert_eq!(
            (run.id, run.workers, run.producers, run.status, run.events),
            (3, 20, 20, RunStatus::Running, None)
        );
        fields.insert("producers".into(), "2".into());
        assert_eq!(parse_run(3, &fields).unwrap().producers, 2);
        fields.insert("events".into(), "x".into());
        assert!(parse_run(3, &fields).unwrap_err().to_string().contains("field events is \"x\""));
        fields.remove("strategy");
        assert!(parse_run(3, &fields).is_err());
    }
}
