//! The `atomic` strategy: each call sends up to `--batch` transfers to the transfer script, which
//! checks, applies and events each of them in one atomic step on the server.
//!
//! A worker is one producer. Its transfers are numbered 1, 2, 3... and a call is retried with the
//! same numbers after a transient error (dropped connection, timeout, restart): the script answers
//! transfers it has already applied with their first outcome, so a retry never applies twice.
//! A worker sends its next call only once the previous one has an answer, so its numbers reach
//! the server in order and none is skipped.

use std::sync::atomic::Ordering;

use rand::Rng;

use super::{Shared, WorkerStats, worker_rng};
use crate::ledger::events::Outcome;
use crate::ledger::events::producer_id;
use crate::store::connection::Connection;
use crate::store::error::{CallError, ScriptStop, StopCode};
use crate::store::script::{BatchReply, Scope, TransferRequest};
use crate::store::target::Target;

pub(super) async fn worker(shared: &Shared, worker: u32, mut conn: Connection) -> WorkerStats {
    let cfg = &shared.config;
    let dir = &shared.directory;
    let producer = producer_id(shared.run, worker);
    let mut rng = worker_rng(cfg.seed, worker);
    let mut stats = WorkerStats::default();
    let mut picks: Vec<(usize, usize, i64)> = Vec::with_capacity(cfg.batch);
    let mut seq: u64 = 1;
    while seq <= cfg.transfers_per_worker && !shared.stop.load(Ordering::Relaxed) {
        let count = (cfg.transfers_per_worker - seq + 1).min(cfg.batch as u64) as usize;
        picks.clear();
        for _ in 0..count {
            let (from, to) = dir.pick_pair(&mut rng);
            picks.push((from, to, rng.random_range(cfg.min_amount_cents..=cfg.max_amount_cents)));
        }
        let requests: Vec<TransferRequest<'_>> = picks
            .iter()
            .map(|&(from, to, amount_cents)| TransferRequest {
                from_bank: usize::from(dir.accounts[from].1),
                to_bank: usize::from(dir.accounts[to].1),
                from: &dir.accounts[from].0,
                to: &dir.accounts[to].0,
                amount_cents,
            })
            .collect();
        let Some(started) = shared.start(count as u64).await else { break };
        let reply =
            call(shared, &mut conn, Scope::Global, &producer, seq, &requests, &mut stats).await;
        stats.record_latency(started.elapsed());
        for outcome in &reply.outcomes {
            stats.count(*outcome);
        }
        shared.done.fetch_add(reply.outcomes.len() as u64, Ordering::Relaxed);
        if let Some(error) = reply.error {
            stats.failed += (count - reply.outcomes.len()) as u64;
            stats.error = Some(error);
            shared.stop.store(true, Ordering::Relaxed);
            return stats;
        }
        seq += count as u64;
    }
    stats
}

/// What a call came to: the outcomes of the transfers applied, in order, and, if it did not apply
/// them all, why, written for the person reading the run's summary.
pub(super) struct Called {
    pub outcomes: Vec<Outcome>,
    pub error: Option<String>,
}

/// Sends transfers `seq..` of `producer` in one script call, again after each transient error
/// (up to `RETRY_LIMIT` times, with the same numbers, so nothing is applied twice). Counts the
/// calls and retries in `stats`.
pub(super) async fn call(
    shared: &Shared,
    conn: &mut Connection,
    scope: Scope<'_>,
    producer: &str,
    seq: u64,
    requests: &[TransferRequest<'_>],
    stats: &mut WorkerStats,
) -> Called {
    let cfg = &shared.config;
    let banks = &shared.directory.banks;
    let sent =
        step!(stats, shared.script.submit(conn, &cfg.keys, banks, scope, producer, seq, requests));
    match sent {
        Ok(BatchReply { outcomes, stop }) => {
            let stopped_at = seq + u64::try_from(outcomes.len()).expect("at most MAX_BATCH");
            let error = stop.map(|stop| describe_stop(&stop, producer, stopped_at));
            Called { outcomes, error }
        }
        Err((err, retries)) => {
            let error = describe_failure(&err, retries, producer, seq, &cfg.target);
            Called { outcomes: Vec::new(), error: Some(error) }
        }
    }
}

/// Why the script stopped a call at transfer `seq` of `producer`, and what to do about it.
fn describe_stop(stop: &ScriptStop, producer: &str, seq: u64) -> String {
    let hint = match stop.code {
        StopCode::NoPermission => {
            " (the Redis user lacks a command or a key: see the ACL rules in the README)"
        }
        StopCode::NotABalance | StopCode::Failed => "",
    };
    format!(
        "the transfer script stopped at transfer {producer}-{seq}: {}; nothing from that \
         transfer on was applied{hint}",
        stop.message
    )
}

/// Why a call got no answer after `retries` retries, and what it means for its transfers.
fn describe_failure(
    err: &CallError,
    retries: u32,
    producer: &str,
    seq: u64,
    target: &Target,
) -> String {
    let text = target.scrub(&err.to_string());
    let id = format!("{producer}-{seq}");
    match err {
        CallError::OutOfMemory(_) => format!(
            "Redis is out of memory (maxmemory reached) at transfer {id}: the broker stopped; the script \
             runs whole or not at all, so nothing was half-applied. Free memory or raise maxmemory, then run again"
        ),
        CallError::SequenceGap(_) => format!(
            "Redis no longer has transfers it had acknowledged before {id} ({text}): it restarted and lost \
             its last writes (appendfsync everysec or no persistence). What it kept is consistent; the \
             broker stopped so that nothing is numbered twice. Start a new run"
        ),
        CallError::Transient(_) => format!(
            "transfer {id} could not be sent after {retries} retries ({text}); it may or may not have been \
             applied, and `consume` will tell: its id is recorded only if it was"
        ),
        CallError::Refused(_) => format!("transfer {id} was refused by Redis: {text}"),
        CallError::Stopped(stop) => describe_stop(stop, producer, seq),
        CallError::StaleEpoch { .. } => format!("transfer {id}: {text}"),
    }
}
