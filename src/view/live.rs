//! What the dashboard counts as it follows the event streams: transfers completed and cancelled,
//! the other steps between banks, and the timeline of decisions by the time Redis appended them.
//! Exact: every entry is counted once, whatever the reader's pace (it may lag behind a fast
//! broker, and says so with `caught_up`).

use serde::Serialize;

use crate::ledger::events::Entry;
use crate::view::facts::id_ms;
use crate::view::timeline::{Timeline, decisions};

/// Counts since the server started following the streams from their beginning.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Live {
    /// Completed in a bank, or credited across banks.
    pub completed: u64,
    /// Cancelled, or rejected across banks.
    pub cancelled: u64,
    /// The other steps between banks: a debit or a void each, a settlement of many as one.
    pub steps: u64,
    /// Entries that are not events of this tool (counted, not shown).
    pub malformed: u64,
    /// Whether the last read reached the end of every stream.
    pub caught_up: bool,
    pub timeline: Timeline,
}

impl Live {
    /// Counts one entry read from a stream (`None`: it did not parse).
    pub fn observe(&mut self, id: &str, entry: Option<&Entry<'_>>) {
        let Some(entry) = entry else {
            self.malformed += 1;
            return;
        };
        match decisions(entry) {
            Some(decided) => {
                self.completed += decided.completed;
                self.cancelled += decided.cancelled;
                if let Some(at_ms) = id_ms(id) {
                    self.timeline.add(at_ms, decided);
                }
            }
            None => {
                let debits = match entry {
                    Entry::Batch(batch) => batch.steps.len(),
                    _ => 1,
                };
                self.steps += u64::try_from(debits).expect("a usize fits in a u64");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::events::parse_entry;

    fn observe(live: &mut Live, id: &str, fields: &[(&str, &str)]) {
        let pairs = fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()));
        live.observe(id, parse_entry(pairs).ok().as_ref());
    }

    #[test]
    fn each_transfer_of_an_entry_of_many_counts_once() {
        let mut live = Live::default();
        let debits = "r1-w1-1 A1 B1 10 90 B\nr1-w1-2 A1 B2 5 85 B";
        observe(
            &mut live,
            "1000-0",
            &[("status", "debited"), ("from_bank", "A"), ("transfers", debits)],
        );
        let credits = "r1-w1-1 A1 B1 10 10 A\nr1-w1-2 A1 B2 5 5 A";
        observe(
            &mut live,
            "1000-1",
            &[("status", "credited"), ("to_bank", "B"), ("transfers", credits)],
        );
        let ids = [
            ("status", "settled"),
            ("from_bank", "A"),
            ("amount", "15"),
            ("ids", "r1-w1-1 r1-w1-2"),
        ];
        observe(&mut live, "2000-0", &ids);
        observe(&mut live, "2000-1", &[("status", "nonsense")]);
        assert_eq!((live.completed, live.cancelled, live.steps, live.malformed), (2, 0, 3, 1));
        assert_eq!(live.timeline.total().completed, 2);
    }
}
