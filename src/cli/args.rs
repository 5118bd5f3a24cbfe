//! The flags of every command, as clap reads them. Only this module knows clap: the library's
//! types (such as [`Strategy`]) know nothing of flags, and [`StrategyArg`] maps onto them.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};

use interbank::commands::broker::{DEFAULT_LINGER_MS, Pairs};
use interbank::ledger::runs::Strategy;
use interbank::store::keys::{DEFAULT_PREFIX, KeyLayout, Keys};
use interbank::store::target::{DEFAULT_REDIS_URL, Target, TlsFiles};

/// An interbank transfer broker on Redis that proves no money is lost or doubled.
#[derive(Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Clone)]
pub struct RedisArgs {
    /// Redis URL: redis://[user:password@]host:port[/db], rediss:// for TLS, unix:///path.
    #[arg(long, env = "REDIS_URL", default_value = DEFAULT_REDIS_URL, hide_env_values = true)]
    pub redis_url: String,
    /// PEM file of the CA that signed the server's certificate (rediss:// with a private CA).
    #[arg(long, env = "REDIS_TLS_CA_CERT")]
    pub tls_ca_cert: Option<PathBuf>,
    /// PEM client certificate, for servers that require one (with --tls-key).
    #[arg(long, env = "REDIS_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM client key, for servers that require a client certificate (with --tls-cert).
    #[arg(long, env = "REDIS_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Prefix of every key this tool uses.
    #[arg(long, env = "INTERBANK_PREFIX", default_value = DEFAULT_PREFIX)]
    pub prefix: String,
}

impl RedisArgs {
    pub fn target(&self) -> Target {
        let tls = TlsFiles {
            ca_cert: self.tls_ca_cert.clone(),
            client_cert: self.tls_cert.clone(),
            client_key: self.tls_key.clone(),
        };
        Target::with_tls(&self.redis_url, tls)
    }

    pub fn keys(&self) -> Result<Keys> {
        Keys::new(&self.prefix).map_err(anyhow::Error::msg)
    }
}

/// The accounts file and its banks file, as `init` loads them and `consume` checks them.
#[derive(Args, Clone)]
pub struct FileArgs {
    /// The accounts file (iban,bank,name,ammount); consume needs the one init loaded.
    #[arg(long, default_value = "data/accounts_100.csv")]
    pub accounts: PathBuf,
    /// The banks file; by default banks.csv beside the accounts file.
    #[arg(long)]
    pub banks: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Write a random, reproducible accounts file and the banks file.
    Gen(GenArgs),
    /// Validate an accounts file, then replace this tool's keys in Redis with it.
    Init(InitArgs),
    /// Run concurrent workers that make random transfers.
    Broker(BrokerArgs),
    /// Measure, in one run on a private redis-server: the seed's protocol, atomic, atomic
    /// batched, and the script's ceiling with redis-benchmark; then verify the final state.
    Bench(BenchArgs),
    /// Follow the event stream, rebuild every balance, and check Redis against it.
    Consume(ConsumeArgs),
    /// Carry every cross-bank transfer still in flight to its end (Redis Cluster; after a broker
    /// was killed mid-transfer).
    Recover(RecoverArgs),
    /// Show the data set as it is now: money conserved, banks, the interbank matrix, runs,
    /// streams, consumers and the last verdict (read-only).
    Status(StatusArgs),
    /// Serve a read-only live dashboard, its JSON API and /metrics (127.0.0.1 by default).
    Serve(ServeArgs),
}

/// The flags of `interbank gen`.
#[derive(Args)]
pub struct GenArgs {
    /// How many accounts.
    #[arg(long, default_value_t = 100)]
    pub accounts: u64,
    /// Seed of the random generator: the same seed gives the same file. Random when omitted.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Folder to write accounts_<N>.csv and banks.csv into.
    #[arg(long, default_value = "data")]
    pub out: PathBuf,
}

/// The flags of `interbank init`.
#[derive(Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub redis: RedisArgs,
    #[command(flatten)]
    pub files: FileArgs,
    /// Which keys to load: this tool's own, or the Go demo's (`seed`), for its consumer and
    /// dashboards (single server only).
    #[arg(long, value_enum, default_value = "ours")]
    pub layout: LayoutArg,
    /// Remove the Go demo's events found under the prefix (refused without it, so that they are
    /// audited first).
    #[arg(long)]
    pub replace: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The flags of `interbank broker`.
