//! `consume --layout seed`: audits a data set in the Go demo's key layout without changing it.
//! Replays the demo's events (`P:transactions`, field `json`) over the accounts file, reads every
//! account, bank and pair key, and says key by key what differs and what it means: money missing
//! or created, transfers half applied (a broker killed between its commands), error events and
//! what they left, Redis's own sums. Works on data the demo wrote (no `P:meta` needed) and on
//! data `broker --layout seed` wrote (then also: events = transfers its producers applied).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde::Serialize;

use crate::commands::Progress;
use crate::ledger::accounts::{self, AccountsFile};
use crate::ledger::runs::{RunStatus, Strategy};
use crate::ledger::seed_layout::{KeyRef, SeedAudit, SeedReplay, parse_entry};
use crate::store::connection::Connection;
use crate::store::keys::{KeyLayout, Keys};
use crate::store::meta::{self, NotLoaded};
use crate::store::stream_reader::StreamReader;
use crate::store::target::Target;
use crate::store::xread_reply::Chunk;
use crate::store::{runs, seed_state};

/// Entries asked for per `XREAD`, and how long one read waits for new ones.
const READ_COUNT: usize = 10_000;
const BLOCK_MS: u64 = 250;
/// Reads after the runs ended, to the end of the stream (each of [`READ_COUNT`] entries).
const MAX_DRAIN_READS: usize = 1_000_000;

/// What the audit is asked to do.
#[derive(Debug, Clone)]
pub struct SeedAuditConfig {
    pub target: Target,
    pub keys: Keys,
    pub accounts_path: std::path::PathBuf,
    pub banks_path: Option<std::path::PathBuf>,
    /// Stop following after this long without a new event, even if a run has not ended.
    pub idle_timeout_ms: u64,
}

/// What the audit found, with what is needed to name its keys.
#[derive(Debug, Clone, Serialize)]
pub struct SeedAudited {
    pub audit: SeedAudit,
    pub stream: String,
    /// Runs of `broker --layout seed` found under the prefix: transfers their producers applied
    /// (one event each), to compare with the events in the stream.
    pub runs_applied: Option<u64>,
    #[serde(skip)]
    pub keys: Keys,
    #[serde(skip)]
    pub banks: Vec<String>,
    #[serde(skip)]
    pub ibans: Vec<String>,
}

impl SeedAudited {
    /// Whether the data set holds exactly what its events say, and its runs' counts agree.
    pub fn clean(&self) -> bool {
        let counted = self.audit.statuses.total() + self.audit.malformed.total;
        self.audit.clean() && self.runs_applied.is_none_or(|applied| applied == counted)
    }

    /// The Redis key `key` stands for.
    pub fn key_name(&self, key: KeyRef) -> String {
        match key {
            KeyRef::Account(i) => self.keys.seed_account(&self.ibans[i]),
            KeyRef::Bank(b) => self.keys.seed_bank(&self.banks[b]),
            KeyRef::Pair(a, b) => self.keys.seed_pair(&self.banks[a], &self.banks[b]),
        }
    }
}

/// Audits the data set under `config.keys` in the demo's layout.
pub async fn audit(config: &SeedAuditConfig, progress: &dyn Progress) -> Result<SeedAudited> {
    let file = accounts::load(&config.accounts_path, config.banks_path.as_deref())?;
    let mut conn = Connection::open(&config.target).await?;
    ensure!(
        !conn.is_cluster(),
        "{} is a Redis Cluster: the Go demo's layout lives on one server",
        config.target
    );
    let ours = check_meta(&mut conn, &config.keys, &file).await?;
    let stream = config.keys.seed_stream();
    let mut replay = SeedReplay::new(&file);
    follow(config, &stream, &mut replay, progress, ours).await?;
    progress.finish();
    let state = seed_state::read(&mut conn, &config.keys, &file).await?;
    let audit = replay.audit(&state);
    ensure!(
        audit.our_layout == 0,
        "{stream} holds {} entries of this tool's own layout: audit it with `interbank consume` (without --layout seed)",
        audit.our_layout
    );
    let runs_applied = if ours { Some(applied(&mut conn, &config.keys).await?) } else { None };
    Ok(SeedAudited {
        audit,
        stream,
        runs_applied,
        keys: config.keys.clone(),
        banks: file.banks.clone(),
        ibans: file.accounts.iter().map(|a| a.iban.clone()).collect(),
    })
}

