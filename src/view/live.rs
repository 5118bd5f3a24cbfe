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
    /// The other steps between banks: debited, settled, voided.
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
            None => self.steps += 1,
        }
    }
}
