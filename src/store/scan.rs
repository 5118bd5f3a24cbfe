//! `SCAN MATCH` on one server that holds data (the one server, or a master of a cluster, since a
//! cluster's `SCAN` sees one node's keys only), one bounded step at a time.

use anyhow::{Context, Result};

use crate::store::connection::{Connection, Server};

/// Keys asked for per `SCAN` step; the scan ends when the cursor returns to 0.
const SCAN_COUNT: usize = 1_000;
/// The most `SCAN` steps: far more than a keyspace of 2^32 keys needs at `SCAN_COUNT` a step.
pub const MAX_SCAN_STEPS: u64 = 1 << 32;

/// One `SCAN` step on `server` from `cursor`: the next cursor (0 at the end) and the keys found.
pub async fn step(
    conn: &mut Connection,
    server: &Server,
    pattern: &str,
    cursor: u64,
) -> Result<(u64, Vec<String>)> {
    let mut scan = redis::cmd("SCAN");
    scan.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(SCAN_COUNT);
    conn.query_on(server, &scan).await.with_context(|| format!("scanning {server} for {pattern}"))
}
