//! `P:meta`: what `init` loaded (the file's SHA-256, the number of accounts, the total, the bank
//! list), and whether it is `loading` or `ready`. The broker and `consume` read it first and
//! refuse a set that is missing, half-loaded or corrupted, with what to do about it.

use std::collections::HashMap;

use anyhow::{Context, Result, bail, ensure};
use redis::aio::ConnectionLike;

use crate::ledger::accounts::{AccountsFile, MAX_ACCOUNTS, MAX_BANKS};
use crate::ledger::events::Layout;
use crate::store::keys::{KeyLayout, Keys, SCHEMA_VERSION};
use crate::store::retry::query_retrying;

/// No data set is loaded under the prefix (`P:meta` is missing): Redis answered, there is
/// nothing to read yet. A type of its own, so a view can say "empty" rather than "down".
#[derive(Debug, thiserror::Error)]
#[error(
    "no accounts are loaded under the prefix {prefix:?} ({meta} is missing): run `interbank init` first"
)]
pub struct NotLoaded {
    pub prefix: String,
    pub meta: String,
}

/// The data set uses the other key layout than the command was asked for. A type of its own, so
/// a view can say what is there rather than "down".
#[derive(Debug, thiserror::Error)]
#[error("{}", describe_other_layout(prefix, *found))]
pub struct OtherLayout {
    pub prefix: String,
    pub found: KeyLayout,
}

fn describe_other_layout(prefix: &str, found: KeyLayout) -> String {
    match found {
        KeyLayout::Seed => format!(
            "the data set under {prefix:?} was loaded with `init --layout seed` (the Go demo's keys): pass --layout seed to broker and consume (status and serve show this tool's own layout only)"
        ),
        KeyLayout::Ours => format!(
            "the data set under {prefix:?} uses this tool's keys, not the Go demo's: run `interbank init --layout seed` first, or drop --layout seed"
        ),
    }
}

/// What `init` recorded, as the broker and `consume` need it.
#[derive(Debug, Clone)]
pub struct Meta {
    pub sha256: String,
    /// At most [`MAX_ACCOUNTS`]: a larger number is refused as corrupted.
    pub accounts: usize,
    pub total_cents: i64,
    pub banks: Vec<String>,
    /// How the data set keeps its events: one stream (a single server) or one per bank (a Redis
    /// Cluster). Sets loaded before the field existed are single.
    pub layout: Layout,
    /// The accounts file as `init` was given it, and when the load finished (ms since the epoch;
    /// 0 if not recorded).
    pub file: String,
    pub loaded_at_ms: u64,
    /// This tool's keys, or the Go demo's (`init --layout seed`).
    pub key_layout: KeyLayout,
}

/// Marks the set as `loading` and records what is being loaded (first write of `init`).
pub async fn write_loading(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    file: &AccountsFile,
    layout: Layout,
    key_layout: KeyLayout,
) -> Result<()> {
    let meta = keys.meta();
    redis::cmd("HSET")
        .arg(&meta)
        .arg(&[
            ("status", "loading".to_string()),
            ("schema", SCHEMA_VERSION.to_string()),
            ("file", file.path.display().to_string()),
            ("sha256", file.sha256.clone()),
            ("accounts", file.accounts.len().to_string()),
            ("banks", file.banks.len().to_string()),
            ("total_cents", file.total_cents.to_string()),
            ("layout", layout.as_str().to_string()),
            ("keys", key_layout.as_str().to_string()),
        ])
        .query_async::<()>(conn)
        .await
        .with_context(|| format!("writing {meta}"))
}

/// Marks the set as `ready` (last write of `init`).
pub async fn write_ready(conn: &mut impl ConnectionLike, keys: &Keys, now_ms: u64) -> Result<()> {
    let meta = keys.meta();
    redis::cmd("HSET")
        .arg(&meta)
        .arg(&[("status", "ready".to_string()), ("loaded_at_ms", now_ms.to_string())])
        .query_async::<()>(conn)
        .await
        .with_context(|| format!("writing {meta}"))
}

/// Reads `P:meta` and the bank list, refusing a set that is missing, not fully loaded, whose
/// figures are not what `init` writes, or that uses the Go demo's keys (`--layout seed`).
pub async fn read(conn: &mut impl ConnectionLike, keys: &Keys) -> Result<Meta> {
    read_layout(conn, keys, KeyLayout::Ours).await
}

/// [`read`], for a set whose keys must be `expected`: a set of the other layout is refused with
/// the flag to pass.
pub async fn read_layout(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    expected: KeyLayout,
) -> Result<Meta> {
    let meta = read_any(conn, keys).await?;
    if meta.key_layout == expected {
        return Ok(meta);
    }
    Err(OtherLayout { prefix: keys.prefix().to_string(), found: meta.key_layout }.into())
}

