//! The seed's two unsafe ways of making a transfer, as Redis commands: `watch` (the seed's own
//! protocol) and `naive`. Kept to be compared with the transfer script and to show what `consume`
//! catches: each is several round trips, so a crash or a dropped connection between them leaves
//! half a transfer, and `naive` lets two clients spend the same money.

use redis::AsyncCommands;

use crate::ledger::events::{self, CancelReason, Event, Outcome, TransferId};
use crate::store::connection::Connection;
use crate::store::keys::Keys;

/// How many times `watch` starts a transfer over after a conflict before giving up on it.
pub const WATCH_CONFLICT_LIMIT: u32 = 10_000;

/// One transfer to make: the two accounts, their banks, the amount.
pub struct Planned<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub from_bank: &'a str,
    pub to_bank: &'a str,
    pub amount_cents: i64,
}

/// What transfers cost: commands sent, WATCH conflicts, events appended.
#[derive(Debug, Default)]
pub struct Tally {
    pub calls: u64,
    pub conflicts: u64,
    pub events: u64,
}

/// The seed's protocol: WATCH the source, GET it, then MULTI/INCRBY/EXEC (started over when another
/// client changed the source in between, at most [`WATCH_CONFLICT_LIMIT`] times); then the rest,
/// one command each.
pub async fn watch_transfer(
    conn: &mut Connection,
    keys: &Keys,
    t: &Planned<'_>,
    id: TransferId,
    stats: &mut Tally,
) -> redis::RedisResult<Outcome> {
    let from_key = keys.account(t.from_bank, t.from);
    for _ in 0..WATCH_CONFLICT_LIMIT {
        stats.calls += 2;
        redis::cmd("WATCH").arg(&from_key).query_async::<()>(conn).await?;
        let balance: i64 = conn.get(&from_key).await?;
        if balance < t.amount_cents {
            stats.calls += 1;
            redis::cmd("UNWATCH").query_async::<()>(conn).await?;
            let outcome = Outcome::Cancelled(CancelReason::InsufficientFunds);
            append_event(conn, keys, t, id, outcome, balance, stats).await?;
            return Ok(outcome);
        }
        stats.calls += 1;
        let debited: Option<(i64,)> =
            redis::pipe().atomic().incr(&from_key, -t.amount_cents).query_async(conn).await?;
        let Some((after,)) = debited else {
            stats.conflicts += 1;
            continue;
        };
        apply_rest(conn, keys, t, stats).await?;
        append_event(conn, keys, t, id, Outcome::Completed, after, stats).await?;
        return Ok(Outcome::Completed);
    }
    Err(redis::RedisError::from((
        redis::ErrorKind::Client,
        "WATCH kept failing",
        format!("{WATCH_CONFLICT_LIMIT} conflicts in a row on {from_key}"),
    )))
}

/// GET then INCRBY with nothing in between, then the rest, one command each.
pub async fn naive_transfer(
    conn: &mut Connection,
    keys: &Keys,
    t: &Planned<'_>,
    id: TransferId,
    stats: &mut Tally,
) -> redis::RedisResult<Outcome> {
    let from_key = keys.account(t.from_bank, t.from);
    stats.calls += 1;
    let balance: i64 = conn.get(&from_key).await?;
    if balance < t.amount_cents {
        let outcome = Outcome::Cancelled(CancelReason::InsufficientFunds);
        append_event(conn, keys, t, id, outcome, balance, stats).await?;
        return Ok(outcome);
    }
    stats.calls += 1;
    let after: i64 = conn.incr(&from_key, -t.amount_cents).await?;
    apply_rest(conn, keys, t, stats).await?;
    append_event(conn, keys, t, id, Outcome::Completed, after, stats).await?;
    Ok(Outcome::Completed)
}

/// The credit and the bank and interbank moves, one command each, as the seed does them.
async fn apply_rest(
    conn: &mut Connection,
    keys: &Keys,
    t: &Planned<'_>,
    stats: &mut Tally,
) -> redis::RedisResult<()> {
    let a = t.amount_cents;
    if t.from_bank != t.to_bank {
        stats.calls += 4;
        let _: i64 = conn.incr(keys.bank_balance(t.from_bank), -a).await?;
        let _: i64 = conn.incr(keys.bank_balance(t.to_bank), a).await?;
        let _: i64 = conn.hincr(keys.interbank(t.from_bank), t.to_bank, -a).await?;
        let _: i64 = conn.hincr(keys.interbank(t.to_bank), t.from_bank, a).await?;
    }
    stats.calls += 1;
    let _: i64 = conn.incr(keys.account(t.to_bank, t.to), a).await?;
    Ok(())
}

/// The transfer's event, as the seed appends it: one XADD.
async fn append_event(
    conn: &mut Connection,
    keys: &Keys,
    t: &Planned<'_>,
    id: TransferId,
    outcome: Outcome,
    from_balance_cents: i64,
    stats: &mut Tally,
) -> redis::RedisResult<()> {
    let event = Event {
        id,
        outcome,
        from: t.from,
        to: t.to,
        from_bank: t.from_bank,
        to_bank: t.to_bank,
        amount_cents: t.amount_cents,
        from_balance_cents: Some(from_balance_cents),
    };
    stats.calls += 1;
    let _: String = conn.xadd(keys.events(), "*", &events::fields(&event)).await?;
    stats.events += 1;
    Ok(())
}
