//! `broker --rate`: the run's transfers start on a schedule, a fixed number per second over all
//! workers, instead of as fast as the workers can go.
//!
//! An open-loop load, as wrk2 makes one: each transfer (or call of a batch) takes the next ticket
//! of one schedule shared by all workers and waits for its time; one a worker gets to after its
//! time counts its latency from that time. A broker or a Redis that falls behind the schedule
//! shows it in the latencies instead of hiding it by sending less (coordinated omission). A
//! steady load also compares setups fairly: a server pushed to saturation coalesces many commands
//! per read, and one a third as busy does not, so costs per transfer measured at the same offered
//! rate say what each setup spends for the same work.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::time::Instant as ClockInstant;

/// The highest `--rate`: far beyond what one machine makes, and low enough that a schedule's
/// arithmetic stays exact (see [`offset`]).
pub const MAX_RATE_PER_S: u64 = 100_000_000;

const NANOS_PER_S: u64 = 1_000_000_000;
/// How often a wait for a transfer's time checks whether the run was asked to stop.
const STOP_CHECK_MS: u64 = 100;

/// One schedule shared by every worker of a run.
#[derive(Debug)]
pub(super) struct Pacer {
    rate_per_s: u64,
    /// When the first ticket was taken: the schedule's zero (on tokio's clock, which tests can
    /// pause).
    start: OnceLock<ClockInstant>,
    next_ticket: AtomicU64,
}

impl Pacer {
    pub fn new(rate_per_s: u64) -> Pacer {
        assert!((1..=MAX_RATE_PER_S).contains(&rate_per_s), "rate checked by the config");
        Pacer { rate_per_s, start: OnceLock::new(), next_ticket: AtomicU64::new(0) }
    }

    /// Takes the tickets of the next `transfers` transfers (one call's) and waits until the
    /// first one's time. Returns when the call's latency counts from: its due time when the
    /// worker got to it late (the schedule ran ahead of the broker, and the delay is part of the
    /// latency), else the end of the wait (tokio's timer wakes up to a millisecond late, which is
    /// not the broker's nor Redis's). `None` once `stop` is set (checked every `STOP_CHECK_MS` of
    /// the wait), so that a slow schedule does not hold up a run asked to stop.
    pub async fn wait(&self, transfers: u64, stop: &AtomicBool) -> Option<Instant> {
        let start = *self.start.get_or_init(ClockInstant::now);
        let ticket = self.next_ticket.fetch_add(transfers, Ordering::Relaxed);
        let due = start + offset(ticket, self.rate_per_s);
        if ClockInstant::now() >= due {
            return Some(due.into_std());
        }
        let slice = Duration::from_millis(STOP_CHECK_MS);
        // Bounded: each turn but the last sleeps a whole slice towards `due`.
        loop {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let now = ClockInstant::now();
            if now >= due {
                return Some(now.into_std());
            }
            tokio::time::sleep_until(due.min(now + slice)).await;
        }
    }
}

/// When ticket `ticket` (counted from 0) is due at `rate_per_s` tickets a second, after the
/// schedule's start: exact, with no drift however long the run (the nanoseconds of a partial
/// second are below 10^9, times a rate of at most 10^8, well within a u64).
pub fn offset(ticket: u64, rate_per_s: u64) -> Duration {
    assert!(rate_per_s > 0 && rate_per_s <= MAX_RATE_PER_S);
    let whole_s = ticket / rate_per_s;
    let part_ns = (ticket % rate_per_s) * NANOS_PER_S / rate_per_s;
    Duration::new(whole_s, u32::try_from(part_ns).expect("below one second"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_fall_evenly_over_each_second() {
        assert_eq!(offset(0, 4), Duration::ZERO);
        assert_eq!(offset(1, 4), Duration::from_millis(250));
        assert_eq!(offset(3, 4), Duration::from_millis(750));
        assert_eq!(offset(4, 4), Duration::from_secs(1));
        assert_eq!(offset(25_000, 25_000), Duration::from_secs(1));
        assert_eq!(offset(1, 3), Duration::from_nanos(333_333_333));
    }

    #[test]
    fn a_long_schedule_does_not_drift_or_overflow() {
        let planned = 10_000 * 1_000_000_000_u64;
        assert_eq!(offset(planned, 1), Duration::from_secs(planned));
        assert_eq!(offset(planned, MAX_RATE_PER_S), Duration::from_secs(100_000));
        let last = offset(MAX_RATE_PER_S - 1, MAX_RATE_PER_S);
        assert!(last < Duration::from_secs(1), "{last:?}");
    }

    #[test]
    fn offsets_never_go_back() {
        for rate in [1, 7, 1_000, 33_333, MAX_RATE_PER_S] {
            let mut before = Duration::ZERO;
            for ticket in 0..5_000 {
                let at = offset(ticket, rate);
                assert!(at >= before, "rate {rate}, ticket {ticket}");
                before = at;
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn calls_are_due_one_after_another_on_the_schedule() {
        let pacer = Pacer::new(1_000);
        let go = AtomicBool::new(false);
        let first = pacer.wait(1, &go).await.unwrap();
        let second = pacer.wait(10, &go).await.unwrap();
        let third = pacer.wait(1, &go).await.unwrap();
        assert_eq!(second - first, Duration::from_millis(1));
        assert_eq!(third - first, Duration::from_millis(11));
        assert!(ClockInstant::now().into_std() >= third);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_taken_late_counts_from_when_it_was_due() {
        let pacer = Pacer::new(1_000);
        let go = AtomicBool::new(false);
        let first = pacer.wait(1, &go).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let late = pacer.wait(1, &go).await.unwrap();
        assert_eq!(late - first, Duration::from_millis(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_ends_a_long_wait_within_a_slice() {
        let pacer = Pacer::new(1);
        let stop = AtomicBool::new(false);
        assert!(pacer.wait(1, &stop).await.is_some());
        let begun = ClockInstant::now();
        let waiting = pacer.wait(1, &stop);
        let stopping = async {
            tokio::time::sleep(Duration::from_millis(250)).await;
            stop.store(true, Ordering::Relaxed);
        };
        let (due, ()) = tokio::join!(waiting, stopping);
        assert_eq!(due, None);
        assert!(
            begun.elapsed() <= Duration::from_millis(250 + STOP_CHECK_MS),
            "{:?}",
            begun.elapsed()
        );
    }
}
