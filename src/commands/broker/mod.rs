//! `interbank broker`: many concurrent workers making random transfers, and a summary of how it went.
//!
//! Workers are tokio tasks. With `atomic` and `naive` they share a few multiplexed connections
//! (commands of many workers are pipelined on each); with `watch` each worker has its own, because
//! WATCH belongs to a connection. Each run is recorded in Redis (see [`crate::store::runs`]) so that
//! `consume` knows when it has ended and how many events it wrote.

/// Sends one step (an expression giving the step's future), again after each transient error, up
/// to `RETRY_LIMIT` times after a backoff; counts the calls and retries in `$stats`. Gives the
/// step's answer, or its error with the retries it took. A macro, not a function over an async
/// closure: a worker is a spawned task, and such a closure's future cannot be shown `Send`.
macro_rules! step {
    ($stats:expr, $send:expr) => {{
        let mut attempt: u32 = 0;
        loop {
            $stats.calls += 1;
            match $send.await {
                Err($crate::store::error::CallError::Transient(_))
                    if attempt < $crate::store::retry::RETRY_LIMIT =>
                {
                    attempt += 1;
                    $stats.retries += 1;
                    let pause_ms = $crate::store::retry::backoff_ms(attempt);
                    tokio::time::sleep(std::time::Duration::from_millis(pause_ms)).await;
                }
                Err(err) => break Err((err, attempt)),
                Ok(answer) => break Ok(answer),
            }
        }
    }};
}

mod atomic;
mod courier;
mod directory;
mod group_commit;
mod pacer;
mod sharded;
mod sharded_batch;
mod stats;
mod unsafe_strategies;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::task::JoinHandle;

pub use directory::{Directory, Pairs};
pub use pacer::MAX_RATE_PER_S;
pub use stats::WorkerStats;

use crate::commands::recover::{Recovered, recover_banks, recover_except};
use crate::commands::{Progress, now_ms};
use crate::ledger::money::MAX_TOTAL_CENTS;
use crate::ledger::runs::{RunStatus, Strategy};
use crate::store::connection::Connection;
use crate::store::cross_bank::{self, CrossBankScript};
use crate::store::keys::{KeyLayout, Keys};
use crate::store::meta;
use crate::store::runs;
use crate::store::script::{MAX_BATCH, TransferScript};
use crate::store::target::Target;

/// Bounds on the flags, so a typo cannot ask for something absurd.
pub const MAX_WORKERS: u32 = 10_000;
pub const MAX_TRANSFERS_PER_WORKER: u64 = 1_000_000_000;
pub const MAX_CONNECTIONS: usize = 256;
/// `--linger-ms`: the default, and the most (money waits in flight that long at least).
pub const DEFAULT_LINGER_MS: u64 = 10;
pub const MAX_LINGER_MS: u64 = 1_000;
/// How often a broker on a cluster runs a recovery pass over other runs' transfers in flight.
const RECOVERY_INTERVAL_MS: u64 = 5_000;
/// How often the progress is reported.
const PROGRESS_TICK_MS: u64 = 100;

/// What a broker run does.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub target: Target,
    pub keys: Keys,
    pub strategy: Strategy,
    pub workers: u32,
    pub transfers_per_worker: u64,
    pub min_amount_cents: i64,
    pub max_amount_cents: i64,
    /// Transfers per script call (`atomic` only).
    pub batch: usize,
    /// Workers hand their transfers to one committer per connection, which sends all those
    /// waiting in one script call (`atomic` only, with `batch` 1).
    pub group_commit: bool,
    /// Shared connections (`atomic` and `naive`); `watch` opens one per worker.
    pub connections: usize,
    /// Seed of the random choices; the same seed on the same data makes the same transfers.
    pub seed: u64,
    /// This tool's keys, or the Go demo's (`--layout seed`, `atomic` only).
    pub key_layout: KeyLayout,
    /// Which pairs of accounts the transfers are between.
    pub pairs: Pairs,
    /// Transfers started per second over all workers, on a schedule (`--rate`); as fast as the
    /// workers go when `None`.
    pub rate_per_s: Option<u64>,
    /// Redis Cluster: how long the courier gathers debited transfers before it credits and
    /// settles them (`--linger-ms`).
    pub linger_ms: u64,
}

