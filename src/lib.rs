//! `interbank`: an interbank transfer broker on Redis that proves it loses and doubles nothing.
//!
//! The library holds all the logic; the `interbank` binary only parses flags and calls it.

pub mod accounts;
pub mod banks;
pub mod generate;
pub mod iban;
pub mod keys;
pub mod money;
pub mod connection;
pub mod events;
pub mod script;
pub mod init;
pub mod runs;
pub mod broker;
pub mod replay;
pub mod verify;
pub mod consume;
