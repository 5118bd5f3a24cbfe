//! `--batch K` on a Redis Cluster: a worker makes K transfers at a time, and each step of them
//! is one call per bank instead of one per transfer. For each source bank: its transfers inside
//! the bank in one call of the transfer script, its debits in one call. The worker then hands
//! the debited transfers to the courier (`courier.rs`), which carries those of every worker
//! together ([`carry`]): once a replica of each source's shard has them, the credits in one call
//! per destination bank; once a replica of each destination's shard has those, the settlements
//! in one call per source bank. The waits, the credits and the settlements of all banks go at
//! once, so the shards work side by side. (A worker carrying its own batch made calls of K/13
//! transfers or so per bank and step: at K = 128 its cluster spent 2.4x the single server's
//! Redis CPU per transfer, 1.4x through the courier.) A group commit's committer carries its own
//! ([`round`]). The steps and their guarantees are those of one transfer at a time
//! (`sharded.rs`): a batch only shares the calls, whose fixed cost is most of what a small
//! transfer costs Redis.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use futures_util::future::join_all;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::mpsc;

use super::courier::Debited;
use super::sharded::{Ended, describe_failure, lost_writes};
use super::{Shared, WorkerStats};
use crate::ledger::events::Outcome;
use crate::store::connection::Connection;
use crate::store::cross_bank::{self, CREDIT_ROUNDS, Credit, Debit, Durability, InFlight};
use crate::store::error::CallError;
use crate::store::script::{Scope, TransferRequest};

