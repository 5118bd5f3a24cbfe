//! `interbank`: an interbank transfer broker on Redis that proves it loses and doubles nothing.
//!
//! The library holds all the logic; the `interbank` binary (`src/main.rs` and `src/cli/`) only
//! parses flags, calls it and renders what it returns. Four layers, each a folder, each allowed
//! to import only the layers above it in this list:
//!
//! - [`ledger`]: the pure core. Money, IBANs, banks, the accounts file, events, the replay and the
//!   verification. No Redis, no tokio, no clap: everything in it is a plain function of its
//!   inputs, tested without a server.
//! - [`view`]: what the views show (`status`, the dashboard, the HTML report, `/metrics`), as
//!   pure functions from what Redis holds to what a person sees. Imports only the ledger.
//! - [`store`]: the only code that talks to Redis. Connections and URLs, the key schema, the
//!   transfer script, the stream reader, run records, checkpoints, meta and snapshots, behind one
//!   [`store::connection::Connection`] type (the seam where a second backend, Redis Cluster, is a
//!   variant).
//! - [`commands`]: one module per command (`gen`, `init`, `broker`, `consume`, `bench`,
//!   `recover` with its trimming of the inboxes, `status`, `serve`), each orchestrating the ledger and the store and returning a
//!   plain result for the CLI to render (`serve` answers HTTP requests itself).
//!
//! `tests/layers.rs` checks these rules on the source itself.

pub mod commands;
pub mod ledger;
pub mod store;
pub mod view;
