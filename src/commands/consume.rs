//! `interbank consume`: follows the event stream, replays it over the initial accounts and, once
//! the broker runs have ended (or nothing new came for `--idle-timeout`), checks Redis against it.
//!
//! It can start before, during or after the broker: it reads the stream from the beginning with
//! `XREAD COUNT .. BLOCK ..` and keeps up while the broker writes. A run counts as over when its
//! record says so; events are then drained to the end of the stream before the snapshot is read,
//! because a run records its end only after its last event.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use serde::Serialize;

use crate::commands::Progress;
use crate::ledger::accounts;
use crate::ledger::events;
use crate::ledger::replay::{AnomalyKind, Ledger};
use crate::ledger::runs::{RunRecord, RunStatus, Strategy};
use crate::ledger::verify::{Report, verify};
use crate::store::checkpoint::{self, Resume};
use crate::store::connection::Connection;
use crate::store::keys::Keys;
use crate::store::meta::{self, Meta};
use crate::store::stream_reader::StreamReader;
use crate::store::xread_reply::Chunk;
use crate::store::{runs, snapshot};

/// Entries asked for per `XREAD`, and how long one read may wait for new entries.
const READ_COUNT: usize = 10_000;
const BLOCK_MS: u64 = 250;

/// What `consume` is asked to do.
#[derive(Debug, Clone)]
pub struct ConsumeConfig {
    pub target: crate::store::target::Target,
    pub keys: Keys,
    pub accounts_path: PathBuf,
    pub banks_path: Option<PathBuf>,
    /// Stop following after this long without a new event, even if a run has not ended.
    pub idle_timeout_ms: u64,
    /// The consumer's name: its checkpoint is `P:consumer:<name>`.
    pub name: String,
    /// How often to store the checkpoint while following the stream; 0 stores none.
    pub checkpoint_interval_ms: u64,
    /// Ignore any checkpoint and replay from the start of the stream.
    pub restart: bool,
}

/// What `consume` found, and how fast it read the stream.
#[derive(Debug, Clone, Serialize)]
pub struct Consumed {
    #[serde(flatten)]
    pub report: Report,
    /// Events this invocation read from the stream (after its checkpoint, if it resumed).
    pub events_read: u64,
    /// From the first `XREAD` to the end of the stream: reading, parsing and replaying.
    pub read_s: f64,
}

/// Follows the stream to the end of the runs, then verifies.
pub async fn consume(config: &ConsumeConfig, progress: &dyn Progress) -> Result<Consumed> {
    let keys = &config.keys;
    ensure!(
        crate::store::keys::is_plain_name(&config.name),
        "--name {:?} is not usable: use 1 to 64 letters, digits, '_', '-' or '.'",
        config.name
    );
    let mut conn = Connection::open(&config.target).await?;
    ensure!(
        !conn.is_cluster(),
        "{} is a Redis Cluster node: `interbank init` loads a cluster, but consume does not run \
         on one yet (it reads one stream for every bank)",
        config.target
    );
    let meta = meta::read(&mut conn, keys).await?;
    let mut ledger = ledger_for(config, &meta)?;
    let checkpointing = config.checkpoint_interval_ms > 0;
    let last_id = if checkpointing && !config.restart {
        resume(&mut conn, config, &meta, &mut ledger, progress).await?
    } else {
        START_ID.to_string()
    };
    let saver = Saver {
        name: &config.name,
        sha256: &meta.sha256,
        interval: checkpointing.then(|| Duration::from_millis(config.checkpoint_interval_ms)),
        last_saved: Instant::now(),
        warned: false,
        progress,
    };
    // The reader asks for the next chunk before this one is applied, so Redis builds it meanwhile.
    let reader =
        StreamReader::connect(&config.target, &keys.events(), READ_COUNT, BLOCK_MS).await?;
    let mut follower = Follower {
        conn,
        keys,
        reader,
        chunk: Chunk::default(),
        ledger,
        runs: HashMap::new(),
        last_id,
        saver,
    };
    let events_before = follower.ledger.events;
    let read_started = Instant::now();
    follower.follow(Duration::from_millis(config.idle_timeout_ms), progress).await?;
    let read_s = read_started.elapsed().as_secs_f64();
    progress.finish();
    follower.verify(read_s, events_before).await
}

/// The stream id before every entry.
const START_ID: &str = "0-0";

/// The replay's starting point: the accounts file `init` loaded (checked against `P:meta` by its
/// SHA-256 and its banks).
fn ledger_for(config: &ConsumeConfig, meta: &Meta) -> Result<Ledger> {
    let keys = &config.keys;
    let file = accounts::load(&config.accounts_path, config.banks_path.as_deref())?;
    ensure!(
        file.sha256 == meta.sha256,
        "{} is not the file `interbank init` loaded (its SHA-256 differs from {}); pass the same --accounts",
        file.path.display(),
        keys.meta()
    );
    ensure!(
        file.banks == meta.banks,
        "the banks file lists {:?} but {} holds {:?}; pass the same --banks",
        file.banks,
        keys.banks(),
        meta.banks
    );
    Ok(Ledger::new(&file))
}

