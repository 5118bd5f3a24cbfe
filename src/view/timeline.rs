//! Transfers decided per interval of time, from the stream entries' ids (each id starts with the
//! ms at which Redis appended it), so a rate chart shows when transfers happened, not when a
//! reader caught up with them.
//!
//! Bounded: at most [`MAX_BUCKETS`] intervals. When a new entry would need more, the interval
//! doubles and neighbouring buckets merge, so a run of any length fits.

use serde::Serialize;

use crate::ledger::events::{Entry, Outcome, Phase};

/// The most intervals a timeline keeps.
pub const MAX_BUCKETS: usize = 512;
const FIRST_BUCKET_MS: u64 = 1_000;

/// Counts per interval since the first entry seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Timeline {
    /// The start of the first interval, in ms since the Unix epoch.
    pub start_ms: u64,
    /// The width of each interval.
    pub bucket_ms: u64,
    /// Per interval: transfers completed (or credited across banks) and cancelled (or rejected).
    pub buckets: Vec<Bucket>,
}

/// One interval's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Bucket {
    pub completed: u64,
    pub cancelled: u64,
}

impl Bucket {
    /// One transfer, completed or cancelled.
    pub fn one(completed: bool) -> Bucket {
        Bucket { completed: u64::from(completed), cancelled: u64::from(!completed) }
    }
}

impl Timeline {
    /// Counts the transfers an entry appended at `at_ms` decided. An entry older than the first
    /// interval (ids of another stream, a clock step) counts in the first.
    pub fn add(&mut self, at_ms: u64, decided: Bucket) {
        if self.bucket_ms == 0 {
            self.start_ms = at_ms - at_ms % FIRST_BUCKET_MS;
            self.bucket_ms = FIRST_BUCKET_MS;
        }
        let mut index = self.index(at_ms);
        while index >= MAX_BUCKETS {
            self.widen();
            index = self.index(at_ms);
        }
        if self.buckets.len() <= index {
            self.buckets.resize(index + 1, Bucket::default());
        }
        let bucket = &mut self.buckets[index];
        bucket.completed += decided.completed;
        bucket.cancelled += decided.cancelled;
    }

    fn index(&self, at_ms: u64) -> usize {
        usize::try_from(at_ms.saturating_sub(self.start_ms) / self.bucket_ms).unwrap_or(usize::MAX)
    }

    /// Doubles the interval: merges each pair of buckets.
    fn widen(&mut self) {
        assert!(self.bucket_ms > 0, "widening a timeline with no entries");
        self.start_ms -= self.start_ms % (self.bucket_ms * 2);
        let merged = self
            .buckets
            .chunks(2)
            .map(|pair| Bucket {
                completed: pair.iter().map(|b| b.completed).sum(),
                cancelled: pair.iter().map(|b| b.cancelled).sum(),
            })
            .collect();
        self.buckets = merged;
        self.bucket_ms *= 2;
    }

    /// Transfers per second in each interval: (interval start ms, completed/s, cancelled/s).
    pub fn rates(&self) -> Vec<(u64, f64, f64)> {
        let seconds = self.bucket_ms as f64 / 1000.0;
        (0_u64..)
            .zip(&self.buckets)
            .map(|(i, b)| {
                (
                    self.start_ms + i * self.bucket_ms,
                    b.completed as f64 / seconds,
                    b.cancelled as f64 / seconds,
                )
            })
            .collect()
    }

    /// All transfers counted.
    pub fn total(&self) -> Bucket {
        self.buckets.iter().fold(Bucket::default(), |sum, b| Bucket {
            completed: sum.completed + b.completed,
            cancelled: sum.cancelled + b.cancelled,
        })
    }
}

/// The transfers an entry decides: completed (completed in a bank, or credited across banks)
/// and cancelled (cancelled, or rejected); `None` for the other steps between banks (debited,
/// voided, settled).
pub fn decisions(entry: &Entry<'_>) -> Option<Bucket> {
    let one = Bucket::one;
    match entry {
        Entry::Transfer(event) => Some(one(event.outcome == Outcome::Completed)),
        Entry::Step(step) => match step.phase {
            Phase::Credited { .. } => Some(one(true)),
            Phase::Rejected(_) => Some(one(false)),
            Phase::Debited { .. } | Phase::Voided { .. } => None,
        },
        Entry::Settlement(_) => None,
        Entry::Batch(batch) => match batch.steps[0].phase {
            Phase::Credited { .. } => {
                let credited = u64::try_from(batch.steps.len()).expect("a usize fits in a u64");
                Some(Bucket { completed: credited, cancelled: 0 })
            }
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_second_from_the_first_entry() {
        let mut timeline = Timeline::default();
        timeline.add(10_500, Bucket::one(true));
        timeline.add(10_900, Bucket::one(false));
        timeline.add(12_100, Bucket::one(true));
        assert_eq!(timeline.start_ms, 10_000);
        assert_eq!(timeline.bucket_ms, 1_000);
        assert_eq!(
            timeline.buckets,
            vec![
                Bucket { completed: 1, cancelled: 1 },
                Bucket::default(),
                Bucket { completed: 1, cancelled: 0 }
            ]
        );
        assert_eq!(timeline.rates()[0], (10_000, 1.0, 1.0));
    }

    #[test]
    fn a_long_run_widens_the_interval_and_keeps_every_count() {
        let mut timeline = Timeline::default();
        let seconds = 10_000_u64;
        for s in 0..seconds {
            timeline.add(1_000_000 + s * 1_000, Bucket::one(s % 3 != 0));
        }
        assert!(timeline.buckets.len() <= MAX_BUCKETS);
        assert!(timeline.bucket_ms >= 16_000);
        let total = timeline.total();
        assert_eq!(total.completed + total.cancelled, seconds);
        assert_eq!(total.cancelled, seconds.div_ceil(3));
        assert!(timeline.start_ms <= 1_000_000);
    }

    #[test]
    fn an_entry_before_the_first_counts_in_the_first_interval() {
        let mut timeline = Timeline::default();
        timeline.add(5_000, Bucket::one(true));
        timeline.add(1_000, Bucket::one(true));
        assert_eq!(timeline.buckets, vec![Bucket { completed: 2, cancelled: 0 }]);
    }
}