impl BrokerConfig {
    /// Refuses values that make no sense, with the flag to change.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            (1..=MAX_WORKERS).contains(&self.workers),
            "--workers must be 1 to {MAX_WORKERS}; got {}",
            self.workers
        );
        ensure!(
            (1..=MAX_TRANSFERS_PER_WORKER).contains(&self.transfers_per_worker),
            "--transfers must be 1 to {MAX_TRANSFERS_PER_WORKER} per worker; got {}",
            self.transfers_per_worker
        );
        ensure!(
            self.min_amount_cents >= 1,
            "--min-amount must be at least 1 cent; got {}",
            self.min_amount_cents
        );
        ensure!(
            self.max_amount_cents <= MAX_TOTAL_CENTS,
            "--max-amount must be at most {MAX_TOTAL_CENTS} cents; got {}",
            self.max_amount_cents
        );
        ensure!(
            self.min_amount_cents <= self.max_amount_cents,
            "--min-amount ({}) is larger than --max-amount ({})",
            self.min_amount_cents,
            self.max_amount_cents
        );
        ensure!(
            (1..=MAX_BATCH).contains(&self.batch),
            "--batch must be 1 to {MAX_BATCH}; got {}",
            self.batch
        );
        ensure!(
            self.batch == 1 || self.strategy == Strategy::Atomic,
            "--batch works with --strategy atomic only"
        );
        ensure!(
            !self.group_commit || self.strategy == Strategy::Atomic,
            "--group-commit works with --strategy atomic only"
        );
        ensure!(
            !self.group_commit || self.batch == 1,
            "--group-commit sizes each call by the transfers waiting; leave --batch at 1"
        );
        ensure!(
            self.key_layout == KeyLayout::Ours || self.strategy == Strategy::Atomic,
            "--layout seed works with --strategy atomic only (the demo's own protocol is what it replaces)"
        );
        ensure!(
            (1..=MAX_CONNECTIONS).contains(&self.connections),
            "--connections must be 1 to {MAX_CONNECTIONS}; got {}",
            self.connections
        );
        ensure!(
            self.linger_ms <= MAX_LINGER_MS,
            "--linger-ms must be 0 to {MAX_LINGER_MS}; got {}",
            self.linger_ms
        );
        if let Some(rate) = self.rate_per_s {
            ensure!(
                (1..=MAX_RATE_PER_S).contains(&rate),
                "--rate must be 1 to {MAX_RATE_PER_S} transfers per second; got {rate}"
            );
        }
        Ok(())
    }

    pub fn planned(&self) -> u64 {
        u64::from(self.workers) * self.transfers_per_worker
    }

    /// The run's producers, each numbering its transfers 1, 2, 3...: the workers, or with
    /// `--group-commit` the committers, one per connection (no more than there are workers).
    pub fn producers(&self) -> u32 {
        if self.group_commit {
            self.connections.min(self.workers as usize) as u32
        } else {
            self.workers
        }
    }
}

/// What a run did, as printed at the end (and with `--json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct BrokerSummary {
    pub run: u64,
    pub strategy: Strategy,
    pub workers: u32,
    pub batch: usize,
    pub group_commit: bool,
    pub connections: usize,
    pub seed: u64,
    pub pairs: Pairs,
    /// `--rate`: transfers started per second, on a schedule; latencies count from it.
    pub rate_per_s: Option<u64>,
    /// How long the courier gathered before carrying (Redis Cluster).
    pub linger_ms: u64,
    pub planned: u64,
    pub completed: u64,
    pub cancelled: u64,
    pub failed: u64,
    /// Cross-bank transfers left in flight for the recovery pass (Redis Cluster only).
    pub in_flight: u64,
    /// What the recovery passes before and after the run carried to their end (Redis Cluster).
    pub recovered: Option<Recovered>,
    pub retries: u64,
    pub watch_conflicts: u64,
    /// Credits refused as stale after an inbox was trimmed, and sent again (Redis Cluster).
    pub stale_credits: u64,
    /// Transfers between two banks, made in steps on two shards (Redis Cluster; 0 elsewhere).
    pub cross_bank: u64,
    pub redis_calls: u64,
    pub events: u64,
    pub elapsed_s: f64,
    pub transfers_per_s: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_p999_ms: f64,
    pub latency_max_ms: f64,
    pub status: RunStatus,
    pub error: Option<String>,
}

