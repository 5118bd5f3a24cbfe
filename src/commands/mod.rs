//! The commands, one module each: `gen` ([`generate`]), [`init`], [`broker`], [`consume`],
//! [`bench`], [`recover`] (with [`trim`], which keeps the inboxes small) and [`status`]. Each takes a plain config, orchestrates the ledger and the store, and returns a plain
//! result (a summary, a report) that the CLI renders; none of them parses flags or prints it.
//!
//! May import: [`crate::ledger`], [`crate::view`], [`crate::store`], tokio. Never clap.

pub mod bench;
pub mod broker;
pub mod consume;
pub mod generate;
pub mod init;
pub mod recover;
pub mod seed_audit;
pub mod serve;
pub mod status;
pub mod trim;

use std::time::{SystemTime, UNIX_EPOCH};

/// How far a long command has come, and what its user should hear of on the way, for whoever
/// shows it: the CLI draws a progress bar and prints the notes; [`Silent`] shows nothing. Called
/// from the command's own tasks, never from a worker's hot path.
pub trait Progress: Send + Sync {
    /// Items done so far (transfers decided, events replayed).
    fn update(&self, _done: u64) {}
    /// The command no longer reports: clear the display.
    fn finish(&self) {}
    /// Something to tell now, not only in the result: a checkpoint resumed, a warning.
    fn note(&self, _text: &str) {}
}

/// Progress that nobody watches (`bench`'s own runs, tests).
pub struct Silent;

impl Progress for Silent {}

/// Milliseconds since the Unix epoch (0 on a clock set before 1970), as run records store time.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
