//! The command line: reads the flags ([`args`]), calls the library's commands, and shows what they
//! return ([`render`], [`progress`]). Exit codes: 0 when the command did what it was asked and its
//! verdict holds, 1 when a run failed or a check did not hold, 2 on an error (bad flags or files,
//! an unreachable Redis).
//!
//! May import: the library (`interbank::*`), clap, indicatif. Holds no logic of its own.

pub mod args;
pub mod progress;
pub mod render;
pub mod seed_view;
pub mod status_view;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;

use args::{
    BenchArgs, BrokerArgs, Cli, Command, ConsumeArgs, GenArgs, InitArgs, LayoutArg, RecoverArgs,
    ServeArgs, StatusArgs,
};
use interbank::commands::bench::{self, BenchConfig};
use interbank::commands::broker::{self, BrokerConfig};
use interbank::commands::consume::{self, ConsumeConfig};
use interbank::commands::seed_audit::{self, SeedAuditConfig};
use interbank::commands::serve::{self, ServeConfig};
use interbank::commands::{Progress, generate, init, recover, status};
use interbank::ledger::accounts;
use progress::Bar;

/// `redis-benchmark`'s clients and pipeline depth for bench's ceiling: the figures of record.
const CEILING_CLIENTS: u32 = 50;
const CEILING_PIPELINE: u32 = 16;
/// `bench --cluster`: masters of the private cluster.
const CLUSTER_MASTERS: usize = 3;

/// Runs the command the flags name.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Gen(args) => gen_command(args),
        Command::Init(args) => init_command(args).await,
        Command::Broker(args) => broker_command(args).await,
        Command::Bench(args) => bench_command(args).await,
        Command::Consume(args) => consume_command(args).await,
        Command::Recover(args) => recover_command(args).await,
        Command::Status(args) => status_command(args).await,
        Command::Serve(args) => serve_command(args).await,
    }
}

fn gen_command(GenArgs { accounts, seed, out }: GenArgs) -> Result<ExitCode> {
    let seed = seed.unwrap_or_else(rand::random);
    let done = generate::generate(&out, accounts, seed)?;
    emit(&render::generated(&done, seed))?;
    Ok(ExitCode::SUCCESS)
}

