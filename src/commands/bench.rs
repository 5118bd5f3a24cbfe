//! `interbank bench`: one invocation, one private `redis-server`, one data set, and side by side
//! the seed's protocol (`watch`), the `atomic` strategy unbatched and batched, and a ceiling:
//! `redis-benchmark` calling the very same transfer script with `EVALSHA` (pipelined, `-P 16`).
//! Every figure comes from the same run, so ratios hold on a shared, noisy machine. The final
//! state is then verified with `consume`'s checks; a fast run that does not verify does not count.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use serde::Serialize;

use crate::commands::Silent;
use crate::commands::broker::{self, BrokerConfig, BrokerSummary, Pairs};
use crate::commands::consume::{self, ConsumeConfig};
use crate::ledger::runs::Strategy;
use crate::ledger::verify::Report;
use crate::store::connection::Connection;
use crate::store::dataset;
use crate::store::keys::{DEFAULT_PREFIX, KeyLayout, Keys};
use crate::store::private_redis::{PrivateCluster, PrivateRedis};
use crate::store::script::{TransferRequest, TransferScript};
use crate::store::server_info::{self, Counters};
use crate::store::target::Target;

/// The ceiling's key prefix, apart from the verified runs' keys.
const CEILING_PREFIX: &str = "interbank_ceiling";
/// Balance given to the ceiling's two accounts so that every call completes a transfer.
const CEILING_BALANCE_CENTS: i64 = 1_000_000_000_000_000;
/// The amount of every transfer of the ceiling.
const CEILING_AMOUNT_CENTS: i64 = 100;
/// Producer ids of the ceiling: `redis-benchmark` puts a random number in place of `__rand_int__`
/// (up to this many values), so nearly every call is a new producer's first transfer.
const CEILING_KEYSPACE: u64 = 1_000_000_000;

/// What to measure.
#[derive(Debug, Clone, Serialize)]
pub struct BenchConfig {
    pub accounts: u64,
    pub workers: u32,
    pub transfers_per_worker: u64,
    pub min_amount_cents: i64,
    pub max_amount_cents: i64,
    pub batch: usize,
    pub connections: usize,
    pub ceiling_requests: u64,
    pub ceiling_clients: u32,
    pub ceiling_pipeline: u32,
    pub seed: u64,
    /// Also run `atomic` on a private Redis Cluster of this many masters (0: not).
    pub cluster_masters: usize,
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    pub transfers: u64,
    pub transfers_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: Option<f64>,
    pub redis_cpu_s_per_1000: f64,
    pub commands_per_transfer: f64,
    pub round_trips_per_transfer: f64,
}

/// The whole result.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub config: BenchConfig,
    pub redis_version: String,
    pub rows: Vec<Row>,
    pub atomic_over_watch: f64,
    pub atomic_over_ceiling: f64,
    pub batched_over_ceiling: f64,
    pub verified: bool,
    pub events_verified: u64,
    /// Wall time of the verification: replaying the whole stream, reading the snapshot, checking.
    pub verify_s: f64,
    pub failed_checks: Vec<String>,
    /// `--cluster`: the atomic run on a private cluster, beside the single server's.
    pub cluster: Option<ClusterBench>,
}

/// The atomic run on a private Redis Cluster of masters without replicas (so the figures are
/// Redis's own work, with no wait for replication), on the same data and flags, verified.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterBench {
    pub masters: usize,
    pub transfers: u64,
    pub transfers_per_s: f64,
    /// Redis CPU seconds per 1,000 transfers, summed over the masters, and per master.
    pub redis_cpu_s_per_1000: f64,
    pub per_master_cpu_s_per_1000: Vec<f64>,
    /// Transfers between two banks (three steps, on two shards; the others are one call), as
    /// the broker counted them.
    pub cross_bank_transfers: u64,
    /// Summed cluster CPU per transfer over the single server's (`atomic` row).
    pub cluster_over_single: f64,
    /// The CPU of a cross-bank transfer over that of a transfer in one call, estimated: the
    /// single server's cost per transfer stands for a one-call transfer, the rest of the
    /// cluster's CPU is charged to the transfers between banks.
    pub cross_over_same: f64,
    /// The same run with `--batch` (each step one call per bank): transfers/s, Redis CPU summed
    /// per 1,000 transfers, and over the single server's batched run.
    pub batched_transfers_per_s: f64,
    pub batched_redis_cpu_s_per_1000: f64,
    pub batched_over_single_batched: f64,
    pub verified: bool,
    pub failed_checks: Vec<String>,
}

