//! `interbank`: an interbank transfer broker on Redis that proves it loses and doubles nothing.
//!
//! The library holds all the logic; the `interbank` binary only parses flags and calls it.

pub mod accounts;
pub mod banks;
pub mod bench;
pub mod broker;
pub mod checkpoint;
pub mod connection;
pub mod consume;
pub mod events;
pub mod generate;
pub mod iban;
pub mod init;
pub mod keys;
pub mod money;
pub mod replay;
pub mod runs;
pub mod script;
pub mod server;
pub mod stream_reader;
pub mod verify;
