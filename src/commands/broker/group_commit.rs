//! `--group-commit`: the workers hand their transfers, one at a time, to a committer per
//! connection, which sends all those waiting as one call of the transfer script, as a database
//! commits the transactions waiting for its log in one write.
//!
//! A worker still waits for each transfer's own outcome before making the next, as with one
//! transfer per call, but Redis runs one script call for many of them: the calls grow with the
//! load by themselves (at most one transfer per waiting worker). It pays with many workers and
//! costs with few, where the calls stay small and each transfer is handed over once more between
//! tasks (figures in `docs/BENCHMARKS.md`).
//!
//! The committer is the producer: it numbers the transfers it sends 1, 2, 3... as a worker does
//! without group commit, it has one call in flight at a time, and it sends a call again with the
//! same numbers after a transient error, so a retry never applies a transfer twice.

use std::sync::atomic::Ordering;

use rand::Rng;
use tokio::sync::{mpsc, oneshot};

use super::sharded::Ended;
use super::{Shared, WorkerStats, worker_rng};
use crate::ledger::events::{Outcome, producer_id};
use crate::store::connection::Connection;
use crate::store::script::{MAX_BATCH, Scope, TransferRequest};

/// A transfer handed to a committer: two accounts of the directory, the amount, and where its
/// outcome goes (dropped unanswered if it was not applied; `None` on a cluster when it was left
/// in flight for the recovery pass).
pub(super) struct Handed {
    from: usize,
    to: usize,
    amount_cents: i64,
    outcome: oneshot::Sender<Option<Outcome>>,
}

/// The queue from the workers to one committer: never longer than its workers, one transfer each.
pub(super) fn queue(workers: usize) -> (mpsc::Sender<Handed>, mpsc::Receiver<Handed>) {
    mpsc::channel(workers.max(1))
}

/// A worker: makes its transfers one at a time, each handed to its committer and waited for.
pub(super) async fn worker(
    shared: &Shared,
    worker: u32,
    queue: mpsc::Sender<Handed>,
) -> WorkerStats {
    let cfg = &shared.config;
    let dir = &shared.directory;
    let mut rng = worker_rng(cfg.seed, worker);
    let mut stats = WorkerStats::default();
    for _ in 0..cfg.transfers_per_worker {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let (from, to) = dir.pick_pair(&mut rng);
        let amount_cents = rng.random_range(cfg.min_amount_cents..=cfg.max_amount_cents);
        let (outcome, answer) = oneshot::channel();
        let Some(started) = shared.start(1).await else { break };
        if queue.send(Handed { from, to, amount_cents, outcome }).await.is_err() {
            // The committer stopped on an error, which it reports; this transfer was not made.
            break;
        }
        match answer.await {
            Ok(Some(outcome)) => shared.decided(&mut stats, outcome, started),
            Ok(None) => {
                stats.in_flight += 1;
                shared.done.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                // Handed but not applied: the committer stopped on an error before it.
                stats.failed += 1;
                break;
            }
        }
    }
    stats
}

/// A committer: sends what its workers handed it, as many as are waiting per call, until they
/// have all finished. Stops the run on an error that retries did not cure.
pub(super) async fn committer(
    shared: &Shared,
    number: u32,
    mut conn: Connection,
    mut queue: mpsc::Receiver<Handed>,
) -> WorkerStats {
    let dir = &shared.directory;
    let producer = producer_id(shared.run, number);
    let mut stats = WorkerStats::default();
    let mut handed: Vec<Handed> = Vec::new();
    let mut seq: u64 = 1;
    // On a cluster the committer numbers its transfers per source bank.
    let mut next_seq = vec![1_u64; dir.banks.len()];
    while let Some(first) = queue.recv().await {
        handed.clear();
        handed.push(first);
        while handed.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => handed.push(next),
                Err(_) => break,
            }
        }
        if shared.sharded {
            if let Err(error) = commit_across_shards(
                shared,
                &mut conn,
                &producer,
                &mut next_seq,
                &mut handed,
                &mut stats,
            )
            .await
            {
                // The transfers not answered are dropped: their workers count them failed.
                stats.error = Some(error);
                shared.stop.store(true, Ordering::Relaxed);
                break;
            }
            continue;
        }
        let requests = requests(shared, &handed);
        let reply = super::atomic::call(
            shared,
            &mut conn,
            Scope::Global,
            &producer,
            seq,
            &requests,
            &mut stats,
        )
        .await;
        assert!(reply.outcomes.len() <= handed.len(), "more outcomes than transfers sent");
        seq += reply.outcomes.len() as u64;
        let applied = reply.outcomes.len();
        for (h, outcome) in handed.drain(..applied).zip(reply.outcomes) {
            // A worker that is gone (the run was interrupted) needs no answer.
            let _ = h.outcome.send(Some(outcome));
        }
        if let Some(error) = reply.error {
            // The transfers not applied are dropped unanswered: their workers count them failed.
            stats.error = Some(error);
            shared.stop.store(true, Ordering::Relaxed);
            break;
        }
    }
    stats
}

/// On a cluster: the transfers handed, as one batch of the sharded worker (each step one call
/// per bank), each answered with its outcome, or `None` when it was left in flight.
async fn commit_across_shards(
    shared: &Shared,
    conn: &mut Connection,
    producer: &str,
    next_seq: &mut [u64],
    handed: &mut Vec<Handed>,
    stats: &mut WorkerStats,
) -> Result<(), String> {
    let picks = requests(shared, handed);
    let ended =
        super::sharded_batch::round(shared, conn, producer, next_seq, &picks, stats).await?;
    for (h, end) in handed.drain(..).zip(ended) {
        let outcome = match end {
            Ended::Decided(outcome) => Some(outcome),
            Ended::InFlight => None,
        };
        // A worker that is gone (the run was interrupted) needs no answer.
        let _ = h.outcome.send(outcome);
    }
    Ok(())
}

/// The transfers handed, as the scripts take them.
fn requests<'a>(shared: &'a Shared, handed: &[Handed]) -> Vec<TransferRequest<'a>> {
    let dir = &shared.directory;
    handed
        .iter()
        .map(|h| TransferRequest {
            from_bank: usize::from(dir.accounts[h.from].1),
            to_bank: usize::from(dir.accounts[h.to].1),
            from: &dir.accounts[h.from].0,
            to: &dir.accounts[h.to].0,
            amount_cents: h.amount_cents,
        })
        .collect()
}
