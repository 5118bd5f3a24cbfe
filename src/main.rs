//! The `interbank` command line: parses flags and calls the library; nothing else lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use interbank::bench::{self, BenchConfig};
use interbank::broker::{self, BrokerConfig};
use interbank::connection::{DEFAULT_REDIS_URL, Target, TlsFiles};
use interbank::consume::{self, ConsumeConfig};
use interbank::keys::{DEFAULT_PREFIX, Keys};
use interbank::runs::Strategy;
use interbank::{accounts, generate, init};

/// The allocator: the stream reader allocates per reply field, and mimalloc makes that cheap.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An interbank transfer broker on Redis that proves no money is lost or doubled.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct RedisArgs {
    /// Redis URL: redis://[user:password@]host:port[/db], rediss:// for TLS, unix:///path.
    #[arg(long, env = "REDIS_URL", default_value = DEFAULT_REDIS_URL, hide_env_values = true)]
    redis_url: String,
    /// PEM file of the CA that signed the server's certificate (rediss:// with a private CA).
    #[arg(long, env = "REDIS_TLS_CA_CERT")]
    tls_ca_cert: Option<PathBuf>,
    /// PEM client certificate, for servers that require one (with --tls-key).
    #[arg(long, env = "REDIS_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM client key, for servers that require a client certificate (with --tls-cert).
    #[arg(long, env = "REDIS_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Prefix of every key this tool uses.
    #[arg(long, env = "INTERBANK_PREFIX", default_value = DEFAULT_PREFIX)]
    prefix: String,
}

impl RedisArgs {
    fn target(&self) -> Target {
        let tls = TlsFiles {
            ca_cert: self.tls_ca_cert.clone(),
            client_cert: self.tls_cert.clone(),
            client_key: self.tls_key.clone(),
        };
        Target::with_tls(&self.redis_url, tls)
    }

    fn keys(&self) -> Result<Keys> {
        Keys::new(&self.prefix).map_err(anyhow::Error::msg)
    }
}