async fn init_command(
    InitArgs { redis, files, layout, replace, json }: InitArgs,
) -> Result<ExitCode> {
    let keys = redis.keys()?;
    let file = accounts::load(&files.accounts, files.banks.as_deref())?;
    let report = init::init(&redis.target(), &keys, &file, layout.into(), replace).await?;
    if json {
        print_json(&report)?;
    } else {
        emit(&render::init_report(&report, &files.accounts, keys.prefix()))?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn broker_command(args: BrokerArgs) -> Result<ExitCode> {
    let BrokerArgs {
        redis,
        strategy,
        workers,
        transfers,
        min_amount,
        max_amount,
        batch,
        group_commit,
        connections,
        seed,
        pairs,
        rate,
        linger_ms,
        layout,
        quiet,
        json,
    } = args;
    let config = BrokerConfig {
        keys: redis.keys()?,
        target: redis.target(),
        strategy: strategy.into(),
        workers,
        transfers_per_worker: transfers,
        min_amount_cents: min_amount,
        max_amount_cents: max_amount,
        batch,
        group_commit,
        connections,
        seed: seed.unwrap_or_else(rand::random),
        key_layout: layout.into(),
        pairs: pairs.into(),
        rate_per_s: rate,
        linger_ms,
    };
    let progress: Option<Arc<dyn Progress>> =
        (!quiet && !json).then(|| Arc::new(Bar::transfers(config.planned())) as Arc<dyn Progress>);
    let summary = broker::run(config, progress).await?;
    if json {
        print_json(&summary)?;
    } else {
        emit(&format!("{}\n", render::broker_summary(&summary)))?;
    }
    Ok(if summary.error.is_some() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

async fn bench_command(args: BenchArgs) -> Result<ExitCode> {
    let BenchArgs {
        accounts,
        workers,
        transfers,
        min_amount,
        max_amount,
        batch,
        connections,
        ceiling_requests,
        seed,
        out,
        cluster,
        json,
    } = args;
    let config = BenchConfig {
        accounts,
        workers,
        transfers_per_worker: transfers,
        min_amount_cents: min_amount,
        max_amount_cents: max_amount,
        batch,
        connections,
        ceiling_requests,
        ceiling_clients: CEILING_CLIENTS,
        ceiling_pipeline: CEILING_PIPELINE,
        seed,
        cluster_masters: if cluster { CLUSTER_MASTERS } else { 0 },
    };
    let report = bench::run(config, &out, |step| eprintln!("bench: {step}")).await?;
    if json {
        print_json(&report)?;
    } else {
        emit(&render::bench_report(&report))?;
    }
    let cluster_verified = report.cluster.as_ref().is_none_or(|c| c.verified);
    Ok(if report.verified && cluster_verified { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn consume_command(args: ConsumeArgs) -> Result<ExitCode> {
    let ConsumeArgs {
        redis,
        files,
        idle_timeout,
        name,
        checkpoint_interval,
        restart,
        quiet,
        json,
        report,
        layout,
    } = args;
    if layout == LayoutArg::Seed {
        anyhow::ensure!(
            report.is_none(),
            "--report shows this tool's own layout only; drop it with --layout seed"
        );
        let config = SeedAuditConfig {
            target: redis.target(),
            keys: redis.keys()?,
            accounts_path: files.accounts,
            banks_path: files.banks,
            idle_timeout_ms: seconds_flag("--idle-timeout", idle_timeout, 0.1, 86_400.0)?,
        };
        let audited = seed_audit::audit(&config, &Bar::events(!quiet && !json)).await?;
        if json {
            print_json(&audited)?;
        } else {
            emit(&seed_view::render(&audited))?;
        }
        return Ok(if audited.clean() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    let config = ConsumeConfig {
        keys: redis.keys()?,
        target: redis.target(),
        accounts_path: files.accounts,
        banks_path: files.banks,
        idle_timeout_ms: seconds_flag("--idle-timeout", idle_timeout, 0.1, 86_400.0)?,
        name,
        checkpoint_interval_ms: seconds_flag(
            "--checkpoint-interval",
            checkpoint_interval,
            0.0,
            86_400.0,
        )?,
        restart,
        report,
    };
    let consumed = consume::consume(&config, &Bar::events(!quiet && !json)).await?;
    if json {
        print_json(&consumed)?;
    } else {
        emit(&render::consumed(&consumed))?;
    }
    Ok(if consumed.report.verified { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn recover_command(RecoverArgs { redis, json }: RecoverArgs) -> Result<ExitCode> {
    let recovered = recover::recover(&redis.target(), &redis.keys()?).await?;
    if json {
        print_json(&recovered)?;
    } else {
        emit(&render::recovered(&recovered))?;
    }
    let finished = recovered.left_in_flight == 0 && recovered.failed == 0;
    Ok(if finished { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn status_command(StatusArgs { redis, json }: StatusArgs) -> Result<ExitCode> {
    let overview = status::status(&redis.target(), &redis.keys()?).await?;
    if json {
        print_json(&overview)?;
    } else {
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        emit(&status_view::render(&overview, colour))?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve_command(args: ServeArgs) -> Result<ExitCode> {
    let ServeArgs { redis, listen, public, token_file, refresh } = args;
    let token = match token_file {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|err| {
                anyhow::anyhow!("cannot read the token file {}: {err}", path.display())
            })?;
            Some(text.trim().to_string())
        }
    };
    let config = ServeConfig {
        target: redis.target(),
        keys: redis.keys()?,
        listen,
        public,
        token,
        refresh_ms: seconds_flag("--refresh", refresh, 0.2, 3_600.0)?,
    };
    serve::serve(config, |address| {
        eprintln!("interbank: dashboard on http://{address}/ (metrics on /metrics; Ctrl-C stops)");
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// Seconds from a flag, checked against bounds, in milliseconds.
fn seconds_flag(flag: &str, seconds: f64, min_s: f64, max_s: f64) -> Result<u64> {
    anyhow::ensure!(
        seconds.is_finite() && (min_s..=max_s).contains(&seconds),
        "{flag} must be {min_s} to {max_s} seconds; got {seconds}"
    );
    // In bounds and finite, so the product is a small non-negative whole number of ms.
    Ok((seconds * 1000.0).round() as u64)
}

/// Writes to standard output; a reader that went away (`| head`) is not an error.
fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(err.into()),
        _ => Ok(()),
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    emit(&format!("{}\n", serde_json::to_string_pretty(value)?))
}
