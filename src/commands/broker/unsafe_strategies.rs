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

use rand::Rng;

use super::{Shared, WorkerStats, worker_rng};
use crate::ledger::events::TransferId;
use crate::ledger::runs::Strategy;
use crate::store::connection::Connection;
use crate::store::seed_protocol::{Planned, Tally, naive_transfer, watch_transfer};

pub(super) async fn worker(shared: &Shared, worker: u32, mut conn: Connection) -> WorkerStats {
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
        let id = TransferId { run: shared.run, producer: worker, seq };
        let Some(started) = shared.start(1).await else { break };
        let mut tally = Tally::default();
        let result = match cfg.strategy {
            Strategy::Watch => watch_transfer(&mut conn, &cfg.keys, &planned, id, &mut tally).await,
            Strategy::Naive => naive_transfer(&mut conn, &cfg.keys, &planned, id, &mut tally).await,
            Strategy::Atomic => unreachable!("atomic has its own worker"),
        };
        stats.calls += tally.calls;
        stats.conflicts += tally.conflicts;
        stats.events += tally.events;
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