/// State every worker of a run shares.
struct Shared {
    config: BrokerConfig,
    directory: Directory,
    script: TransferScript,
    /// Sharded layout (Redis Cluster): each bank's keys in its own slot, cross-bank transfers
    /// in three steps.
    sharded: bool,
    cross_bank: CrossBankScript,
    /// Sharded layout: the connection the waits for a replica go on.
    waiter: Option<Connection>,
    /// Sharded layout: per bank, whether its shard has a replica to wait for (as found at the
    /// start; set to false when a failover leaves it without one).
    replicated: Vec<AtomicBool>,
    /// Sharded layout: per bank, the newest epoch of its inbox this run has seen (0 until a
    /// credit is refused as stale): what its credits carry (`cross_bank::credit_batch`).
    inbox_epochs: Vec<AtomicU64>,
    run: u64,
    stop: AtomicBool,
    done: AtomicU64,
    /// `--rate`: the schedule every call waits for.
    pacer: Option<pacer::Pacer>,
}

impl Shared {
    /// Waits, with `--rate`, until a call of `transfers` transfers is due; returns the instant
    /// its latency counts from: when it was due, or now without a rate. `None` when the run was
    /// asked to stop meanwhile: the call is not to be made.
    async fn start(&self, transfers: u64) -> Option<Instant> {
        match &self.pacer {
            Some(pacer) => pacer.wait(transfers, &self.stop).await,
            None => Some(Instant::now()),
        }
    }

    /// Counts one transfer's outcome, its latency since `started`, and its progress.
    fn decided(
        &self,
        stats: &mut WorkerStats,
        outcome: crate::ledger::events::Outcome,
        started: Instant,
    ) {
        stats.record_latency(started.elapsed());
        stats.count(outcome);
        self.done.fetch_add(1, Ordering::Relaxed);
    }
}

/// A worker's random generator: its own stream, fixed by the run's seed and its number.
fn worker_rng(seed: u64, worker: u32) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(u64::from(worker));
    rng
}

/// Runs the broker to the end (or to Ctrl-C, or to an error that stops it).
pub async fn run(
    config: BrokerConfig,
    progress: Option<Arc<dyn Progress>>,
) -> Result<BrokerSummary> {
    config.validate()?;
    let mut control = Connection::open(&config.target).await?;
    let (shared, connections) = prepare(&mut control, &config).await?;
    let ticker = progress.map(|progress| progress_task(&shared, progress));
    let interrupted = Arc::new(AtomicBool::new(false));
    let on_signal = stop_on_ctrl_c(&shared, &interrupted);

    let mut recovered = Recovered::default();
    if shared.sharded {
        recovered.add(&recover_banks(&mut control, &config.keys, &shared.directory.banks).await?);
    }
    let started = Instant::now();
    let handles = if config.group_commit {
        spawn_group_commit(&shared, &connections)
    } else {
        spawn_workers(&shared, &connections)
    };
    let mut total = WorkerStats::default();
    let mut tick = tokio::time::interval(Duration::from_millis(RECOVERY_INTERVAL_MS));
    tick.tick().await;
    for mut handle in handles {
        loop {
            tokio::select! {
                stats = &mut handle => {
                    total.merge(&stats?);
                    break;
                }
                _ = tick.tick(), if shared.sharded => {
                    // What other runs left in flight (a killed broker's), while this one works.
                    let banks = &shared.directory.banks;
                    let pass = recover_except(&mut control, &config.keys, banks, Some(shared.run));
                    recovered.add(&pass.await?);
                }
            }
        }
    }
    let elapsed = started.elapsed();
    on_signal.abort();
    shared.stop.store(true, Ordering::Relaxed);
    if let Some((progress, ticker)) = ticker {
        ticker.abort();
        progress.finish();
    }

    if shared.sharded {
        let note = match recover_banks(&mut control, &config.keys, &shared.directory.banks).await {
            Ok(after) => {
                recovered.add(&after);
                (after.failed > 0).then(|| {
                    format!(
                        "the recovery pass after the run could not finish {} transfers ({}): \
                         they are in flight; run `interbank recover` once the cause is fixed",
                        after.failed,
                        after.errors.join("; ")
                    )
                })
            }
            Err(err) => Some(format!(
                "the recovery pass after the run failed ({err:#}): run `interbank recover`"
            )),
        };
        if let Some(note) = note {
            total.error = Some(total.error.take().map_or(note.clone(), |e| format!("{e}; {note}")));
        }
    }
    let status = if total.error.is_some() {
        RunStatus::Failed
    } else if interrupted.load(Ordering::Relaxed) {
        RunStatus::Interrupted
    } else {
        RunStatus::Ended
    };
    let banks = shared.sharded.then_some(shared.directory.banks.as_slice());
    let events = match record_end(&mut control, &config, banks, shared.run, &total, status).await {
        Ok(events) => events,
        Err(err) => {
            // The transfers are what they are; only the record of the run's end is missing, and
            // `consume` then counts the run from its producer keys after its idle timeout.
            let note = format!("the end of run {} could not be recorded: {err:#}", shared.run);
            let error = total.error.take().map_or(note.clone(), |e| format!("{e}; {note}"));
            total.error = Some(config.target.scrub(&error));
            total.events
        }
    };
    let mut summary = summarize(&config, shared.run, &total, events, elapsed, status);
    summary.recovered = shared.sharded.then_some(recovered);
    Ok(summary)
}

