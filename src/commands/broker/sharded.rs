//! The `atomic` strategy on a Redis Cluster, where each bank's keys live in one slot and a
//! script may touch one slot only.
//!
//! A transfer inside one bank is one call of the transfer script on that bank's keys, as on a
//! single server, with the bank's own stream and producer key. A transfer between two banks is
//! three calls (see `store/lua/cross_bank.lua`): the debit on the source's shard, then, once a
//! replica of that shard has the debit (when it has replicas), the credit on the destination's
//! shard, then, once a replica there has the credit, the settlement on the source's. At one
//! transfer per call the worker makes the debit and hands the transfer to the courier
//! (`courier.rs`), which makes the other steps for many transfers at a time. A worker numbers its
//! transfers per source bank (1, 2, 3... in each), since its record of applied transfers lives in
//! the source bank's slot. Every call is sent again after a transient error with the same numbers
//! and id, and every step answers a repeat with its first answer, so nothing is applied twice. A
//! transfer the broker could not carry to its end stays in the source's outbox, in flight, for
//! the recovery pass.

use std::sync::atomic::Ordering;
use std::time::Instant;

use rand::Rng;
use tokio::sync::mpsc;

use super::courier::Debited;
use super::{Shared, WorkerStats, worker_rng};
use crate::ledger::events::{Outcome, producer_id};
use crate::store::connection::Connection;
use crate::store::cross_bank::{Debit, InFlight};
use crate::store::error::CallError;
use crate::store::script::{Scope, TransferRequest};

/// How a transfer ended for its worker.
pub(super) enum Ended {
    Decided(Outcome),
    /// Debited, and left in flight: no replica acknowledged the debit in time.
    InFlight,
}

/// A worker; with `--batch 1`, `courier` takes its debited transfers to carry them further.
pub(super) async fn worker(
    shared: &Shared,
    worker: u32,
    mut conn: Connection,
    courier: Option<mpsc::Sender<Debited>>,
) -> WorkerStats {
    let cfg = &shared.config;
    let dir = &shared.directory;
    let producer = producer_id(shared.run, worker);
    let mut rng = worker_rng(cfg.seed, worker);
    let mut stats = WorkerStats::default();
    let mut next_seq = vec![1_u64; dir.banks.len()];
    let courier = &courier.expect("a worker on a cluster has a courier");
    if cfg.batch > 1 {
        let (conn, rng, seqs) = (&mut conn, &mut rng, &mut next_seq);
        super::sharded_batch::work(shared, conn, &producer, rng, seqs, &mut stats, courier).await;
        return stats;
    }
    for _ in 0..cfg.transfers_per_worker {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let (from, to) = dir.pick_pair(&mut rng);
        let amount_cents = rng.random_range(cfg.min_amount_cents..=cfg.max_amount_cents);
        let request = TransferRequest {
            from_bank: usize::from(dir.accounts[from].1),
            to_bank: usize::from(dir.accounts[to].1),
            from: &dir.accounts[from].0,
            to: &dir.accounts[to].0,
            amount_cents,
        };
        let seq = next_seq[request.from_bank];
        let Some(started) = shared.start(1).await else { break };
        let ended = if request.from_bank == request.to_bank {
            same_bank(shared, &mut conn, &producer, seq, &request, &mut stats).await.map(Some)
        } else {
            stats.cross_bank += 1;
            let step = (seq, started);
            cross_bank(shared, &mut conn, &producer, step, &request, courier, &mut stats).await
        };
        match ended {
            Ok(Some(Ended::Decided(outcome))) => shared.decided(&mut stats, outcome, started),
            Ok(Some(Ended::InFlight)) => {
                stats.in_flight += 1;
                shared.done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(None) => {}
            Err(error) => {
                stats.failed += 1;
                stats.error = Some(error);
                shared.stop.store(true, Ordering::Relaxed);
                break;
            }
        }
        next_seq[request.from_bank] += 1;
    }
    stats
}

/// One call of the transfer script on the bank's own keys.
async fn same_bank(
    shared: &Shared,
    conn: &mut Connection,
    producer: &str,
    seq: u64,
    request: &TransferRequest<'_>,
    stats: &mut WorkerStats,
) -> Result<Ended, String> {
    let bank = Scope::Bank(&shared.directory.banks[request.from_bank]);
    let called = super::atomic::call(
        shared,
        conn,
        bank,
        producer,
        seq,
        std::slice::from_ref(request),
        stats,
    )
    .await;
    match (called.outcomes.first(), called.error) {
        (_, Some(error)) => Err(error),
        (Some(outcome), None) => Ok(Ended::Decided(*outcome)),
        (None, None) => unreachable!("a call that stopped nowhere answered every transfer"),
    }
}

/// The debit, in a call of its own; a debited transfer goes to the courier (`None`), which
/// carries it to its end with others.
async fn cross_bank(
    shared: &Shared,
    conn: &mut Connection,
    producer: &str,
    (seq, started): (u64, Instant),
    request: &TransferRequest<'_>,
    courier: &mpsc::Sender<Debited>,
    stats: &mut WorkerStats,
) -> Result<Option<Ended>, String> {
    let (script, keys) = (&shared.cross_bank, &shared.config.keys);
    let transfer = InFlight {
        from_bank: shared.directory.banks[request.from_bank].clone(),
        to_bank: shared.directory.banks[request.to_bank].clone(),
        id: format!("{producer}-{seq}"),
        from: request.from.to_string(),
        to: request.to.to_string(),
        amount_cents: request.amount_cents,
    };
    let debit = step!(stats, script.debit(conn, keys, producer, seq, &transfer)).map_err(
        |(err, retries)| {
            let id = format!("{}:{}", transfer.from_bank, transfer.id);
            describe_failure("debit", &id, &err, retries)
        },
    )?;
    if let Debit::Cancelled(reason) = debit {
        return Ok(Some(Ended::Decided(Outcome::Cancelled(reason))));
    }
    match courier.send(Debited { transfer, started }).await {
        Ok(()) => Ok(None),
        // The courier is gone (it panicked): the transfer waits in its outbox for recovery.
        Err(_) => Ok(Some(Ended::InFlight)),
    }
}

/// Why a step of a cross-bank transfer failed for good, and where that leaves the money.
pub(super) fn describe_failure(step: &str, id: &str, err: &CallError, retries: u32) -> String {
    if let Some(lost) = lost_writes(step, id, err) {
        return lost;
    }
    let after = if retries > 0 { format!(" after {retries} retries") } else { String::new() };
    let state = if step == "debit" {
        "it may or may not have been debited; if it was, it is in its bank's outbox"
    } else {
        "it was debited and is in flight in its bank's outbox"
    };
    format!(
        "the {step} of transfer {id} failed{after}: {err}; {state}, and `interbank recover` \
         carries it to its end"
    )
}

/// What a sequence gap at step `step` of transfer `id` means: a failover (or a restart) took
/// back writes the shard had acknowledged, the producer's last debits among them. `None` for
/// any other failure.
pub(super) fn lost_writes(step: &str, id: &str, err: &CallError) -> Option<String> {
    let CallError::SequenceGap(_) = err else { return None };
    Some(format!(
        "the {step} of transfer {id} found that Redis no longer has transfers it had acknowledged \
         before it ({err}): a failover or a restart lost the last writes of that bank's shard \
         before a replica had them. What the shard kept is consistent, and a lost debit is never \
         credited; the broker stopped so that nothing is numbered twice. `interbank recover` \
         carries what is in flight to its end, and `consume` reports the gap"
    ))
}