#[derive(Args)]
pub struct BrokerArgs {
    #[command(flatten)]
    pub redis: RedisArgs,
    /// How transfers are made: atomic (safe), or watch and naive (unsafe, for comparison).
    #[arg(long, value_enum, default_value_t = StrategyArg::Atomic)]
    pub strategy: StrategyArg,
    /// Concurrent workers.
    #[arg(long, default_value_t = 20)]
    pub workers: u32,
    /// Transfers per worker.
    #[arg(long, default_value_t = 5000)]
    pub transfers: u64,
    /// Smallest amount, in cents.
    #[arg(long, default_value_t = 100, allow_negative_numbers = true)]
    pub min_amount: i64,
    /// Largest amount, in cents.
    #[arg(long, default_value_t = 5000, allow_negative_numbers = true)]
    pub max_amount: i64,
    /// Transfers per script call (atomic only). On a cluster at 1, each debit between banks is a
    /// call of its own and a courier credits and settles many at a time.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Workers hand each transfer to one committer per connection, which sends all those
    /// waiting in one script call (atomic only; each worker still waits for its outcome).
    #[arg(long)]
    pub group_commit: bool,
    /// Shared connections for atomic and naive (watch uses one per worker).
    #[arg(long, default_value_t = 2)]
    pub connections: usize,
    /// Seed of the random choices. Random when omitted; printed in the summary.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Which pairs of accounts transfers are between: any two, two of one bank, or two of
    /// different banks (to measure transfers inside a bank and between banks apart).
    #[arg(long, value_enum, default_value_t = PairsArg::Any)]
    pub pairs: PairsArg,
    /// Start transfers on a schedule, this many per second over all workers, instead of as fast
    /// as they go; latencies then count from each call's scheduled start, so falling behind
    /// shows (a steady load, to watch live or to compare setups at the same load).
    #[arg(long, value_name = "TRANSFERS_PER_S")]
    pub rate: Option<u64>,
    /// Redis Cluster: how long the courier gathers debited transfers before it
    /// credits and settles them, in ms. Longer makes bigger calls (less Redis CPU per transfer
    /// between banks) and keeps the money in flight longer.
    #[arg(long, default_value_t = DEFAULT_LINGER_MS)]
    pub linger_ms: u64,
    /// Write this tool's keys, or the Go demo's (`seed`: its keys and events, each transfer one
    /// atomic, idempotent script; needs `init --layout seed`).
    #[arg(long, value_enum, default_value = "ours")]
    pub layout: LayoutArg,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The flags of `interbank bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Accounts in the generated data set.
    #[arg(long, default_value_t = 100)]
    pub accounts: u64,
    /// Concurrent workers of each run.
    #[arg(long, default_value_t = 20)]
    pub workers: u32,
    /// Transfers per worker in each run.
    #[arg(long, default_value_t = 5000)]
    pub transfers: u64,
    /// Smallest amount, in cents.
    #[arg(long, default_value_t = 100)]
    pub min_amount: i64,
    /// Largest amount, in cents.
    #[arg(long, default_value_t = 5000)]
    pub max_amount: i64,
    /// Transfers per script call in the batched run.
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Shared connections of the atomic runs.
    #[arg(long, default_value_t = 2)]
    pub connections: usize,
    /// Script calls made by redis-benchmark for the ceiling.
    #[arg(long, default_value_t = 200_000)]
    pub ceiling_requests: u64,
    /// Seed of the data set and of the transfers.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Folder for the generated data set.
    #[arg(long, default_value = "data/bench")]
    pub out: PathBuf,
    /// Also run atomic on a private Redis Cluster of 3 masters and compare its Redis CPU.
    #[arg(long)]
    pub cluster: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The flags of `interbank consume`.
#[derive(Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub redis: RedisArgs,
    #[command(flatten)]
    pub files: FileArgs,
    /// Seconds without a new event after which to verify even if a run has not ended.
    #[arg(long, default_value_t = 10.0, allow_negative_numbers = true)]
    pub idle_timeout: f64,
    /// This consumer's name; its checkpoint is stored as <prefix>:consumer:<name>.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Seconds between checkpoints while following the stream; 0 stores none.
    #[arg(long, default_value_t = 5.0, allow_negative_numbers = true)]
    pub checkpoint_interval: f64,
    /// Ignore this consumer's checkpoint and replay the stream from its start.
    #[arg(long)]
    pub restart: bool,
    /// No progress display.
    #[arg(long)]
    pub quiet: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write a stand-alone HTML report of the verification to this file.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
    /// `seed`: audit a data set in the Go demo's layout (its keys and `P:transactions`), written
    /// by the demo or by `broker --layout seed`, without changing it.
    #[arg(long, value_enum, default_value = "ours")]
    pub layout: LayoutArg,
}

/// The flags of `interbank status`.
#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Print the overview as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The flags of `interbank serve`.
#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub redis: RedisArgs,
    /// The address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Allow an address that other machines can reach (needs --token-file).
    #[arg(long)]
    pub public: bool,
    /// A file holding the bearer token every request must carry (at least 16 characters).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Seconds between two reads of Redis.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub refresh: f64,
}

/// The flags of `interbank recover`.
#[derive(Args)]
pub struct RecoverArgs {
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `--layout`, as the library's [`KeyLayout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LayoutArg {
    /// This tool's keys: per-bank hash tags, typed events, idempotency keys.
    Ours,
    /// The Go demo's keys and events (`P:accounts:IBAN`, `P:banks:B`, `P:balances:A:B`,
    /// `P:transactions` with a `json` field).
    Seed,
}

impl From<LayoutArg> for KeyLayout {
    fn from(arg: LayoutArg) -> KeyLayout {
        match arg {
            LayoutArg::Ours => KeyLayout::Ours,
            LayoutArg::Seed => KeyLayout::Seed,
        }
    }
}

/// `--strategy`, as the library's [`Strategy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyArg {
    /// One server-side script per call: checked, applied and evented atomically, idempotent.
    Atomic,
    /// The seed's protocol: WATCH/GET/MULTI/INCRBY/EXEC, then the other writes one by one (unsafe).
    Watch,
    /// GET then INCRBY with nothing in between to stop a race (unsafe, on purpose).
    Naive,
}

/// `--pairs`, as the library's [`Pairs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PairsArg {
    /// Any two distinct accounts, uniformly.
    Any,
    /// Two accounts of one bank.
    SameBank,
    /// Two accounts of different banks.
    CrossBank,
}

impl From<PairsArg> for Pairs {
    fn from(arg: PairsArg) -> Pairs {
        match arg {
            PairsArg::Any => Pairs::Any,
            PairsArg::SameBank => Pairs::SameBank,
            PairsArg::CrossBank => Pairs::CrossBank,
        }
    }
}

impl From<StrategyArg> for Strategy {
    fn from(arg: StrategyArg) -> Strategy {
        match arg {
            StrategyArg::Atomic => Strategy::Atomic,
            StrategyArg::Watch => Strategy::Watch,
            StrategyArg::Naive => Strategy::Naive,
        }
    }
}
