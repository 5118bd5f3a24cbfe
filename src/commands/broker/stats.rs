//! What one worker counted: outcomes, retries, and a latency histogram; merged at the end.

use hdrhistogram::Histogram;

use crate::ledger::events::Outcome;

/// Latencies are recorded in microseconds, from 1 µs to 60 s, with 3 significant digits.
const LATENCY_MAX_US: u64 = 60_000_000;

#[derive(Debug, Clone)]
pub struct WorkerStats {
    pub completed: u64,
    pub cancelled: u64,
    /// Transfers whose outcome is unknown or that were not applied because of an error.
    pub failed: u64,
    /// Cross-bank transfers debited and left in flight for the recovery pass (Redis Cluster:
    /// no replica acknowledged the debit in time).
    pub in_flight: u64,
    /// Requests sent again after a transient error.
    pub retries: u64,
    /// `watch` only: transactions aborted by a concurrent change and started over.
    pub conflicts: u64,
    /// Redis Cluster: credits refused because their destination's inbox forgot settled
    /// transfers meanwhile (a newer epoch), whose debits were checked again.
    pub stale_credits: u64,
    /// Redis Cluster: transfers between two banks, each made in steps on two shards.
    pub cross_bank: u64,
    /// Redis calls made (a script call, or each command of the other strategies).
    pub calls: u64,
    /// Events appended by this worker (for strategies that append from the client).
    pub events: u64,
    pub latency_us: Histogram<u64>,
    pub error: Option<String>,
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            completed: 0,
            cancelled: 0,
            failed: 0,
            in_flight: 0,
            retries: 0,
            conflicts: 0,
            stale_credits: 0,
            cross_bank: 0,
            calls: 0,
            events: 0,
            latency_us: Histogram::new_with_bounds(1, LATENCY_MAX_US, 3)
                .expect("valid histogram bounds"),
            error: None,
        }
    }
}

impl WorkerStats {
    pub fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Completed => self.completed += 1,
            Outcome::Cancelled(_) => self.cancelled += 1,
        }
    }

    pub fn record_latency(&mut self, elapsed: std::time::Duration) {
        let us = (elapsed.as_micros() as u64).clamp(1, LATENCY_MAX_US);
        self.latency_us.record(us).expect("clamped into the histogram's range");
    }

    /// Adds another worker's figures; the first error seen is kept.
    pub fn merge(&mut self, other: &WorkerStats) {
        self.completed += other.completed;
        self.cancelled += other.cancelled;
        self.failed += other.failed;
        self.in_flight += other.in_flight;
        self.retries += other.retries;
        self.conflicts += other.conflicts;
        self.stale_credits += other.stale_credits;
        self.cross_bank += other.cross_bank;
        self.calls += other.calls;
        self.events += other.events;
        self.latency_us.add(&other.latency_us).expect("same bounds");
        if self.error.is_none() {
            self.error.clone_from(&other.error);
        }
    }
}
