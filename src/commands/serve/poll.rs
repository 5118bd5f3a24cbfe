//! The dashboard's two readers of Redis, each a task on its own connection: one reads the
//! overview every refresh, the other follows the event streams from their beginning and counts
//! what they hold. Both survive a dead Redis: a failed read is shown, retried at the next tick,
//! and never stops the server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::hub::Hub;
use crate::commands::now_ms;
use crate::ledger::events::{Layout, parse_entry};
use crate::store::connection::Connection;
use crate::store::keys::Keys;
use crate::store::meta::{self, NotLoaded, OtherLayout};
use crate::store::overview::{self, Directory};
use crate::store::stream_reader::read_once;
use crate::store::target::Target;
use crate::store::xread_reply::Chunk;
use crate::view::live::Live;
use crate::view::overview::overview as build;

/// How long one read of Redis may take before it counts as failed.
const READ_TIMEOUT_MS: u64 = 5_000;
/// Entries per `XREAD`, and reads per stream per tick: a tick reads at most their product.
const FOLLOW_COUNT: usize = 5_000;
const FOLLOW_READS_PER_TICK: usize = 20;
/// How often the follower reads `P:meta` again (not at every tick: it reads fast when behind).
const META_RECHECK: Duration = Duration::from_secs(1);
/// The least pause before the follower tries again after a failed read.
const FOLLOW_RETRY_MS: u64 = 2_000;

/// How much of Redis's time the overview may take: a read of every account blocks the server
/// while it runs, so a large data set is read less often than `--refresh` asks.
const MAX_BUSY_SHARE: u32 = 10;

/// The pause before the next read: `refresh_ms`, or longer so that a read of `took` is at most
/// one part in [`MAX_BUSY_SHARE`] of the time.
fn pause(refresh_ms: u64, took: Duration) -> Duration {
    Duration::from_millis(refresh_ms).max(took * MAX_BUSY_SHARE)
}

/// Reads the overview every `refresh_ms` (or less often, see [`pause`]), for ever.
pub async fn overview_loop(hub: Arc<Hub>, target: Target, keys: Keys, refresh_ms: u64) {
    let mut conn: Option<Connection> = None;
    let mut directory: Option<Directory> = None;
    loop {
        let started = std::time::Instant::now();
        // Only a read that succeeded tells how long reading takes; a failed one is retried soon.
        let mut took = Duration::ZERO;
        let read = async {
            if conn.is_none() {
                conn = Some(Connection::open(&target).await?);
            }
            let conn = conn.as_mut().expect("just opened");
            overview::read(conn, &keys, &mut directory, now_ms).await
        };
        match tokio::time::timeout(Duration::from_millis(READ_TIMEOUT_MS), read).await {
            Ok(Ok(facts)) => {
                hub.read_ok(build(&facts), now_ms());
                took = started.elapsed();
            }
            Ok(Err(err))
                if err.downcast_ref::<NotLoaded>().is_some()
                    || err.downcast_ref::<OtherLayout>().is_some() =>
            {
                hub.read_empty(format!("{err:#}"), now_ms());
            }
            Ok(Err(err)) => hub.read_failed(format!("{err:#}"), now_ms()),
            Err(_) => {
                conn = None;
                hub.read_failed(
                    format!("Redis did not answer within {READ_TIMEOUT_MS} ms"),
                    now_ms(),
                );
            }
        }
        tokio::time::sleep(pause(refresh_ms, took)).await;
    }
}

/// Where the follower is: the data set it follows and its position in each stream.
struct Position {
    /// The data set: its file and when `init` loaded it (the same file loaded again, on the
    /// same server or on a cluster made anew, starts new streams, counted from zero).
    sha256: String,
    loaded_at_ms: u64,
    streams: Vec<String>,
    last_ids: Vec<String>,
    /// When `P:meta` was last read (a new `init` is noticed within [`META_RECHECK`]).
    checked: Instant,
}

/// Follows every event stream from its beginning, for ever, counting into the hub's `live`.
pub async fn follow_loop(hub: Arc<Hub>, target: Target, keys: Keys, tick_ms: u64) {
    let mut conn: Option<Connection> = None;
    let mut position: Option<Position> = None;
    loop {
        let step = async {
            if conn.is_none() {
                conn = Some(Connection::open(&target).await?);
            }
            let conn = conn.as_mut().expect("just opened");
            follow_tick(&hub, conn, &keys, &mut position).await
        };
        let read =
            match tokio::time::timeout(Duration::from_millis(READ_TIMEOUT_MS * 4), step).await {
                Ok(Ok(caught_up)) => Some(caught_up),
                Ok(Err(_)) => None,
                Err(_) => {
                    conn = None;
                    None
                }
            };
        let pause_ms = match read {
            // Behind: read on at once (each tick is bounded), letting the others run first.
            Some(false) => 1,
            Some(true) => tick_ms,
            // Redis down, nothing loaded, another layout: the overview says so; try again later.
            None => tick_ms.max(FOLLOW_RETRY_MS),
        };
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
    }
}

/// Reads what is new in each stream (bounded per tick); whether every stream was read to its end.
async fn follow_tick(
    hub: &Hub,
    conn: &mut Connection,
    keys: &Keys,
    position: &mut Option<Position>,
) -> Result<bool> {
    if position.as_ref().is_none_or(|p| p.checked.elapsed() >= META_RECHECK) {
        let meta = meta::read(conn, keys).await?;
        match position.as_mut() {
            Some(p) if p.sha256 == meta.sha256 && p.loaded_at_ms == meta.loaded_at_ms => {
                p.checked = Instant::now();
            }
            _ => {
                // A new data set (another `init`, even of the same file): its streams are counted
                // from their beginning.
                let streams: Vec<String> = match meta.layout {
                    Layout::Single => vec![keys.events()],
                    Layout::Sharded => meta.banks.iter().map(|b| keys.events_of(b)).collect(),
                };
                let last_ids = vec!["0-0".to_string(); streams.len()];
                let (sha256, loaded_at_ms) = (meta.sha256.clone(), meta.loaded_at_ms);
                let checked = Instant::now();
                *position = Some(Position { sha256, loaded_at_ms, streams, last_ids, checked });
                hub.update(|state| state.live = Live::default());
            }
        }
    }
    let position = position.as_mut().expect("just set");
    let mut chunk = Chunk::default();
    let mut caught_up = true;
    for (stream, last_id) in position.streams.iter().zip(position.last_ids.iter_mut()) {
        for read in 0..FOLLOW_READS_PER_TICK {
            read_once(conn, stream, last_id, FOLLOW_COUNT, &mut chunk)
                .await
                .with_context(|| format!("following {stream}"))?;
            if chunk.is_empty() {
                break;
            }
            hub.update(|state| {
                for (id, fields) in chunk.iter() {
                    state.live.observe(id, parse_entry(fields).ok().as_ref());
                }
            });
            chunk.last_id().expect("not empty").clone_into(last_id);
            if chunk.len() < FOLLOW_COUNT {
                break;
            }
            if read + 1 == FOLLOW_READS_PER_TICK {
                caught_up = false;
            }
        }
    }
    hub.update(|state| state.live.caught_up = caught_up);
    Ok(caught_up)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_read_spaces_the_next_one() {
        assert_eq!(pause(1_000, Duration::from_millis(20)), Duration::from_millis(1_000));
        assert_eq!(pause(1_000, Duration::from_millis(300)), Duration::from_millis(3_000));
    }
}