async fn read_any(conn: &mut impl ConnectionLike, keys: &Keys) -> Result<Meta> {
    let fields: HashMap<String, String> =
        query_retrying(conn, redis::cmd("HGETALL").arg(keys.meta()))
            .await
            .with_context(|| format!("reading {}", keys.meta()))?;
    let banks: Vec<String> =
        query_retrying(conn, redis::cmd("LRANGE").arg(keys.banks()).arg(0).arg(-1))
            .await
            .with_context(|| format!("reading {}", keys.banks()))?;
    parse(keys, &fields, banks)
}

/// The meta fields as read, checked.
fn parse(keys: &Keys, fields: &HashMap<String, String>, banks: Vec<String>) -> Result<Meta> {
    let meta = keys.meta();
    let get = |name: &str| fields.get(name).map_or("", String::as_str);
    match get("status") {
        "ready" => {}
        "" => return Err(NotLoaded { prefix: keys.prefix().to_string(), meta }.into()),
        "loading" => bail!(
            "{meta} says an `interbank init` is loading or was interrupted: run `interbank init` again"
        ),
        other => bail!("{meta} has status {other:?}; run `interbank init` again"),
    }
    let schema = get("schema");
    ensure!(
        schema == SCHEMA_VERSION.to_string(),
        "{meta} has schema {schema:?}, this tool writes {SCHEMA_VERSION}: run `interbank init` again"
    );
    let corrupt = |name: &str, expected: String| {
        anyhow::anyhow!(
            "{meta} field {name} is {:?}, not {expected}: the set is corrupted; run `interbank init` again",
            get(name)
        )
    };
    let accounts: usize =
        get("accounts").parse().ok().filter(|n| (2..=MAX_ACCOUNTS).contains(n)).ok_or_else(
            || corrupt("accounts", format!("a number of accounts from 2 to {MAX_ACCOUNTS}")),
        )?;
    let total_cents: i64 = get("total_cents")
        .parse()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| corrupt("total_cents", "a number of cents from 0".to_string()))?;
    ensure!(
        !banks.is_empty() && banks.len() <= MAX_BANKS,
        "{} lists {} banks, not 1 to {MAX_BANKS}: the set is corrupted; run `interbank init` again",
        keys.banks(),
        banks.len()
    );
    let layout = match get("layout") {
        "" => Layout::Single,
        text => {
            Layout::parse(text).ok_or_else(|| corrupt("layout", "single or sharded".to_string()))?
        }
    };
    Ok(Meta {
        sha256: get("sha256").to_string(),
        accounts,
        total_cents,
        banks,
        layout,
        file: get("file").to_string(),
        loaded_at_ms: get("loaded_at_ms").parse().unwrap_or(0),
        key_layout: match get("keys") {
            "" => KeyLayout::Ours,
            text => {
                KeyLayout::parse(text).ok_or_else(|| corrupt("keys", "ours or seed".to_string()))?
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn ready(accounts: &str, total_cents: &str) -> HashMap<String, String> {
        let schema = SCHEMA_VERSION.to_string();
        fields(&[
            ("status", "ready"),
            ("schema", &schema),
            ("sha256", "ab"),
            ("accounts", accounts),
            ("total_cents", total_cents),
        ])
    }

    #[test]
    fn a_ready_set_is_read() {
        let keys = Keys::new("p").unwrap();
        let meta = parse(&keys, &ready("100", "5000"), vec!["A".into()]).unwrap();
        assert_eq!((meta.accounts, meta.total_cents, meta.banks.len()), (100, 5000, 1));
    }

    #[test]
    fn corrupted_figures_are_named_not_trusted() {
        let keys = Keys::new("p").unwrap();
        let banks = || vec!["A".to_string()];
        for (accounts, total, named) in [
            ("-1", "5", "p:meta field accounts is \"-1\""),
            ("18446744073709551615", "5", "field accounts"),
            ("x", "5", "field accounts"),
            ("1", "5", "field accounts"),
            ("10", "-5", "field total_cents is \"-5\""),
        ] {
            let err = parse(&keys, &ready(accounts, total), banks()).unwrap_err().to_string();
            assert!(err.contains(named) && err.contains("run `interbank init` again"), "{err}");
        }
        let err = parse(&keys, &ready("10", "5"), Vec::new()).unwrap_err().to_string();
        assert!(err.contains("p:banks lists 0 banks"), "{err}");
        let err = parse(&keys, &fields(&[("status", "loading")]), banks()).unwrap_err();
        assert!(err.to_string().contains("loading or was interrupted"), "{err}");
        let err = parse(&keys, &HashMap::new(), banks()).unwrap_err();
        assert!(err.to_string().contains("run `interbank init` first"), "{err}");
    }
}