fn row_from(name: String, summary: &BrokerSummary, before: &Counters, after: &Counters) -> Row {
    let transfers = summary.completed + summary.cancelled;
    let per = |x: f64| x / transfers.max(1) as f64;
    Row {
        name,
        transfers,
        transfers_per_s: summary.transfers_per_s,
        p50_ms: summary.latency_p50_ms,
        p99_ms: summary.latency_p99_ms,
        p999_ms: Some(summary.latency_p999_ms),
        redis_cpu_s_per_1000: per(after.cpu_s - before.cpu_s) * 1000.0,
        // One INFO call in between is ours, not the run's.
        commands_per_transfer: per((after.commands - before.commands).saturating_sub(1) as f64),
        round_trips_per_transfer: per(summary.redis_calls as f64),
    }
}

/// Runs the whole benchmark. `work_dir` receives the generated data set.
pub async fn run(
    config: BenchConfig,
    work_dir: &Path,
    progress: impl Fn(&str),
) -> Result<BenchReport> {
    ensure!(config.ceiling_requests >= 1000, "--ceiling-requests must be at least 1000");
    let server = PrivateRedis::start()?;
    let target = Target::new(&server.url());
    let keys = Keys::new(DEFAULT_PREFIX).map_err(anyhow::Error::msg)?;
    let mut conn = Connection::open(&target).await?;
    let redis_version = server_info::version(&mut conn).await?;

    progress(&format!("generating {} accounts", config.accounts));
    let generated = crate::commands::generate::generate(work_dir, config.accounts, config.seed)?;
    let file = crate::ledger::accounts::load(&generated.accounts_path, None)?;
    crate::commands::init::init(&target, &keys, &file, KeyLayout::Ours, false).await?;

    let broker_config =
        |strategy: Strategy, batch: usize| run_config(&config, &target, &keys, strategy, batch);
    let mut rows = Vec::new();
    let runs = [
        ("watch (seed protocol)".to_string(), Strategy::Watch, 1),
        ("atomic".to_string(), Strategy::Atomic, 1),
        (format!("atomic --batch {}", config.batch), Strategy::Atomic, config.batch),
    ];
    for (name, strategy, batch) in runs {
        progress(&format!("running {name}"));
        let before = server_info::counters(&mut conn).await?;
        let summary = broker::run(broker_config(strategy, batch), None).await?;
        let after = server_info::counters(&mut conn).await?;
        if let Some(error) = &summary.error {
            bail!("the {name} run failed: {error}");
        }
        rows.push(row_from(name, &summary, &before, &after));
    }

    progress("running the ceiling (redis-benchmark)");
    rows.push(ceiling(&config, &server, &target, &file, &mut conn).await?);

    progress("verifying the final state");
    let verify_started = std::time::Instant::now();
    let report = verify_final_state(&target, &keys, &generated.accounts_path).await?;
    let verify_s = verify_started.elapsed().as_secs_f64();
    let failed_checks =
        report.checks.iter().filter(|c| !c.passed).map(|c| c.name.to_string()).collect();
    let cluster = if config.cluster_masters > 0 {
        progress(&format!(
            "running atomic on a private cluster of {} masters",
            config.cluster_masters
        ));
        let single = (rows[1].redis_cpu_s_per_1000, rows[2].redis_cpu_s_per_1000);
        Some(cluster_run(&config, &generated.accounts_path, single).await?)
    } else {
        None
    };
    let rate = |i: usize| rows[i].transfers_per_s;
    Ok(BenchReport {
        cluster,
        atomic_over_watch: rate(1) / rate(0).max(1e-9),
        atomic_over_ceiling: rate(1) / rate(3).max(1e-9),
        batched_over_ceiling: rate(2) / rate(3).max(1e-9),
        config,
        redis_version,
        rows,
        verified: report.verified,
        events_verified: report.events,
        verify_s,
        failed_checks,
    })
}

/// A broker run of the benchmark: its workload, with this strategy and batch.
fn run_config(
    config: &BenchConfig,
    target: &Target,
    keys: &Keys,
    strategy: Strategy,
    batch: usize,
) -> BrokerConfig {
    BrokerConfig {
        target: target.clone(),
        keys: keys.clone(),
        strategy,
        workers: config.workers,
        transfers_per_worker: config.transfers_per_worker,
        min_amount_cents: config.min_amount_cents,
        max_amount_cents: config.max_amount_cents,
        batch,
        group_commit: false,
        connections: config.connections,
        seed: config.seed,
        key_layout: KeyLayout::Ours,
        pairs: Pairs::Any,
        rate_per_s: None,
        linger_ms: broker::DEFAULT_LINGER_MS,
    }
}

