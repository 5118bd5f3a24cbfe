//! The courier of a broker on a Redis Cluster: the workers debit each transfer between banks,
//! in a call of its own at `--batch 1` or with the rest of its bank's share of a batch, and hand
//! it to the courier, which carries the debited transfers of every worker to their end many at
//! a time: the credits in one call per destination bank, the settlements in one call per source
//! bank (`sharded_batch::carry`). Its transfers' latencies run from their worker's call to their
//! settlement.
//!
//! Why: a transfer between banks is three script calls, and at one transfer per call the fixed
//! cost of a call is most of what Redis spends; three calls each made a transfer between banks
//! cost Redis some seven times a transfer inside a bank. Nothing in the protocol needs the credit
//! to follow its debit at once: the money waits in the source's outbox and in-flight total,
//! visible, exactly as it does when a broker dies between the steps. The queue is bounded, so a
//! courier that falls behind holds the workers back rather than let money in flight grow. The
//! courier gathers for at most `--linger-ms` before it carries: measured with 20 workers on 3
//! masters, taking only what was queued made calls of about 5 transfers each and cost Redis 22%
//! more per transfer than 5 ms (about 17 each); 10 ms, the default, makes them about 28 each for
//! 6% less again, at the same p99 latency and 1.5 ms more at p50; 20 ms, about 50 each, p99 15 ms
//! later (docs/BENCHMARKS.md).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::sharded::Ended;
use super::sharded_batch::carry;
use super::{Shared, WorkerStats};
use crate::store::connection::Connection;
use crate::store::cross_bank::InFlight;
use crate::store::script::MAX_BATCH;

/// Debited transfers waiting for the courier, at most: one full batch of credits ahead.
pub(super) const QUEUE: usize = MAX_BATCH;

/// The most the courier gathers before it carries, however long it may wait (`--linger-ms`).
const GATHER: usize = 1024;

/// A transfer debited by a worker, and when the worker started it (for its latency).
pub(super) struct Debited {
    pub transfer: InFlight,
    pub started: Instant,
}

pub(super) fn queue() -> (mpsc::Sender<Debited>, mpsc::Receiver<Debited>) {
    mpsc::channel(QUEUE)
}

/// Carries what the workers debit to its end until every worker is done and the queue empty.
/// After a step fails for good, the rest is left in flight for the recovery pass.
pub(super) async fn courier(
    shared: &Shared,
    mut conn: Connection,
    mut queue: mpsc::Receiver<Debited>,
) -> WorkerStats {
    let mut stats = WorkerStats::default();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        gather(&mut queue, &mut batch, shared.config.linger_ms).await;
        let count = batch.len();
        let count_u64 = u64::try_from(count).expect("at most MAX_BATCH");
        if stats.error.is_some() {
            stats.in_flight += count_u64;
            shared.done.fetch_add(count_u64, Ordering::Relaxed);
            batch.clear();
            continue;
        }
        let started: Vec<Instant> = batch.iter().map(|d| d.started).collect();
        let debited: Vec<(usize, InFlight)> =
            batch.drain(..).map(|d| d.transfer).enumerate().collect();
        let mut ended: Vec<Option<Ended>> = (0..count).map(|_| None).collect();
        match carry(shared, &mut conn, debited, &mut ended, &mut stats).await {
            Ok(()) => {
                for (end, started) in ended.into_iter().zip(started) {
                    match end.expect("carry ends every transfer") {
                        Ended::Decided(outcome) => shared.decided(&mut stats, outcome, started),
                        Ended::InFlight => {
                            stats.in_flight += 1;
                            shared.done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            Err(error) => {
                stats.failed += count_u64;
                stats.error = Some(error);
                shared.stop.store(true, Ordering::Relaxed);
            }
        }
    }
    stats
}

/// Adds to `batch` what arrives within `linger_ms`, until it holds `GATHER` transfers.
async fn gather(queue: &mut mpsc::Receiver<Debited>, batch: &mut Vec<Debited>, linger_ms: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(linger_ms);
    while batch.len() < GATHER {
        let room = MAX_BATCH - batch.len();
        match tokio::time::timeout_at(deadline, queue.recv_many(batch, room)).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
