//! `/api/events`: the latest events, newest first, filtered, a page at a time. On a cluster the
//! banks' streams are merged by entry id. The cursor holds the position in each stream, so no
//! entry is skipped or shown twice from one page to the next. Bounded: a page scans at most
//! [`MAX_SCANNED`] entries, whatever the filters.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::ledger::events::{Layout, parse_entry};
use crate::store::connection::Connection;
use crate::store::keys::Keys;
use crate::store::{meta, recent};
use crate::view::events::{EventRow, Filter, id_order};

/// The most rows per page, and the most entries one page may scan.
pub const MAX_LIMIT: usize = 500;
pub const MAX_SCANNED: usize = 5_000;
/// Entries read per `XREVRANGE`.
const READ_COUNT: usize = 200;

/// The query string.
#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    pub limit: Option<usize>,
    pub before: Option<String>,
    pub bank: Option<String>,
    pub run: Option<String>,
    pub outcome: Option<String>,
}

/// One page.
#[derive(Debug, Serialize)]
pub struct Page {
    pub events: Vec<EventRow>,
    /// The cursor of the next (older) page; `None` at the start of every stream.
    pub next: Option<String>,
    pub scanned: usize,
}

/// Why a page could not be made.
pub enum PageError {
    /// The request is wrong (its message says how).
    Bad(String),
    Redis(anyhow::Error),
}

/// One stream's read-ahead and position.
struct Source {
    key: String,
    /// The id of the last entry taken; `None` before the first.
    position: Option<String>,
    buffer: VecDeque<(String, recent::Fields)>,
    exhausted: bool,
}

/// The page `query` asks for.
pub async fn page(
    conn: &mut Connection,
    keys: &Keys,
    query: &EventsQuery,
) -> Result<Page, PageError> {
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_LIMIT);
    let filter = filter(query)?;
    let meta = meta::read(conn, keys).await.map_err(PageError::Redis)?;
    let streams: Vec<String> = match meta.layout {
        Layout::Single => vec![keys.events()],
        Layout::Sharded => meta.banks.iter().map(|b| keys.events_of(b)).collect(),
    };
    let mut sources = sources(streams, query.before.as_deref())?;
    let mut events = Vec::with_capacity(limit);
    let mut scanned = 0;
    while events.len() < limit && scanned < MAX_SCANNED {
        let Some((index, id, fields)) = next_entry(conn, &mut sources).await? else { break };
        scanned += 1;
        let Ok(entry) = parse_entry(fields.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
        else {
            continue;
        };
        let row = EventRow::of(&sources[index].key, &id, &entry);
        if filter.keeps(&row) {
            events.push(row);
        }
    }
    refill(conn, &mut sources).await?;
    let done = sources.iter().all(|s| s.exhausted && s.buffer.is_empty());
    let next = (!done).then(|| cursor(&sources));
    Ok(Page { events, next, scanned })
}

fn filter(query: &EventsQuery) -> Result<Filter, PageError> {
    let run = match query.run.as_deref().filter(|r| !r.is_empty()) {
        None => None,
        Some(text) => Some(
            text.parse()
                .map_err(|_| PageError::Bad(format!("run={text:?} is not a run number")))?,
        ),
    };
    let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    Ok(Filter { bank: nonempty(&query.bank), run, status: nonempty(&query.outcome) })
}

/// The streams, positioned by the cursor (`id|id|...`, one per stream, `-` for none yet).
fn sources(streams: Vec<String>, before: Option<&str>) -> Result<Vec<Source>, PageError> {
    let positions: Vec<Option<String>> = match before.filter(|b| !b.is_empty()) {
        None => vec![None; streams.len()],
        Some(cursor) => {
            let parts: Vec<&str> = cursor.split('|').collect();
            let valid = parts.len() == streams.len()
                && parts.iter().all(|p| *p == "-" || id_order(p).is_some());
            if !valid {
                return Err(PageError::Bad(format!(
                    "before={cursor:?} is not a cursor of this data set: start from the newest page"
                )));
            }
            parts.into_iter().map(|p| (p != "-").then(|| p.to_string())).collect()
        }
    };
    Ok(streams
        .into_iter()
        .zip(positions)
        .map(|(key, position)| Source { key, position, buffer: VecDeque::new(), exhausted: false })
        .collect())
}

fn cursor(sources: &[Source]) -> String {
    let parts: Vec<&str> = sources.iter().map(|s| s.position.as_deref().unwrap_or("-")).collect();
    parts.join("|")
}

/// Reads ahead in each stream whose read-ahead is used up, so a stream at its start is known as
/// such (and the page's `next` is `None`) even when the page ended exactly there.
async fn refill(conn: &mut Connection, sources: &mut [Source]) -> Result<(), PageError> {
    for source in sources.iter_mut().filter(|s| s.buffer.is_empty() && !s.exhausted) {
        let read = recent::before(conn, &source.key, source.position.as_deref(), READ_COUNT)
            .await
            .map_err(PageError::Redis)?;
        source.exhausted = read.len() < READ_COUNT;
        source.buffer.extend(read);
    }
    Ok(())
}

/// The newest entry not yet taken among all streams, and which stream it is from.
async fn next_entry(
    conn: &mut Connection,
    sources: &mut [Source],
) -> Result<Option<(usize, String, recent::Fields)>, PageError> {
    refill(conn, sources).await?;
    let newest = sources
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.buffer.front().map(|(id, _)| (i, id_order(id))))
        .max_by_key(|(_, order)| *order)
        .map(|(i, _)| i);
    let Some(index) = newest else { return Ok(None) };
    let (id, fields) = sources[index].buffer.pop_front().expect("has a front");
    sources[index].position = Some(id.clone());
    Ok(Some((index, id, fields)))
}