/// `consume`'s verdict on the runs made, read from the start, with no checkpoint.
async fn verify_final_state(target: &Target, keys: &Keys, accounts_path: &Path) -> Result<Report> {
    let config = ConsumeConfig {
        target: target.clone(),
        keys: keys.clone(),
        accounts_path: accounts_path.to_path_buf(),
        banks_path: None,
        idle_timeout_ms: 1_000,
        name: "bench".to_string(),
        checkpoint_interval_ms: 0,
        restart: true,
        report: None,
    };
    Ok(consume::consume(&config, &Silent).await?.report)
}

/// `--cluster`: on a private cluster, loads the same file and runs `atomic` as on the single
/// server, then loads it again and runs it batched; reads each master's CPU around each run and
/// verifies each with `consume`.
async fn cluster_run(
    config: &BenchConfig,
    accounts_path: &Path,
    single: (f64, f64),
) -> Result<ClusterBench> {
    let cluster = PrivateCluster::start(config.cluster_masters)?;
    let target = Target::new(&cluster.nodes[0].url());
    let keys = Keys::new(DEFAULT_PREFIX).map_err(anyhow::Error::msg)?;
    let mut masters = Vec::with_capacity(cluster.nodes.len());
    for node in &cluster.nodes {
        // Each master on a connection of its own, not routed: its own CPU counters.
        let master = crate::store::connection::manager(&Target::new(&node.url())).await?;
        masters.push(Connection::Single(master));
    }
    let unbatched =
        ClusterRun::measure(config, &target, &keys, accounts_path, &mut masters, 1).await?;
    let batched =
        ClusterRun::measure(config, &target, &keys, accounts_path, &mut masters, config.batch)
            .await?;
    // The single server's cost per transfer stands for a transfer made in one call; the rest of
    // the cluster's CPU is charged to the transfers between banks.
    let same = unbatched.transfers.saturating_sub(unbatched.cross_bank_transfers) as f64;
    let cross_cost = (unbatched.cpu_s_per_1000 * unbatched.transfers as f64 - same * single.0)
        / (unbatched.cross_bank_transfers.max(1) as f64);
    let mut failed_checks = unbatched.failed_checks.clone();
    failed_checks.extend(batched.failed_checks.iter().cloned());
    Ok(ClusterBench {
        masters: config.cluster_masters,
        transfers: unbatched.transfers,
        transfers_per_s: unbatched.transfers_per_s,
        redis_cpu_s_per_1000: unbatched.cpu_s_per_1000,
        per_master_cpu_s_per_1000: unbatched.per_master.clone(),
        cross_bank_transfers: unbatched.cross_bank_transfers,
        cluster_over_single: unbatched.cpu_s_per_1000 / single.0.max(1e-12),
        cross_over_same: cross_cost / single.0.max(1e-12),
        batched_transfers_per_s: batched.transfers_per_s,
        batched_redis_cpu_s_per_1000: batched.cpu_s_per_1000,
        batched_over_single_batched: batched.cpu_s_per_1000 / single.1.max(1e-12),
        verified: unbatched.verified && batched.verified,
        failed_checks,
    })
}

/// One measured run on the cluster.
struct ClusterRun {
    transfers: u64,
    transfers_per_s: f64,
    cpu_s_per_1000: f64,
    per_master: Vec<f64>,
    cross_bank_transfers: u64,
    verified: bool,
    failed_checks: Vec<String>,
}

impl ClusterRun {
    /// Loads the accounts afresh, runs `atomic` with `batch`, and verifies the result.
    async fn measure(
        config: &BenchConfig,
        target: &Target,
        keys: &Keys,
        accounts_path: &Path,
        masters: &mut [Connection],
        batch: usize,
    ) -> Result<ClusterRun> {
        let file = crate::ledger::accounts::load(accounts_path, None)?;
        crate::commands::init::init(target, keys, &file, KeyLayout::Ours, false).await?;
        let mut before = Vec::with_capacity(masters.len());
        for master in masters.iter_mut() {
            before.push(server_info::counters(master).await?);
        }
        let broker_config = run_config(config, target, keys, Strategy::Atomic, batch);
        let summary = broker::run(broker_config, None).await?;
        if let Some(error) = &summary.error {
            bail!("the atomic run (batch {batch}) on the cluster failed: {error}");
        }
        let transfers = summary.completed + summary.cancelled + summary.in_flight;
        let per = |cpu_s: f64| cpu_s * 1000.0 / transfers.max(1) as f64;
        let mut per_master = Vec::with_capacity(masters.len());
        for (master, before) in masters.iter_mut().zip(&before) {
            per_master.push(per(server_info::counters(master).await?.cpu_s - before.cpu_s));
        }
        let report = verify_final_state(target, keys, accounts_path).await?;
        Ok(ClusterRun {
            transfers,
            transfers_per_s: summary.transfers_per_s,
            cpu_s_per_1000: per_master.iter().sum(),
            per_master,
            cross_bank_transfers: summary.cross_bank,
            verified: report.verified,
            failed_checks: report
                .checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| c.name.to_string())
                .collect(),
        })
    }
}

