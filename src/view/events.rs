//! The latest events as the dashboard lists them: one row per stream entry, filtered by bank, run
//! and status, and the order of entry ids that pages are cut by.

use serde::Serialize;

use crate::ledger::events::{Batch, Entry, Outcome, Phase, Settlement, Step, TransferId};

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
    /// The debits or credits of one call with several banks on the other side: each of them, in
    /// order of first appearance (that side's bank is then empty); empty otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_banks: Vec<String>,
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
            Entry::Settlement(settlement) => {
                return EventRow::of_settlement(stream, id, settlement);
            }
            Entry::Batch(batch) => return EventRow::of_batch(stream, id, batch),
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
            other_banks: Vec::new(),
        }
    }
}

impl EventRow {
    /// A settlement's row: its first transfer and how many more, their source bank and sum. Its
    /// run is the first transfer's (a broker settles its own run's transfers).
    fn of_settlement(stream: &str, id: &str, settlement: &Settlement<'_>) -> EventRow {
        let first = settlement.ids[0];
        EventRow {
            id: id.to_string(),
            stream: stream.to_string(),
            transfer: first_and_more(first, settlement.ids.len()),
            run: first.run,
            status: "settled",
            from: String::new(),
            to: String::new(),
            from_bank: settlement.from_bank.to_string(),
            to_bank: String::new(),
            amount_cents: settlement.amount_cents,
            reason: None,
            other_banks: Vec::new(),
        }
    }
}

impl EventRow {
    /// The row of the debits or credits of one call: its first transfer and how many more, their
    /// sum, the stream's bank, and the accounts and the other bank when they are the same for
    /// all, else the other banks in `other_banks`. Its run is the first transfer's.
    fn of_batch(stream: &str, id: &str, batch: &Batch<'_>) -> EventRow {
        let first = &batch.steps[0];
        let shared = |part: for<'s> fn(&'s Step<'_>) -> &'s str| {
            let value = part(first);
            let same = batch.steps.iter().all(|step| part(step) == value);
            if same { value.to_string() } else { String::new() }
        };
        let debits = matches!(first.phase, Phase::Debited { .. });
        let mut other_banks: Vec<String> = Vec::new();
        for step in &batch.steps {
            let other = if debits { step.to_bank } else { step.from_bank };
            if !other_banks.iter().any(|bank| bank == other) {
                other_banks.push(other.to_string());
            }
        }
        if other_banks.len() == 1 {
            other_banks.clear();
        }
        EventRow {
            id: id.to_string(),
            stream: stream.to_string(),
            transfer: first_and_more(first.id, batch.steps.len()),
            run: first.id.run,
            status: first.phase.as_str(),
            from: shared(|step| step.from),
            to: shared(|step| step.to),
            from_bank: shared(|step| step.from_bank),
            to_bank: shared(|step| step.to_bank),
            amount_cents: batch.steps.iter().map(|step| step.amount_cents).sum(),
            reason: None,
            other_banks,
        }
    }
}

/// `first`, or `first and N more` when an entry names `count` transfers.
fn first_and_more(first: TransferId, count: usize) -> String {
    match count {
        1 => first.to_string(),
        _ => format!("{first} and {} more", count - 1),
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
        self.bank
            .as_ref()
            .is_none_or(|b| *b == row.from_bank || *b == row.to_bank || row.other_banks.contains(b))
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
    fn a_settlement_is_one_row_naming_its_first_transfer() {
        let row = entry(&[
            ("status", "settled"),
            ("from_bank", "A"),
            ("amount", "30"),
            ("ids", "r3-w1-7 r3-w2-1 r4-w1-1"),
        ]);
        assert_eq!(
            (row.transfer.as_str(), row.run, row.status),
            ("r3-w1-7 and 2 more", 3, "settled")
        );
        assert_eq!((row.from_bank.as_str(), row.amount_cents), ("A", 30));
        assert!(Filter { bank: Some("A".into()), ..Filter::default() }.keeps(&row));
    }

    #[test]
    fn the_debits_or_credits_of_a_call_are_one_row_found_by_each_of_its_banks() {
        let credits = "r3-w1-7 A1 B1 10 110 A\nr3-w2-1 C1 B2 20 220 C\nr3-w2-2 A2 B2 5 225 A";
        let row = entry(&[("status", "credited"), ("to_bank", "B"), ("transfers", credits)]);
        assert_eq!(
            (row.transfer.as_str(), row.run, row.status, row.amount_cents),
            ("r3-w1-7 and 2 more", 3, "credited", 35)
        );
        assert_eq!((row.from.as_str(), row.to.as_str(), row.from_bank.as_str()), ("", "", ""));
        assert_eq!(
            (row.to_bank.as_str(), &row.other_banks[..]),
            ("B", &["A".to_string(), "C".to_string()][..])
        );
        for bank in ["A", "B", "C"] {
            assert!(Filter { bank: Some(bank.into()), ..Filter::default() }.keeps(&row), "{bank}");
        }
        assert!(!Filter { bank: Some("D".into()), ..Filter::default() }.keeps(&row));
        let debits = "r3-w1-7 A1 B1 10 90 B\nr3-w1-8 A1 B2 5 85 B";
        let row = entry(&[("status", "debited"), ("from_bank", "A"), ("transfers", debits)]);
        assert_eq!((row.status, row.amount_cents, row.from.as_str()), ("debited", 15, "A1"));
        assert_eq!((row.from_bank.as_str(), row.to_bank.as_str()), ("A", "B"));
        assert!(row.other_banks.is_empty());
    }

    #[test]
    fn ids_order_by_time_then_sequence() {
        assert!(id_order("10-2") > id_order("10-1"));
        assert!(id_order("11-0") > id_order("10-9"));
        assert_eq!(id_order("x-1"), None);
    }
}