/// Makes the worker's transfers, `--batch` at a time, until done or stopped: the transfers
/// inside a bank and the debits, then the debited ones handed to the courier, which carries
/// those of every worker together (credits in calls of many workers' transfers, not of a few).
pub(super) async fn work(
    shared: &Shared,
    conn: &mut Connection,
    producer: &str,
    rng: &mut ChaCha8Rng,
    next_seq: &mut [u64],
    stats: &mut WorkerStats,
    courier: &mpsc::Sender<Debited>,
) {
    let (cfg, dir) = (&shared.config, &shared.directory);
    let mut made = 0;
    while made < cfg.transfers_per_worker && !shared.stop.load(Ordering::Relaxed) {
        let count = (cfg.transfers_per_worker - made).min(u64::try_from(cfg.batch).expect("small"));
        let picks: Vec<TransferRequest<'_>> = (0..count)
            .map(|_| {
                let (from, to) = dir.pick_pair(rng);
                TransferRequest {
                    from_bank: usize::from(dir.accounts[from].1),
                    to_bank: usize::from(dir.accounts[to].1),
                    from: &dir.accounts[from].0,
                    to: &dir.accounts[to].0,
                    amount_cents: rng.random_range(cfg.min_amount_cents..=cfg.max_amount_cents),
                }
            })
            .collect();
        let Some(started) = shared.start(count).await else { break };
        let crossing = picks.iter().filter(|p| p.from_bank != p.to_bank).count();
        stats.cross_bank += u64::try_from(crossing).expect("at most MAX_BATCH");
        let debited = debit_round(shared, conn, producer, next_seq, &picks, stats).await;
        stats.record_latency(started.elapsed());
        match debited {
            Ok((ended, debited)) => {
                let decided = ended.len() - debited.len();
                for end in ended.into_iter().flatten() {
                    match end {
                        Ended::Decided(outcome) => stats.count(outcome),
                        Ended::InFlight => stats.in_flight += 1,
                    }
                }
                let decided = u64::try_from(decided).expect("at most MAX_BATCH");
                shared.done.fetch_add(decided, Ordering::Relaxed);
                for (_, transfer) in debited {
                    if courier.send(Debited { transfer, started }).await.is_err() {
                        // The courier is gone (it panicked): the transfer waits in its outbox.
                        stats.in_flight += 1;
                        shared.done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Err(error) => {
                stats.failed += count;
                stats.error = Some(error);
                shared.stop.store(true, Ordering::Relaxed);
                return;
            }
        }
        made += count;
    }
}

/// One batch: how each transfer of `picks` ended, in order.
pub(super) async fn round(
    shared: &Shared,
    conn: &mut Connection,
    producer: &str,
    next_seq: &mut [u64],
    picks: &[TransferRequest<'_>],
    stats: &mut WorkerStats,
) -> Result<Vec<Ended>, String> {
    let (mut ended, debited) = debit_round(shared, conn, producer, next_seq, picks, stats).await?;
    carry(shared, conn, debited, &mut ended, stats).await?;
    Ok(ended.into_iter().map(|end| end.expect("every transfer of the batch ends")).collect())
}

/// What the first part of a batch leaves: how each transfer ended so far (`None` when debited),
/// and the debited ones, each with its index in the batch, to carry on.
type DebitRound = (Vec<Option<Ended>>, Vec<(usize, InFlight)>);

/// The first part of a batch, per source bank: its transfers inside the bank in one call, its
/// debits in another.
async fn debit_round(
    shared: &Shared,
    conn: &mut Connection,
    producer: &str,
    next_seq: &mut [u64],
    picks: &[TransferRequest<'_>],
    stats: &mut WorkerStats,
) -> Result<DebitRound, String> {
    let mut ended: Vec<Option<Ended>> = (0..picks.len()).map(|_| None).collect();
    let mut by_source: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, pick) in picks.iter().enumerate() {
        by_source.entry(pick.from_bank).or_default().push(i);
    }
    let mut debited: Vec<(usize, InFlight)> = Vec::new();
    for (&bank, members) in &by_source {
        let (inside, across): (Vec<usize>, Vec<usize>) =
            members.iter().partition(|&&i| picks[i].to_bank == bank);
        inside_bank(shared, conn, producer, next_seq, bank, &inside, picks, &mut ended, stats)
            .await?;
        debited.extend(
            debits(shared, conn, producer, next_seq, bank, &across, picks, &mut ended, stats)
                .await?,
        );
    }
    Ok((ended, debited))
}

/// Carries debited transfers (each with its index in `ended`) to their end: once a replica of
/// each source's shard has the debits, the credits in one call per destination bank; once a
/// replica of each destination's shard has those, the settlements in one call per source bank.
/// Each credit carries its destination inbox's epoch as known before the debits were made sure
/// of; one refused as stale (the inbox forgot settled transfers meanwhile) has its debits made
/// sure of again and is sent with the new epoch.
pub(super) async fn carry(
    shared: &Shared,
    conn: &mut Connection,
    debited: Vec<(usize, InFlight)>,
    ended: &mut [Option<Ended>],
    stats: &mut WorkerStats,
) -> Result<(), String> {
    let mut credited = Vec::new();
    let mut waiting = debited;
    for _ in 0..CREDIT_ROUNDS {
        if waiting.is_empty() {
            break;
        }
        let epochs: Vec<u64> =
            shared.inbox_epochs.iter().map(|epoch| epoch.load(Ordering::Acquire)).collect();
        let durable_debits = keep_durable(shared, waiting, true, ended, stats).await?;
        let (answered, stale) = credits(shared, conn, durable_debits, &epochs, stats).await?;
        credited.extend(answered);
        waiting = stale;
    }
    for (i, _) in waiting {
        ended[i] = Some(Ended::InFlight);
    }
    let durable_credits = keep_durable(shared, credited, false, ended, stats).await?;
    settlements(shared, conn, durable_credits, ended, stats).await
}

/// The transfers of `members` inside bank `bank`, in one call of the transfer script.
#[allow(clippy::too_many_arguments)]
async fn inside_bank(
    shared: &Shared,
    conn: &mut Connection,
    producer: &str,
    next_seq: &mut [u64],
    bank: usize,
    members: &[usize],
    picks: &[TransferRequest<'_>],
    ended: &mut [Option<Ended>],
    stats: &mut WorkerStats,
) -> Result<(), String> {
    if members.is_empty() {
        return Ok(());
    }
    let requests: Vec<TransferRequest<'_>> = members.iter().map(|&i| picks[i]).collect();
    let scope = Scope::Bank(&shared.directory.banks[bank]);
    let called =
        super::atomic::call(shared, conn, scope, producer, next_seq[bank], &requests, stats).await;
    if let Some(error) = called.error {
        return Err(error);
    }
    for (&i, outcome) in members.iter().zip(called.outcomes) {
        ended[i] = Some(Ended::Decided(outcome));
    }
    next_seq[bank] += u64::try_from(members.len()).expect("at most MAX_BATCH");
    Ok(())
}

/// The debits of `members` (all out of bank `bank`) in one call; those debited, to go on with.
#[allow(clippy::too_many_arguments)]
async fn debits(
    shared: &Shared,
    conn: &mut Connection,
    producer: &str,
    next_seq: &mut [u64],
    bank: usize,
    members: &[usize],
    picks: &[TransferRequest<'_>],
    ended: &mut [Option<Ended>],
    stats: &mut WorkerStats,
) -> Result<Vec<(usize, InFlight)>, String> {
    if members.is_empty() {
        return Ok(Vec::new());
    }
    let banks = &shared.directory.banks;
    let first = next_seq[bank];
    let batch: Vec<InFlight> = (first..)
        .zip(members)
        .map(|(seq, &i)| InFlight {
            from_bank: banks[bank].clone(),
            to_bank: banks[picks[i].to_bank].clone(),
            id: format!("{producer}-{seq}"),
            from: picks[i].from.to_string(),
            to: picks[i].to.to_string(),
            amount_cents: picks[i].amount_cents,
        })
        .collect();
    let (script, keys) = (&shared.cross_bank, &shared.config.keys);
    let answers = step!(stats, script.debit_batch(conn, keys, producer, first, &batch))
        .map_err(failed("debits", &banks[bank], &batch))?;
    next_seq[bank] += u64::try_from(members.len()).expect("at most MAX_BATCH");
    let mut debited = Vec::with_capacity(batch.len());
    for ((&i, transfer), answer) in members.iter().zip(batch).zip(answers) {
        match answer {
            Debit::Debited => debited.push((i, transfer)),
            Debit::Cancelled(reason) => ended[i] = Some(Ended::Decided(Outcome::Cancelled(reason))),
        }
    }
    Ok(debited)
}

/// The transfers whose last step (debits, grouped by source bank, or credits, by destination)
/// a replica of its shard has; the others end in flight, for the recovery pass. Every record of
/// a group is read after the wait, not only the last: the courier's debits come from many calls,
/// and a failover between two of them keeps only the later ones. The groups are waited on at
/// once: a shard whose replica lags holds up its own group only.
async fn keep_durable<T: Transfer>(
    shared: &Shared,
    transfers: Vec<(usize, T)>,
    debits: bool,
    ended: &mut [Option<Ended>],
    stats: &mut WorkerStats,
) -> Result<Vec<(usize, T)>, String> {
    let keys = &shared.config.keys;
    let mut groups: BTreeMap<String, Vec<(usize, T)>> = BTreeMap::new();
    for (i, t) in transfers {
        let bank = if debits { &t.in_flight().from_bank } else { &t.in_flight().to_bank };
        groups.entry(bank.clone()).or_default().push((i, t));
    }
    let waits = groups.into_iter().map(|(bank, group)| async move {
        let index = shared.directory.banks.iter().position(|b| *b == bank).expect("a known bank");
        let (record, fields): (String, Vec<String>) = if debits {
            (keys.outbox(&bank), group.iter().map(|(_, t)| t.in_flight().id.clone()).collect())
        } else {
            let fields = group.iter().map(|(_, t)| cross_bank::inbox_field(t.in_flight()));
            (keys.inbox(&bank), fields.collect())
        };
        let mut counted = Calls::default();
        let next = durable(shared, index, &record, &fields, &mut counted).await;
        (counted, group, next)
    });
    let mut kept = Vec::new();
    let mut first_error = None;
    for (counted, group, next) in join_all(waits).await {
        counted.add_to(stats);
        let id = |at: usize| {
            let t = group[at].1.in_flight();
            format!("{}:{}", t.from_bank, t.id)
        };
        match next {
            Ok(Next::GoOn) => kept.extend(group),
            // A record gone: a credit lost in a failover is credited again by the recovery pass;
            // a debit lost with its master is never credited (`consume` reports the gap), and
            // one settled meanwhile by another broker's recovery pass is done. None is built on
            // here: what is still in an outbox goes to the recovery pass.
            Ok(Next::LeaveInFlight | Next::Missing) => {
                for (i, _) in group {
                    ended[i] = Some(Ended::InFlight);
                }
            }
            Err((err, retries)) => {
                let last = group.len() - 1;
                first_error.get_or_insert_with(|| {
                    describe_failure("wait for a replica", &id(last), &err, retries)
                });
            }
        }
    }
    first_error.map_or(Ok(kept), Err)
}

/// What the broker may do after a step: go on, leave the transfers in flight, or stop.
enum Next {
    /// A replica has the steps (or the shard never had a replica and its master has them).
    GoOn,
    /// No replica acknowledged in time: the recovery pass takes it from here.
    LeaveInFlight,
    /// A record of the steps is not on the shard's master.
    Missing,
}

/// Whether the steps recorded as `fields` of `record` in bank `bank`'s shard may be built on.
/// A shard that has a replica configured must have them on one. One without a replica (never
/// had one, or left without one by a failover) has what its master has: its records are read.
async fn durable(
    shared: &Shared,
    bank: usize,
    record: &str,
    fields: &[String],
    counted: &mut Calls,
) -> Result<Next, (CallError, u32)> {
    // The waits go on a connection of their own: a `WAIT` holds up every command behind it on
    // its connection, and the workers' script calls should not queue behind it. Its own mark
    // makes the wait cover every write before it, whichever connection made them.
    let conn = &mut shared.waiter.clone().expect("a sharded run has a waiter connection");
    let (keys, name) = (&shared.config.keys, &shared.directory.banks[bank]);
    let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
    if !shared.replicated[bank].load(Ordering::Relaxed) {
        // No replica to wait for, and the records are read all the same: a debit settled and
        // forgotten meanwhile by another broker's recovery pass must not be credited again.
        return Ok(match step!(counted, cross_bank::first_missing(conn, record, &fields))? {
            None => Next::GoOn,
            Some(_) => Next::Missing,
        });
    }
    match step!(counted, cross_bank::durability(conn, keys, name, record, &fields))? {
        Durability::Replicated => Ok(Next::GoOn),
        Durability::Missing { .. } => Ok(Next::Missing),
        Durability::NotYetReplicated => {
            if step!(counted, cross_bank::shard_has_replicas(conn, keys, name))? {
                return Ok(Next::LeaveInFlight);
            }
            // The records were all there after the wait: the new master has them.
            shared.replicated[bank].store(false, Ordering::Relaxed);
            Ok(Next::GoOn)
        }
    }
}

/// A transfer of the batch (its index in the batch) and its credit's answer.
type Answered = (usize, (InFlight, Credit));

/// What `keep_durable` needs of a transfer: its terms.
trait Transfer {
    fn in_flight(&self) -> &InFlight;
}

impl Transfer for InFlight {
    fn in_flight(&self) -> &InFlight {
        self
    }
}

impl Transfer for (InFlight, Credit) {
    fn in_flight(&self) -> &InFlight {
        &self.0
    }
}

/// Calls and retries of one of a step's concurrent calls, added to the worker's afterwards.
#[derive(Default)]
struct Calls {
    calls: u64,
    retries: u64,
}

impl Calls {
    fn add_to(&self, stats: &mut WorkerStats) {
        stats.calls += self.calls;
        stats.retries += self.retries;
    }
}

/// The credits, one call per destination bank, all banks' at once: each is on its own slot, and
/// a shard works on one while the others work on theirs. Each call carries `epochs[bank]` of its
/// destination; the transfers of a call refused as stale come back apart, to be made sure of
/// again, and the run learns the inbox's new epoch.
async fn credits(
    shared: &Shared,
    conn: &mut Connection,
    debited: Vec<(usize, InFlight)>,
    epochs: &[u64],
    stats: &mut WorkerStats,
) -> Result<(Vec<Answered>, Vec<(usize, InFlight)>), String> {
    let (script, keys) = (&shared.cross_bank, &shared.config.keys);
    let mut by_destination: BTreeMap<String, Vec<(usize, InFlight)>> = BTreeMap::new();
    for (i, t) in debited {
        by_destination.entry(t.to_bank.clone()).or_default().push((i, t));
    }
    let calls = by_destination.into_iter().map(|(bank, group)| {
        let mut conn = conn.clone();
        let index = shared.directory.banks.iter().position(|b| *b == bank).expect("a known bank");
        async move {
            let (indices, batch): (Vec<usize>, Vec<InFlight>) = group.into_iter().unzip();
            let mut counted = Calls::default();
            let epoch = epochs[index];
            let answers = step!(counted, script.credit_batch(&mut conn, keys, epoch, &batch));
            (counted, bank, index, indices, batch, answers)
        }
    });
    let (mut credited, mut stale) = (Vec::new(), Vec::new());
    let mut first_error = None;
    for (counted, bank, index, indices, batch, answers) in join_all(calls).await {
        counted.add_to(stats);
        match answers {
            Ok(answers) => credited
                .extend(indices.into_iter().zip(batch).zip(answers).map(|((i, t), c)| (i, (t, c)))),
            Err((CallError::StaleEpoch { current, .. }, _)) => {
                shared.inbox_epochs[index].fetch_max(current, Ordering::AcqRel);
                stats.stale_credits += u64::try_from(batch.len()).expect("at most MAX_BATCH");
                stale.extend(indices.into_iter().zip(batch));
            }
            Err(err) => {
                first_error.get_or_insert_with(|| failed("credits", &bank, &batch)(err));
            }
        }
    }
    first_error.map_or(Ok((credited, stale)), Err)
}

/// The settlements, one call per source bank, all banks' at once; each transfer ends with its
/// credit's answer.
async fn settlements(
    shared: &Shared,
    conn: &mut Connection,
    credited: Vec<Answered>,
    ended: &mut [Option<Ended>],
    stats: &mut WorkerStats,
) -> Result<(), String> {
    let (script, keys) = (&shared.cross_bank, &shared.config.keys);
    let mut by_source: BTreeMap<String, Vec<Answered>> = BTreeMap::new();
    for (i, pair) in credited {
        by_source.entry(pair.0.from_bank.clone()).or_default().push((i, pair));
    }
    let calls = by_source.into_iter().map(|(bank, group)| {
        let mut conn = conn.clone();
        async move {
            let batch: Vec<(&InFlight, Credit)> = group.iter().map(|(_, (t, c))| (t, *c)).collect();
            let mut counted = Calls::default();
            let settled = step!(counted, script.settle_batch(&mut conn, keys, &batch)).map(drop);
            drop(batch);
            (counted, bank, group, settled)
        }
    });
    let mut first_error = None;
    for (counted, bank, group, settled) in join_all(calls).await {
        counted.add_to(stats);
        if let Err(err) = settled {
            let terms: Vec<InFlight> = group.into_iter().map(|(_, (t, _))| t).collect();
            first_error.get_or_insert_with(|| failed("settlements", &bank, &terms)(err));
            continue;
        }
        for (i, (_, credit)) in group {
            ended[i] = Some(Ended::Decided(match credit {
                Credit::Credited => Outcome::Completed,
                Credit::Rejected(reason) => Outcome::Cancelled(reason),
            }));
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Why a batched step failed for good, naming its first transfer, and where the money is.
fn failed<'a>(
    step: &'a str,
    bank: &'a str,
    batch: &'a [InFlight],
) -> impl FnOnce((CallError, u32)) -> String + 'a {
    move |(err, retries)| {
        let first = batch.first().map_or(String::new(), |t| format!("{}:{}", t.from_bank, t.id));
        if let Some(lost) = lost_writes(step, &first, &err) {
            return lost;
        }
        let after = if retries > 0 { format!(" after {retries} retries") } else { String::new() };
        format!(
            "the {step} of bank {bank} ({} transfers, the first {first}) failed{after}: {err}; \
             what was debited is in flight in its bank's outbox, and `interbank recover` carries \
             it to its end",
            batch.len()
        )
    }
}
