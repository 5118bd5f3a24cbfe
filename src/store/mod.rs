//! The Redis store: the only code that talks to Redis. It turns what the commands need (load a data
//! set, apply a batch of transfers, record a run, read the stream, take a snapshot) into Redis
//! commands and scripts, and Redis's replies and errors into the ledger's types and [`StoreError`].
//!
//! May import: [`crate::ledger`], [`crate::view`]'s models, `redis`, `tokio`. Never [`crate::commands`] or clap.

pub mod checkpoint;
pub mod connection;
pub mod cross_bank;
pub mod dataset;
pub mod error;
pub mod keys;
pub mod meta;
pub mod overview;
pub mod private_redis;
pub mod recent;
pub mod retry;
pub mod runs;
pub mod scan;
pub mod script;
pub mod seed_protocol;
pub mod seed_state;
pub mod server_info;
pub mod snapshot;
pub mod stream_reader;
pub mod target;
pub mod verdict;
pub mod xread_reply;
