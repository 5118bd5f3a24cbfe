//! The verdict `consume` records in Redis (`P:verdict`, one JSON string written with one `SET`)
//! so that `status`, the dashboard and `/metrics` can show the last verification: when, over how
//! many events, and each check's result.

use serde::{Deserialize, Serialize};

use crate::ledger::verify::Report;

/// Failures kept per check in the record: enough to show what went wrong, bounded in size.
pub const FAILURES_KEPT: usize = 5;

/// The last verification, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// When it was reached, in ms since the Unix epoch.
    pub at_ms: u64,
    /// The consumer that reached it (`--name`).
    pub consumer: String,
    pub verified: bool,
    /// Events replayed to reach it.
    pub events: u64,
    pub completed: u64,
    pub cancelled: u64,
    pub checks: Vec<CheckResult>,
}

/// One check of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub name: String,
    pub passed: bool,
    pub detail: String,
    /// How many failures it found in all.
    pub failures: u64,
    /// The first few, as `consume` printed them.
    pub first_failures: Vec<String>,
}

impl Verdict {
    /// The record of `report`, reached by `consumer` at `at_ms`.
    pub fn of(report: &Report, consumer: &str, at_ms: u64) -> Verdict {
        let checks = report
            .checks
            .iter()
            .map(|check| CheckResult {
                name: check.name.to_string(),
                passed: check.passed,
                detail: check.detail.clone(),
                failures: check.failures.len() as u64 + check.more_failures,
                first_failures: check.failures.iter().take(FAILURES_KEPT).cloned().collect(),
            })
            .collect();
        Verdict {
            at_ms,
            consumer: consumer.to_string(),
            verified: report.verified,
            events: report.events,
            completed: report.completed,
            cancelled: report.cancelled,
            checks,
        }
    }

    /// The record as stored.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a verdict always serializes")
    }

    /// A stored record, or why it cannot be read.
    pub fn from_json(text: &str) -> Result<Verdict, String> {
        serde_json::from_str(text).map_err(|e| format!("not a verdict of this version: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::verify::Check;

    fn report(checks: Vec<Check>) -> Report {
        Report {
            verified: checks.iter().all(|c| c.passed),
            events: 10,
            completed: 7,
            cancelled: 3,
            cancelled_by_reason: Vec::new(),
            moved_cents: 0,
            accounts: 2,
            banks: 1,
            total_cents: 100,
            runs: Vec::new(),
            checks,
        }
    }

    #[test]
    fn keeps_a_bounded_number_of_failures_and_counts_them_all() {
        let failing = Check {
            name: "accounts",
            passed: false,
            detail: "2 accounts".into(),
            failures: (0..8).map(|i| format!("key {i}")).collect(),
            more_failures: 4,
        };
        let verdict = Verdict::of(&report(vec![failing]), "c1", 42);
        assert!(!verdict.verified);
        assert_eq!(verdict.checks[0].failures, 12);
        assert_eq!(verdict.checks[0].first_failures.len(), FAILURES_KEPT);
        assert_eq!(Verdict::from_json(&verdict.to_json()).unwrap(), verdict);
    }

    #[test]
    fn a_foreign_record_is_an_error_not_a_panic() {
        assert!(Verdict::from_json("{\"at\":1}").is_err());
        assert!(Verdict::from_json("").is_err());
    }
}