/// Everything a run needs before its first transfer: the data set checked, the accounts read,
/// the connections open, the script loaded, and the run recorded (which numbers it).
async fn prepare(
    control: &mut Connection,
    config: &BrokerConfig,
) -> Result<(Arc<Shared>, Vec<Connection>)> {
    let sharded = control.is_cluster();
    ensure!(
        !sharded || config.strategy == Strategy::Atomic,
        "{} is a Redis Cluster node: there the broker runs --strategy atomic",
        config.target
    );
    let meta = meta::read_layout(control, &config.keys, config.key_layout).await?;
    let directory = Directory::load(control, &config.keys, &meta, config.pairs).await?;
    let connection_count = if config.strategy == Strategy::Watch {
        usize::try_from(config.workers).expect("at most MAX_WORKERS")
    } else {
        config.connections
    };
    let mut connections = Vec::with_capacity(connection_count);
    for _ in 0..connection_count {
        connections.push(Connection::open(&config.target).await?);
    }
    let script = match config.key_layout {
        KeyLayout::Ours => TransferScript::default(),
        KeyLayout::Seed => TransferScript::seed(),
    };
    if config.strategy == Strategy::Atomic && !sharded {
        script.load(control).await?;
    }
    let mut had_replicas = Vec::with_capacity(meta.banks.len());
    for bank in meta.banks.iter().filter(|_| sharded) {
        had_replicas.push(cross_bank::shard_has_replicas(control, &config.keys, bank).await?);
    }
    let replicated = had_replicas.iter().map(|&has| AtomicBool::new(has)).collect();
    let inbox_epochs = had_replicas.iter().map(|_| AtomicU64::new(0)).collect();
    let run = runs::start(
        control,
        &config.keys,
        config.strategy,
        config.workers,
        config.producers(),
        config.planned(),
        now_ms(),
    )
    .await?;
    let shared = Shared {
        config: config.clone(),
        directory,
        script,
        sharded,
        cross_bank: CrossBankScript::default(),
        waiter: if sharded { Some(Connection::open(&config.target).await?) } else { None },
        replicated,
        inbox_epochs,
        run,
        stop: AtomicBool::new(false),
        done: AtomicU64::new(0),
        pacer: config.rate_per_s.map(pacer::Pacer::new),
    };
    Ok((Arc::new(shared), connections))
}

/// On Ctrl-C, asks every worker to stop after its current call and notes the run as interrupted.
fn stop_on_ctrl_c(shared: &Arc<Shared>, interrupted: &Arc<AtomicBool>) -> JoinHandle<()> {
    let shared = Arc::clone(shared);
    let interrupted = Arc::clone(interrupted);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            interrupted.store(true, Ordering::Relaxed);
            shared.stop.store(true, Ordering::Relaxed);
        }
    })
}

