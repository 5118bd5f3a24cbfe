//! The pure core: what money, accounts, banks, transfers and their events are, how the events
//! replay over the initial accounts, and how what Redis holds is checked against it.
//!
//! Events come in one of two layouts ([`events::Layout`]): one stream on a single server, where a
//! transfer is one atomic step, or one stream per bank on Redis Cluster, where a transfer between
//! banks is a debit, a credit (or rejection) and a settlement (or refund) on two banks' streams.
//! Both replay through the same [`replay::Ledger`] and are held to the same checks, so a cluster
//! run is verified by the rules that verify a single server's.
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
pub mod seed_layout;
pub mod verify;
