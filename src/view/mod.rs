//! What the views show, as plain data: `status`'s tables, the dashboard's JSON, the HTML report
//! and `/metrics` are all drawn from the models here.
//!
//! Why a layer of its own: the store reads [`facts::Facts`] (what Redis holds now, as raw as it
//! came) and [`overview::overview`] turns them into what a person needs to see: whether money is
//! conserved, each bank's position, the interbank matrix, runs, streams, consumers and the last
//! verdict. Every view is a pure function of those models, so each is unit-tested without a
//! server, and the terminal, the web page, the report and Prometheus can never disagree.
//!
//! May import: `std`, data crates (`serde`) and [`crate::ledger`]. Never `redis`, `tokio`, `clap`
//! or `axum` (`tests/layers.rs` enforces it).

pub mod events;
pub mod facts;
pub mod format;
pub mod html;
pub mod live;
pub mod metrics;
pub mod overview;
pub mod report;
pub mod timeline;
pub mod verdict;
