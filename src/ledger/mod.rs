//! The pure core: what money, accounts, banks, transfers and their events are, how the stream of
//! events replays over the initial accounts, and how what Redis holds is checked against it.
//!
//! May import: `std` and data crates (`serde`, `csv`, `sha2`). Never `redis`, `tokio`, `clap` or
//! another layer of this crate (`tests/layers.rs` enforces it), so every rule about money is a
//! plain function with unit tests, and the same ledger verifies any backend's events.

pub mod accounts;
pub mod banks;
pub mod events;
pub mod iban;
pub mod money;
pub mod replay;
pub mod runs;
pub mod verify;