/// One task per worker, each on one of the shared connections in turn (`watch`: its own).
/// On a cluster, the courier comes last: it ends once every worker has.
fn spawn_workers(shared: &Arc<Shared>, connections: &[Connection]) -> Vec<JoinHandle<WorkerStats>> {
    let workers = shared.config.workers;
    let carried = shared.sharded && shared.config.strategy == Strategy::Atomic;
    let (sender, receiver) = courier::queue();
    let sender = carried.then_some(sender);
    let mut handles: Vec<JoinHandle<WorkerStats>> = (1..=workers)
        .zip(connections.iter().cycle())
        .map(|(worker, conn)| {
            let shared = Arc::clone(shared);
            let conn = conn.clone();
            let courier = sender.clone();
            tokio::spawn(async move {
                match shared.config.strategy {
                    Strategy::Atomic if shared.sharded => {
                        sharded::worker(&shared, worker, conn, courier).await
                    }
                    Strategy::Atomic => atomic::worker(&shared, worker, conn).await,
                    Strategy::Watch | Strategy::Naive => {
                        unsafe_strategies::worker(&shared, worker, conn).await
                    }
                }
            })
        })
        .collect();
    if sender.is_some() {
        let shared = Arc::clone(shared);
        let conn = connections[0].clone();
        handles.push(tokio::spawn(async move { courier::courier(&shared, conn, receiver).await }));
    }
    handles
}

/// `--group-commit`: one committer per connection (the run's producers), then the workers, each
/// handing its transfers to committer `(worker - 1) % committers + 1`.
fn spawn_group_commit(
    shared: &Arc<Shared>,
    connections: &[Connection],
) -> Vec<JoinHandle<WorkerStats>> {
    let config = &shared.config;
    let committers = usize::try_from(config.producers()).expect("at most MAX_CONNECTIONS");
    let workers = usize::try_from(config.workers).expect("at most MAX_WORKERS");
    // Each committer serves every `committers`-th worker: at most `share` of them.
    let share = workers.div_ceil(committers);
    let mut handles = Vec::with_capacity(committers + workers);
    let mut queues = Vec::with_capacity(committers);
    for (number, conn) in (1..).zip(connections.iter().take(committers)) {
        let shared = Arc::clone(shared);
        let conn = conn.clone();
        let (sender, receiver) = group_commit::queue(share);
        queues.push(sender);
        handles.push(tokio::spawn(async move {
            group_commit::committer(&shared, number, conn, receiver).await
        }));
    }
    for (worker, queue) in (1..=config.workers).zip(queues.iter().cycle()) {
        let shared = Arc::clone(shared);
        let queue = queue.clone();
        handles
            .push(tokio::spawn(async move { group_commit::worker(&shared, worker, queue).await }));
    }
    handles
}

/// Counts what the run wrote and records its end; returns the number of events.
async fn record_end(
    control: &mut Connection,
    config: &BrokerConfig,
    banks: Option<&[String]>,
    run_id: u64,
    total: &WorkerStats,
    status: RunStatus,
) -> Result<u64> {
    let (keys, producers) = (&config.keys, config.producers());
    let events = if let Some(banks) = banks {
        runs::applied_per_producer_in_banks(control, keys, run_id, producers, banks)
            .await?
            .iter()
            .sum()
    } else if config.strategy == Strategy::Atomic {
        runs::applied_per_producer(control, keys, run_id, producers).await?.iter().sum()
    } else {
        total.events
    };
    let mut fields = vec![
        ("completed", total.completed.to_string()),
        ("cancelled", total.cancelled.to_string()),
        ("failed", total.failed.to_string()),
    ];
    if let Some(error) = &total.error {
        fields.push(("error", error.clone()));
    }
    runs::finish(control, &config.keys, run_id, status, now_ms(), events, &fields).await?;
    Ok(events)
}

