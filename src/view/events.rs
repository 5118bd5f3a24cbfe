//! The latest events as the dashboard lists them: one row per stream entry, filtered by bank, run
//! and status, and the order of entry ids that pages are cut by.

use serde::Serialize;

use crate::ledger::events::{Entry, Outcome, Phase};

/// One stream entry, as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRow {
    pub id: String,
    pub stream: String,
    pub transfer: String,
    pub run: u64,
    pub status: &'static str,
    pub from: String,
    pub to: String,
    pub from_bank: String,
    pub to_bank: String,
    pub amount_cents: i64,
    /// Why it was cancelled, rejected or voided; `None` otherwise.
    pub reason: Option<&'static str>,
}

impl EventRow {
    /// The row of entry `id` of `stream`.
    pub fn of(stream: &str, id: &str, entry: &Entry<'_>) -> EventRow {
        let (transfer, status, reason, parties) = match entry {
            Entry::Transfer(event) => {
                let (status, reason) = match event.outcome {
                    Outcome::Completed => ("completed", None),
                    Outcome::Cancelled(reason) => ("cancelled", Some(reason.as_str())),
                };
                let parties =
                    (event.from, event.to, event.from_bank, event.to_bank, event.amount_cents);
                (event.id, status, reason, parties)
            }
            Entry::Step(step) => {
                let reason = match step.phase {
                    Phase::Rejected(reason) | Phase::Voided { reason, .. } => Some(reason.as_str()),
                    _ => None,
                };
                let parties = (step.from, step.to, step.from_bank, step.to_bank, step.amount_cents);
                (step.id, step.phase.as_str(), reason, parties)
            }
        };
        let (from, to, from_bank, to_bank, amount_cents) = parties;
        EventRow {
            id: id.to_string(),
            stream: stream.to_string(),
            transfer: transfer.to_string(),
            run: transfer.run,
            status,
            from: from.to_string(),
            to: to.to_string(),
            from_bank: from_bank.to_string(),
            to_bank: to_bank.to_string(),
            amount_cents,
            reason,
        }
    }
}

/// Which rows a page keeps; `None` keeps all.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Rows whose source or destination bank is this one.
    pub bank: Option<String>,
    pub run: Option<u64>,
    /// The `status` field: `completed`, `cancelled`, `debited`...
    pub status: Option<String>,
}

impl Filter {
    pub fn keeps(&self, row: &EventRow) -> bool {
        self.bank.as_ref().is_none_or(|b| *b == row.from_bank || *b == row.to_bank)
            && self.run.is_none_or(|r| r == row.run)
            && self.status.as_ref().is_none_or(|s| s == row.status)
    }
}

/// A stream entry id as `(ms, sequence)`, to order entries of several streams.
pub fn id_order(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::events::parse_entry;

    fn entry(fields: &[(&str, &str)]) -> EventRow {
        let bytes: Vec<(&[u8], &[u8])> =
            fields.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())).collect();
        EventRow::of("s", "5-1", &parse_entry(bytes).unwrap())
    }

    #[test]
    fn rows_carry_status_reason_and_run_and_filter_on_them() {
        let row = entry(&[
            ("id", "r2-w1-7"),
            ("status", "cancelled"),
            ("from", "A1"),
            ("to", "B1"),
            ("from_bank", "A"),
            ("to_bank", "B"),
            ("amount", "9"),
            ("from_balance", "3"),
            ("reason", "insufficient_funds"),
        ]);
        assert_eq!((row.run, row.status, row.reason), (2, "cancelled", Some("insufficient_funds")));
        assert!(Filter::default().keeps(&row));
        assert!(Filter { bank: Some("B".into()), ..Filter::default() }.keeps(&row));
        assert!(!Filter { bank: Some("C".into()), ..Filter::default() }.keeps(&row));
        assert!(!Filter { run: Some(1), ..Filter::default() }.keeps(&row));
        assert!(!Filter { status: Some("completed".into()), ..Filter::default() }.keeps(&row));
    }

    #[test]
    fn ids_order_by_time_then_sequence() {
        assert!(id_order("10-2") > id_order("10-1"));
        assert!(id_order("11-0") > id_order("10-9"));
        assert_eq!(id_order("x-1"), None);
    }
}
