//! The newest entries of an event stream, a page at a time going back (`XREVRANGE`), for the
//! dashboard's list of events. Read-only.

use anyhow::{Context, Result, bail};
use redis::Value;
use redis::aio::ConnectionLike;

use crate::store::retry::query_retrying;

/// An entry: its id and its fields.
pub type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// Up to `count` entries of `stream` older than `before` (all the newest when `None`), newest
/// first.
pub async fn before(
    conn: &mut impl ConnectionLike,
    stream: &str,
    before: Option<&str>,
    count: usize,
) -> Result<Vec<(String, Fields)>> {
    let end = before.map_or_else(|| "+".to_string(), |id| format!("({id}"));
    let mut cmd = redis::cmd("XREVRANGE");
    cmd.arg(stream).arg(end).arg("-").arg("COUNT").arg(count);
    let reply: Value =
        query_retrying(conn, &cmd).await.with_context(|| format!("reading {stream}"))?;
    let Value::Array(entries) = reply else { bail!("XREVRANGE {stream} answered {reply:?}") };
    entries.into_iter().map(|entry| parse(stream, entry)).collect()
}

fn parse(stream: &str, entry: Value) -> Result<(String, Fields)> {
    let Value::Array(mut parts) = entry else { bail!("XREVRANGE {stream}: an entry {entry:?}") };
    let (Some(Value::Array(flat)), Some(Value::BulkString(id))) = (parts.pop(), parts.pop()) else {
        bail!("XREVRANGE {stream}: an entry without an id and fields");
    };
    let mut fields = Vec::with_capacity(flat.len() / 2);
    let mut flat = flat.into_iter();
    while let (Some(Value::BulkString(k)), Some(Value::BulkString(v))) = (flat.next(), flat.next())
    {
        fields.push((k, v));
    }
    Ok((String::from_utf8_lossy(&id).into_owned(), fields))
}