/// The accounts file and its banks file, as `init` loads them and `consume` checks them.
#[derive(Args, Clone)]
struct FileArgs {
    /// The accounts file (iban,bank,name,ammount); consume needs the one init loaded.
    #[arg(long, default_value = "data/accounts_100.csv")]
    accounts: PathBuf,
    /// The banks file; by default banks.csv beside the accounts file.
    #[arg(long)]
    banks: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Write a random, reproducible accounts file and the banks file.
    Gen {
        /// How many accounts.
        #[arg(long, default_value_t = 100)]
        accounts: u64,
        /// Seed of the random generator: the same seed gives the same file. Random when omitted.
        #[arg(long)]
        seed: Option<u64>,
        /// Folder to write accounts_<N>.csv and banks.csv into.
        #[arg(long, default_value = "data")]
        out: PathBuf,
    },
    /// Validate an accounts file, then replace this tool's keys in Redis with it.
    Init {
        #[command(flatten)]
        redis: RedisArgs,
        #[command(flatten)]
        files: FileArgs,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run concurrent workers that make random transfers.
    Broker {
        #[command(flatten)]
        redis: RedisArgs,
        /// How transfers are made: atomic (safe), or watch and naive (unsafe, for comparison).
        #[arg(long, value_enum, default_value_t = Strategy::Atomic)]
        strategy: Strategy,
        /// Concurrent workers.
        #[arg(long, default_value_t = 20)]
        workers: u32,
        /// Transfers per worker.
        #[arg(long, default_value_t = 5000)]
        transfers: u64,
        /// Smallest amount, in cents.
        #[arg(long, default_value_t = 100, allow_negative_numbers = true)]
        min_amount: i64,
        /// Largest amount, in cents.
        #[arg(long, default_value_t = 5000, allow_negative_numbers = true)]
        max_amount: i64,
        /// Transfers per script call (atomic only).
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Workers hand each transfer to one committer per connection, which sends all those
        /// waiting in one script call (atomic only; each worker still waits for its outcome).
        #[arg(long)]
        group_commit: bool,
        /// Shared connections for atomic and naive (watch uses one per worker).
        #[arg(long, default_value_t = 2)]
        connections: usize,
        /// Seed of the random choices. Random when omitted; printed in the summary.
        #[arg(long)]
        seed: Option<u64>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure, in one run on a private redis-server: the seed's protocol, atomic, atomic
    /// batched, and the script's ceiling with redis-benchmark; then verify the final state.
    Bench {
        /// Accounts in the generated data set.
        #[arg(long, default_value_t = 100)]
        accounts: u64,
        /// Concurrent workers of each run.
        #[arg(long, default_value_t = 20)]
        workers: u32,
        /// Transfers per worker in each run.
        #[arg(long, default_value_t = 5000)]
        transfers: u64,
        /// Smallest amount, in cents.
        #[arg(long, default_value_t = 100)]
        min_amount: i64,
        /// Largest amount, in cents.
        #[arg(long, default_value_t = 5000)]
        max_amount: i64,
        /// Transfers per script call in the batched run.
        #[arg(long, default_value_t = 128)]
        batch: usize,
        /// Shared connections of the atomic runs.
        #[arg(long, default_value_t = 2)]
        connections: usize,
        /// Script calls made by redis-benchmark for the ceiling.
        #[arg(long, default_value_t = 200_000)]
        ceiling_requests: u64,
        /// Seed of the data set and of the transfers.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Folder for the generated data set.
        #[arg(long, default_value = "data/bench")]
        out: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Follow the event stream, rebuild every balance, and check Redis against it.
    Consume {
        #[command(flatten)]
        redis: RedisArgs,
        #[command(flatten)]
        files: FileArgs,
        /// Seconds without a new event after which to verify even if a run has not ended.
        #[arg(long, default_value_t = 10.0, allow_negative_numbers = true)]
        idle_timeout: f64,
        /// This consumer's name; its checkpoint is stored as <prefix>:consumer:<name>.
        #[arg(long, default_value = "default")]
        name: String,
        /// Seconds between checkpoints while following the stream; 0 stores none.
        #[arg(long, default_value_t = 5.0, allow_negative_numbers = true)]
        checkpoint_interval: f64,
        /// Ignore this consumer's checkpoint and replay the stream from its start.
        #[arg(long)]
        restart: bool,
        /// No progress display.
        #[arg(long)]
        quiet: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Seconds from a flag, checked against bounds, in milliseconds.
fn seconds_flag(flag: &str, seconds: f64, min: f64, max: f64) -> Result<u64> {
    anyhow::ensure!(
        seconds.is_finite() && (min..=max).contains(&seconds),
        "{flag} must be {min} to {max} seconds; got {seconds}"
    );
    Ok((seconds * 1000.0) as u64)
}

/// Writes to standard output; a reader that went away (`| head`) is not an error.
fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(err.into()),
        _ => Ok(()),
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    emit(&format!("{}\n", serde_json::to_string_pretty(value)?))
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Gen { accounts, seed, out } => {
            let seed = seed.unwrap_or_else(rand::random);
            let done = generate::generate(&out, accounts, seed)?;
            emit(&format!(
                "wrote {} accounts ({} cents) to {} and the banks to {} (seed {seed})\n",
                done.accounts,
                done.total_cents,
                done.accounts_path.display(),
                done.banks_path.display()
            ))?;
        }
        Command::Init { redis, files, json } => {
            let keys = redis.keys()?;
            let file = accounts::load(&files.accounts, files.banks.as_deref())?;
            let report = init::init(&redis.target(), &keys, &file).await?;
            if json {
                print_json(&report)?;
            } else {
                emit(&format!(
                    "loaded {} accounts of {} banks ({} cents) from {} under {}:* in {} ms; removed {} old keys\n\
                     {} of the IBANs carry their bank's entity code (the bank column is taken as the truth)\n",
                    report.accounts,
                    report.banks,
                    report.total_cents,
                    files.accounts.display(),
                    keys.prefix(),
                    report.elapsed_ms,
                    report.removed_keys,
                    report.entity_codes_matching
                ))?;
            }
        }
        Command::Broker {
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
            quiet,
            json,
        } => {
            let config = BrokerConfig {
                keys: redis.keys()?,
                target: redis.target(),
                strategy,
                workers,
                transfers_per_worker: transfers,
                min_amount_cents: min_amount,
                max_amount_cents: max_amount,
                batch,
                group_commit,
                connections,
                seed: seed.unwrap_or_else(rand::random),
                progress: !quiet && !json,
            };
            let summary = broker::run(config).await?;
            if json {
                print_json(&summary)?;
            } else {
                emit(&format!("{}\n", summary.to_text()))?;
            }
            if summary.error.is_some() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Bench {
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
            json,
        } => {
            let config = BenchConfig {
                accounts,
                workers,
                transfers_per_worker: transfers,
                min_amount_cents: min_amount,
                max_amount_cents: max_amount,
                batch,
                connections,
                ceiling_requests,
                ceiling_clients: 50,
                ceiling_pipeline: 16,
                seed,
            };
            let report = bench::run(config, &out, |step| eprintln!("bench: {step}")).await?;
            if json {
                print_json(&report)?;
            } else {
                emit(&report.to_text())?;
            }
            if !report.verified {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Consume {
            redis,
            files,
            idle_timeout,
            name,
            checkpoint_interval,
            restart,
            quiet,
            json,
        } => {
            let config = ConsumeConfig {
                keys: redis.keys()?,
                target: redis.target(),
                accounts_path: files.accounts,
                banks_path: files.banks,
                idle_timeout_ms: seconds_flag("--idle-timeout", idle_timeout, 0.1, 86_400.0)?,
                progress: !quiet && !json,
                name,
                checkpoint_interval_ms: seconds_flag(
                    "--checkpoint-interval",
                    checkpoint_interval,
                    0.0,
                    86_400.0,
                )?,
                restart,
            };
            let consumed = consume::consume(&config).await?;
            if json {
                print_json(&consumed)?;
            } else {
                emit(&consumed.to_text())?;
            }
            if !consumed.report.verified {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("interbank: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
