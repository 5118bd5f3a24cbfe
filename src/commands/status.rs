//! `interbank status`: the data set as it is now, for a person or a script: whether money is
//! conserved, each bank's position, the interbank matrix, runs, streams, consumers and the last
//! verdict. Read-only; the CLI draws the tables or prints JSON.

use anyhow::Result;

use crate::commands::now_ms;
use crate::store::connection::Connection;
use crate::store::keys::Keys;
use crate::store::overview;
use crate::store::target::Target;
use crate::view::overview::{Overview, overview as build};

/// Reads the data set under `keys` at `target` and builds what `status` shows.
pub async fn status(target: &Target, keys: &Keys) -> Result<Overview> {
    let mut conn = Connection::open(target).await?;
    let mut directory = None;
    let facts = overview::read(&mut conn, keys, &mut directory, now_ms).await?;
    Ok(build(&facts))
}
