//! `interbank`: an interbank transfer broker on Redis that proves it loses and doubles nothing.
//!
//! The library holds all the logic; the `interbank` binary (`src/main.rs` and `src/cli/`) only
//! parses flags, calls it and renders what it returns. Three layers, each a folder, each allowed
//! to import only the layers above it in this list:
//!
//! - [`ledger`]: the pure core. Money, IBANs, banks, the accounts file, events, the replay and the
//!   verification. No Redis, no tokio, no clap: everything in it is a plain function of its
//!   inputs, tested without a server.
//! - [`store`]: the only code that talks to Redis. Connections and URLs, the key schema, the
//!   transfer script, the stream reader, run records, checkpoints, meta and snapshots, behind one
//!   [`store::Store`] type (the seam where a second backend, Redis Cluster, becomes a variant).
//! - [`commands`]: one module per command (`gen`, `init`, `broker`, `consume`, `bench`), each
//!   orchestrating the ledger and the store and returning a plain result for the CLI to render.
//!
//! `tests/layers.rs` checks these rules on the source itself.

pub mod commands;
pub mod ledger;
pub mod store;