/// Restores this consumer's checkpoint into `ledger`, if it has one; returns the stream id to
/// read after.
async fn resume(
    conn: &mut Connection,
    config: &ConsumeConfig,
    meta: &Meta,
    ledger: &mut Ledger,
    progress: &dyn Progress,
) -> Result<String> {
    let keys = &config.keys;
    Ok(match checkpoint::load(conn, keys, &config.name, &meta.sha256, ledger).await? {
        Resume::Start => START_ID.to_string(),
        Resume::After(id) => {
            progress.note(&format!(
                "resuming from checkpoint {} after stream entry {id} ({} events replayed)",
                keys.consumer(&config.name),
                ledger.events
            ));
            id
        }
    })
}

/// The replay under way: the stream read so far, the runs known, and the checkpoints stored.
struct Follower<'a> {
    conn: Connection,
    keys: &'a Keys,
    reader: StreamReader,
    chunk: Chunk,
    ledger: Ledger,
    runs: HashMap<u64, RunRecord>,
    /// The id of the last entry replayed.
    last_id: String,
    saver: Saver<'a>,
}

impl Follower<'_> {
    /// Replays the stream as it grows, until every recorded run is over (or nothing new came for
    /// `idle`), then to its end: a run records its end only after its last event.
    async fn follow(&mut self, idle: Duration, progress: &dyn Progress) -> Result<()> {
        let mut last_event_at = Instant::now();
        loop {
            self.reader.read(&self.last_id, true, &mut self.chunk).await?;
            if !self.chunk.is_empty() {
                last_event_at = Instant::now();
                self.apply_chunk().await?;
                progress.update(self.ledger.events);
                if self.saver.due() {
                    self.saver.save(&mut self.conn, self.keys, &self.last_id, &self.ledger).await;
                }
                continue;
            }
            let all = runs::read_all(&mut self.conn, self.keys).await?;
            let over = !all.is_empty() && all.iter().all(|r| r.status != RunStatus::Running);
            refresh(&mut self.runs, all);
            if over || last_event_at.elapsed() >= idle {
                return self.drain().await;
            }
        }
    }

    /// Replays what is left in the stream, without waiting for more.
    async fn drain(&mut self) -> Result<()> {
        loop {
            self.reader.read(&self.last_id, false, &mut self.chunk).await?;
            if self.chunk.is_empty() {
                return Ok(());
            }
            self.apply_chunk().await?;
        }
    }

    async fn apply_chunk(&mut self) -> Result<()> {
        let Follower { conn, keys, ledger, runs, chunk, last_id, .. } = self;
        apply_entries(conn, keys, ledger, runs, chunk, last_id).await
    }

    /// Stores the last checkpoint, reads what Redis holds and checks it against the replay.
    async fn verify(mut self, read_s: f64, events_before: u64) -> Result<Consumed> {
        if self.saver.interval.is_some() {
            self.saver.save(&mut self.conn, self.keys, &self.last_id, &self.ledger).await;
        }
        let all = runs::read_all(&mut self.conn, self.keys).await?;
        let snapshot = snapshot::read(&mut self.conn, self.keys, &self.ledger, all).await?;
        Ok(Consumed {
            report: verify(self.keys, &self.ledger, &snapshot),
            events_read: self.ledger.events - events_before,
            read_s,
        })
    }
}

/// Stores checkpoints; a failure (say, Redis out of memory) is reported once and does not stop
/// the verification, which only needs the checkpoint to resume faster.
struct Saver<'a> {
    name: &'a str,
    sha256: &'a str,
    /// Time between checkpoints; `None` stores none.
    interval: Option<Duration>,
    last_saved: Instant,
    warned: bool,
    /// Where a failure to store one is told.
    progress: &'a dyn Progress,
}

impl Saver<'_> {
    /// Whether a checkpoint is due.
    fn due(&self) -> bool {
        self.interval.is_some_and(|interval| self.last_saved.elapsed() >= interval)
    }

    async fn save(&mut self, conn: &mut Connection, keys: &Keys, last_id: &str, ledger: &Ledger) {
        self.last_saved = Instant::now();
        if let Err(err) =
            checkpoint::save(conn, keys, self.name, self.sha256, last_id, ledger).await
            && !self.warned
        {
            self.warned = true;
            self.progress.note(&format!("warning: {err:#}; going on without a checkpoint"));
        }
    }
}

fn refresh(runs: &mut HashMap<u64, RunRecord>, all: Vec<RunRecord>) {
    for run in all {
        runs.insert(run.id, run);
    }
}

async fn apply_entries(
    conn: &mut Connection,
    keys: &Keys,
    ledger: &mut Ledger,
    runs: &mut HashMap<u64, RunRecord>,
    chunk: &Chunk,
    last_id: &mut String,
) -> Result<()> {
    for (id, fields) in chunk.iter() {
        match events::parse(fields) {
            Ok(event) => {
                if !runs.contains_key(&event.id.run) {
                    // A run is recorded before its first event: read the records again once.
                    refresh(runs, runs::read_all(conn, keys).await?);
                }
                let strategy: Option<Strategy> = runs.get(&event.id.run).map(|r| r.strategy);
                ledger.apply(id, &event, strategy);
            }
            Err(why) => ledger.report(AnomalyKind::Malformed, id, why),
        }
    }
    if let Some(id) = chunk.last_id() {
        id.clone_into(last_id);
    }
    Ok(())
}