/// `redis-benchmark` calling the transfer script by SHA: each call a complete interbank transfer
/// between two funded accounts, under its own random producer id. Its keys live under their own
/// prefix, removed afterwards.
async fn ceiling(
    config: &BenchConfig,
    server: &PrivateRedis,
    target: &Target,
    file: &crate::ledger::accounts::AccountsFile,
    conn: &mut Connection,
) -> Result<Row> {
    let keys = Keys::new(CEILING_PREFIX).map_err(anyhow::Error::msg)?;
    crate::commands::init::init(target, &keys, file, KeyLayout::Ours, false).await?;
    let from = &file.accounts[0];
    let to = file
        .accounts
        .iter()
        .find(|a| a.bank != from.bank)
        .context("the ceiling needs accounts of two banks: generate more accounts")?;
    for account in [from, to] {
        let bank = &file.banks[account.bank];
        dataset::set_balance(conn, &keys, bank, &account.iban, CEILING_BALANCE_CENTS).await?;
    }
    let script = TransferScript::default();
    script.load(conn).await?;
    let producer = "c-__rand_int__";
    let mut args: Vec<String> = [
        "-p",
        &server.port.to_string(),
        "-c",
        &config.ceiling_clients.to_string(),
        "-n",
        &config.ceiling_requests.to_string(),
        "-P",
        &config.ceiling_pipeline.to_string(),
        "-r",
        &CEILING_KEYSPACE.to_string(),
        "--csv",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let call = TransferRequest {
        from_bank: from.bank,
        to_bank: to.bank,
        from: &from.iban,
        to: &to.iban,
        amount_cents: CEILING_AMOUNT_CENTS,
    };
    args.extend(script.command_line(&keys, &file.banks, producer, 1, &call));
    let before = server_info::counters(conn).await?;
    let out = Command::new("redis-benchmark")
        .args(&args)
        .output()
        .context("running redis-benchmark: is it installed? (it comes with redis-server)")?;
    let after = server_info::counters(conn).await?;
    ensure!(
        out.status.success(),
        "redis-benchmark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8_lossy(&out.stdout);
    let (rps, p50, p99) = parse_benchmark_csv(&csv)?;
    dataset::remove_our_keys(conn, &keys).await?;
    let transfers = config.ceiling_requests;
    let per = |x: f64| x / transfers as f64;
    Ok(Row {
        name: format!("ceiling: redis-benchmark EVALSHA -P {}", config.ceiling_pipeline),
        transfers,
        transfers_per_s: rps,
        p50_ms: p50,
        p99_ms: p99,
        p999_ms: None,
        redis_cpu_s_per_1000: per(after.cpu_s - before.cpu_s) * 1000.0,
        commands_per_transfer: per((after.commands - before.commands).saturating_sub(1) as f64),
        round_trips_per_transfer: 1.0 / f64::from(config.ceiling_pipeline),
    })
}

/// Requests per second, p50 and p99 (ms) from `redis-benchmark --csv`.
fn parse_benchmark_csv(csv: &str) -> Result<(f64, f64, f64)> {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> =
        lines.next().context("redis-benchmark printed nothing")?.split(',').collect();
    let values: Vec<&str> =
        lines.next().context("redis-benchmark printed no result")?.split(',').collect();
    let get = |name: &str| -> Result<f64> {
        let i = header
            .iter()
            .position(|h| h.trim_matches('"') == name)
            .with_context(|| format!("redis-benchmark's CSV has no {name} column"))?;
        values
            .get(i)
            .map(|v| v.trim_matches('"'))
            .unwrap_or("")
            .parse()
            .with_context(|| format!("{name} is not a number"))
    };
    Ok((get("rps")?, get("p50_latency_ms")?, get("p99_latency_ms")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_benchmark_csv_is_read_by_column_name() {
        let csv = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\"EVALSHA\",\"51234.50\",\"1.0\",\"0.1\",\"0.900\",\"2.0\",\"3.500\",\"9.0\"\n";
        assert_eq!(parse_benchmark_csv(csv).unwrap(), (51234.5, 0.9, 3.5));
        assert!(parse_benchmark_csv("").is_err());
        assert!(parse_benchmark_csv("\"test\",\"rps\"\n").is_err());
    }
}
