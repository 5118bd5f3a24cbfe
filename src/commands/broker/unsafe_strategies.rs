//! The two unsafe strategies, kept to be compared with `atomic` and to show what `consume` catches.
//!
//! `watch` is the seed's protocol: WATCH the source, GET it, and if the funds are there
//! MULTI/INCRBY/EXEC (started over when another client changed the source in between); then the
//! credit, the bank and interbank updates and the event, each as its own command. A crash or a
//! dropped connection between those commands leaves half a transfer.
//!
//! `naive` reads the balance, then debits it, with nothing to stop another worker from spending
//! the same money in between: with many workers on few accounts, balances go negative and each
//! event records the negative balance the debit left, which `consume` reports as an overdraft.

use std::sync::atomic::Ordering;
use std::time::Instant;

use rand::Rng;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use super::{Shared, WorkerStats, worker_rng};
use crate::ledger::events::{self, CancelReason, Event, Outcome, TransferId};
use crate::ledger::runs::Strategy;

/// How many times `watch` starts a transfer over after a conflict before giving up on it.
pub const WATCH_CONFLICT_LIMIT: u32 = 10_000;

struct Planned<'a> {
    from: &'a str,
    to: &'a str,
    from_bank: &'a str,
    to_bank: &'a str,
    amount_cents: i64,
}

pub(super) async fn worker(
    shared: &Shared,
    worker: u32,
    mut conn: ConnectionManager,
) -> WorkerStats {
    let cfg = &shared.config;
    let dir = &shared.directory;
    let mut rng = worker_rng(cfg.seed, worker);
    let mut stats = WorkerStats::default();
    for seq in 1..=cfg.transfers_per_worker {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let (from, to) = dir.pick_pair(&mut rng);
        let planned = Planned {
            from: &dir.accounts[from].0,
            to: &dir.accounts[to].0,
            from_bank: &dir.banks[usize::from(dir.accounts[from].1)],
            to_bank: &dir.banks[usize::from(dir.accounts[to].1)],
            amount_cents: rng.random_range(cfg.min_amount_cents..=cfg.max_amount_cents),
        };
        let id = TransferId { run: shared.run, worker, seq };
        let started = Instant::now();
        let result = match cfg.strategy {
            Strategy::Watch => watch_transfer(shared, &mut conn, &planned, id, &mut stats).await,
            Strategy::Naive => naive_transfer(shared, &mut conn, &planned, id, &mut stats).await,
            Strategy::Atomic => unreachable!("atomic has its own worker"),
        };
        match result {
            Ok(outcome) => shared.decided(&mut stats, outcome, started),
            Err(err) => {
                stats.failed += 1;
                stats.error = Some(format!(
                    "transfer {id} ({}) failed and may be half-applied, which this strategy cannot prevent: {}",
                    cfg.strategy.as_str(),
                    cfg.target.scrub(&err.to_string())
                ));
                shared.stop.store(true, Ordering::Relaxed);
                break;
            }
        }
    }
    stats
}

async fn watch_transfer(
    shared: &Shared,
    conn: &mut ConnectionManager,
    t: &Planned<'_>,
    id: TransferId,
    stats: &mut WorkerStats,
) -> redis::RedisResult<Outcome> {
    let keys = &shared.config.keys;
    let from_key = keys.account(t.from_bank, t.from);
    for _ in 0..WATCH_CONFLICT_LIMIT {
        stats.calls += 2;
        redis::cmd("WATCH").arg(&from_key).query_async::<()>(conn).await?;
        let balance: i64 = conn.get(&from_key).await?;
        if balance < t.amount_cents {
            stats.calls += 1;
            redis::cmd("UNWATCH").query_async::<()>(conn).await?;
            let outcome = Outcome::Cancelled(CancelReason::InsufficientFunds);
            append_event(shared, conn, t, id, outcome, balance, stats).await?;
            return Ok(outcome);
        }
        stats.calls += 1;
        let debited: Option<(i64,)> =
            redis::pipe().atomic().incr(&from_key, -t.amount_cents).query_async(conn).await?;
        let Some((after,)) = debited else {
            stats.conflicts += 1;
            continue;
        };
        apply_rest(shared, conn, t, stats).await?;
        append_event(shared, conn, t, id, Outcome::Completed, after, stats).await?;
        return Ok(Outcome::Completed);
    }
    Err(redis::RedisError::from((
        redis::ErrorKind::Client,
        "WATCH kept failing",
        format!("{WATCH_CONFLICT_LIMIT} conflicts in a row on {from_key}"),
    )))
}

async fn naive_transfer(
    shared: &Shared,
    conn: &mut ConnectionManager,
    t: &Planned<'_>,
    id: TransferId,
    stats: &mut WorkerStats,
) -> redis::RedisResult<Outcome> {
    let from_key = shared.config.keys.account(t.from_bank, t.from);
    stats.calls += 1;
    let balance: i64 = conn.get(&from_key).await?;
    if balance < t.amount_cents {
        let outcome = Outcome::Cancelled(CancelReason::InsufficientFunds);
        append_event(shared, conn, t, id, outcome, balance, stats).await?;
        return Ok(outcome);
    }
    stats.calls += 1;
    let after: i64 = conn.incr(&from_key, -t.amount_cents).await?;
    apply_rest(shared, conn, t, stats).await?;
    append_event(shared, conn, t, id, Outcome::Completed, after, stats).await?;
    Ok(Outcome::Completed)
}

/// The credit and the bank and interbank moves, one command each, as the seed does them.
async fn apply_rest(
    shared: &Shared,
    conn: &mut ConnectionManager,
    t: &Planned<'_>,
    stats: &mut WorkerStats,
) -> redis::RedisResult<()> {
    let keys = &shared.config.keys;
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

async fn append_event(
    shared: &Shared,
    conn: &mut ConnectionManager,
    t: &Planned<'_>,
    id: TransferId,
    outcome: Outcome,
    from_balance_cents: i64,
    stats: &mut WorkerStats,
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
    let _: String = conn.xadd(shared.config.keys.events(), "*", &events::fields(&event)).await?;
    stats.events += 1;
    Ok(())
}