/// Whether `P:meta` says `init --layout seed` loaded this file (then our broker's runs are
/// checked too). No meta at all is the demo's own data: audited against the file given.
async fn check_meta(conn: &mut Connection, keys: &Keys, file: &AccountsFile) -> Result<bool> {
    match meta::read_layout(conn, keys, KeyLayout::Seed).await {
        Ok(meta) => {
            ensure!(
                meta.sha256 == file.sha256,
                "{} was loaded from another accounts file than {}: pass the file `init --layout seed` loaded",
                keys.meta(),
                file.path.display()
            );
            Ok(true)
        }
        Err(err) if err.downcast_ref::<NotLoaded>().is_some() => Ok(false),
        Err(err) => Err(err),
    }
}

/// Reads the stream from its start, replaying each entry; follows it while one of our runs is
/// still running (until `idle_timeout_ms` without a new entry), then to its end.
async fn follow(
    config: &SeedAuditConfig,
    stream: &str,
    replay: &mut SeedReplay,
    progress: &dyn Progress,
    ours: bool,
) -> Result<()> {
    let mut reader = StreamReader::connect(&config.target, stream, READ_COUNT, BLOCK_MS).await?;
    let mut conn = Connection::open(&config.target).await?;
    let mut chunk = Chunk::default();
    let mut last_id = "0-0".to_string();
    let mut last_event_at = Instant::now();
    let mut read: u64 = 0;
    loop {
        reader.read(&last_id, true, &mut chunk).await?;
        if !chunk.is_empty() {
            read += chunk.len() as u64;
            apply(replay, &chunk, &mut last_id)?;
            progress.update(read);
            last_event_at = Instant::now();
            continue;
        }
        let running = ours
            && runs::read_all(&mut conn, &config.keys)
                .await?
                .iter()
                .any(|r| r.status == RunStatus::Running);
        if !running || last_event_at.elapsed() >= Duration::from_millis(config.idle_timeout_ms) {
            // A run records its end after its last events: read what came meanwhile, to the end.
            for _ in 0..MAX_DRAIN_READS {
                reader.read(&last_id, false, &mut chunk).await?;
                if chunk.is_empty() {
                    return Ok(());
                }
                apply(replay, &chunk, &mut last_id)?;
            }
            bail!("{stream} kept growing after its runs ended: is another broker writing it?");
        }
    }
}

/// Replays a chunk's entries and moves the position past them.
fn apply(replay: &mut SeedReplay, chunk: &Chunk, last_id: &mut String) -> Result<()> {
    for (id, fields) in chunk.iter() {
        replay.apply(id, parse_entry(fields));
    }
    chunk.last_id().context("a chunk with entries has a last one")?.clone_into(last_id);
    Ok(())
}

/// Transfers applied by every `broker --layout seed` run, from their producers' outcome keys.
async fn applied(conn: &mut Connection, keys: &Keys) -> Result<u64> {
    let mut total = 0;
    for run in runs::read_all(conn, keys).await? {
        if run.strategy != Strategy::Atomic {
            bail!(
                "{} is a {} run: the seed layout is written by atomic runs only",
                keys.run(run.id),
                run.strategy.as_str()
            );
        }
        total += runs::applied_per_producer(conn, keys, run.id, run.producers)
            .await?
            .iter()
            .sum::<u64>();
    }
    Ok(total)
}