fn summarize(
    config: &BrokerConfig,
    run: u64,
    total: &WorkerStats,
    events: u64,
    elapsed: Duration,
    status: RunStatus,
) -> BrokerSummary {
    let decided = total.completed + total.cancelled;
    let seconds = elapsed.as_secs_f64().max(1e-9);
    let ms = |q: f64| total.latency_us.value_at_quantile(q) as f64 / 1000.0;
    BrokerSummary {
        run,
        strategy: config.strategy,
        workers: config.workers,
        batch: config.batch,
        group_commit: config.group_commit,
        connections: if config.strategy == Strategy::Watch {
            config.workers as usize
        } else {
            config.connections
        },
        seed: config.seed,
        pairs: config.pairs,
        rate_per_s: config.rate_per_s,
        linger_ms: config.linger_ms,
        planned: config.planned(),
        completed: total.completed,
        cancelled: total.cancelled,
        failed: total.failed,
        in_flight: total.in_flight,
        recovered: None,
        retries: total.retries,
        watch_conflicts: total.conflicts,
        stale_credits: total.stale_credits,
        cross_bank: total.cross_bank,
        redis_calls: total.calls,
        events,
        elapsed_s: seconds,
        transfers_per_s: decided as f64 / seconds,
        latency_p50_ms: ms(0.50),
        latency_p99_ms: ms(0.99),
        latency_p999_ms: ms(0.999),
        latency_max_ms: total.latency_us.max() as f64 / 1000.0,
        status,
        error: total.error.clone(),
    }
}

/// Reports the transfers decided so far, from a counter, so workers never wait on the display.
fn progress_task(
    shared: &Arc<Shared>,
    progress: Arc<dyn Progress>,
) -> (Arc<dyn Progress>, JoinHandle<()>) {
    let ticker = {
        let progress = Arc::clone(&progress);
        let shared = Arc::clone(shared);
        tokio::spawn(async move {
            loop {
                progress.update(shared.done.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(PROGRESS_TICK_MS)).await;
            }
        })
    };
    (progress, ticker)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BrokerConfig {
        BrokerConfig {
            target: Target::new("redis://127.0.0.1:1"),
            keys: Keys::new("t").unwrap(),
            strategy: Strategy::Atomic,
            workers: 20,
            transfers_per_worker: 5000,
            min_amount_cents: 100,
            max_amount_cents: 5000,
            batch: 1,
            group_commit: false,
            connections: 2,
            seed: 1,
            key_layout: KeyLayout::Ours,
            pairs: Pairs::Any,
            rate_per_s: None,
            linger_ms: DEFAULT_LINGER_MS,
        }
    }

    #[test]
    fn flags_out_of_bounds_are_refused_with_the_flag_named() {
        assert!(config().validate().is_ok());
        let cases: Vec<(BrokerConfig, &str)> = vec![
            (BrokerConfig { workers: 0, ..config() }, "--workers"),
            (
                BrokerConfig { strategy: Strategy::Watch, key_layout: KeyLayout::Seed, ..config() },
                "--layout seed",
            ),
            (BrokerConfig { transfers_per_worker: 0, ..config() }, "--transfers"),
            (BrokerConfig { min_amount_cents: 0, ..config() }, "--min-amount"),
            (BrokerConfig { min_amount_cents: -5, ..config() }, "--min-amount"),
            (BrokerConfig { min_amount_cents: 6000, ..config() }, "larger than --max-amount"),
            (BrokerConfig { max_amount_cents: i64::MAX, ..config() }, "--max-amount"),
            (BrokerConfig { batch: 0, ..config() }, "--batch"),
            (BrokerConfig { batch: 2, strategy: Strategy::Watch, ..config() }, "atomic only"),
            (BrokerConfig { connections: 0, ..config() }, "--connections"),
            (BrokerConfig { rate_per_s: Some(0), ..config() }, "--rate"),
            (BrokerConfig { linger_ms: MAX_LINGER_MS + 1, ..config() }, "--linger-ms"),
            (BrokerConfig { rate_per_s: Some(MAX_RATE_PER_S + 1), ..config() }, "--rate"),
            (BrokerConfig { group_commit: true, batch: 8, ..config() }, "leave --batch at 1"),
            (
                BrokerConfig { group_commit: true, strategy: Strategy::Watch, ..config() },
                "--group-commit works with --strategy atomic only",
            ),
        ];
        for (bad, flag) in cases {
            let err = bad.validate().unwrap_err().to_string();
            assert!(err.contains(flag), "{err}");
        }
    }

    #[test]
    fn worker_streams_differ_and_repeat() {
        use rand::Rng;
        let a: u64 = worker_rng(5, 1).random();
        let b: u64 = worker_rng(5, 2).random();
        assert_ne!(a, b);
        assert_eq!(a, worker_rng(5, 1).random::<u64>());
    }
}
