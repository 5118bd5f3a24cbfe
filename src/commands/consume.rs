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
use crate::store::stream_reader::StreamReader;
use crate::store::xread_reply::Chunk;
use crate::store::{meta, runs, snapshot};

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
pub async fn consume(config: &ConsumeConfig, progress: Option<&dyn Progress>) -> Result<Consumed> {
    let keys = &config.keys;
    ensure!(
        crate::store::keys::is_plain_name(&config.name),
        "--name {:?} is not usable: use 1 to 64 letters, digits, '_', '-' or '.'",
        config.name
    );
    let mut conn = Connection::open(&config.target).await?;
    let meta = meta::read(&mut conn, keys).await?;
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
    let mut ledger = Ledger::new(&file);
    drop(file);
    let checkpointing = config.checkpoint_interval_ms > 0;
    let resume = if checkpointing && !config.restart {
        checkpoint::load(&mut conn, keys, &config.name, &meta.sha256, &mut ledger).await?
    } else {
        Resume::Start
    };
    let mut last_id = match resume {
        Resume::Start => "0-0".to_string(),
        Resume::After(id) => {
            eprintln!(
                "consume: resuming from checkpoint {} after stream entry {id} ({} events replayed)",
                keys.consumer(&config.name),
                ledger.events
            );
            id
        }
    };
    let mut saver = Saver {
        name: &config.name,
        sha256: &meta.sha256,
        interval: Duration::from_millis(config.checkpoint_interval_ms),
        last_saved: Instant::now(),
        warned: false,
    };
    let mut runs: HashMap<u64, RunRecord> = HashMap::new();
    let mut last_event_at = Instant::now();
    let idle = Duration::from_millis(config.idle_timeout_ms);
    // The reader asks for the next chunk before this one is applied, so Redis builds it meanwhile.
    let mut reader =
        StreamReader::connect(&config.target, &keys.events(), READ_COUNT, BLOCK_MS).await?;
    let mut chunk = Chunk::default();
    let events_before = ledger.events;
    let read_started = Instant::now();
    loop {
        reader.read(&last_id, true, &mut chunk).await?;
        if chunk.is_empty() {
            let all = runs::read_all(&mut conn, keys).await?;
            let over = !all.is_empty() && all.iter().all(|r| r.status != RunStatus::Running);
            refresh(&mut runs, all);
            if over || last_event_at.elapsed() >= idle {
                // Everything a finished run wrote precedes its end record: drain to the end.
                loop {
                    reader.read(&last_id, false, &mut chunk).await?;
                    if chunk.is_empty() {
                        break;
                    }
                    apply_entries(&mut conn, keys, &mut ledger, &mut runs, &chunk, &mut last_id)
                        .await?;
                }
                break;
            }
            continue;
        }
        last_event_at = Instant::now();
        apply_entries(&mut conn, keys, &mut ledger, &mut runs, &chunk, &mut last_id).await?;
        if let Some(progress) = progress {
            progress.update(ledger.events);
        }
        if checkpointing && saver.last_saved.elapsed() >= saver.interval {
            saver.save(&mut conn, keys, &last_id, &ledger).await;
        }
    }
    let read_s = read_started.elapsed().as_secs_f64();
    if let Some(progress) = progress {
        progress.finish();
    }
    if checkpointing {
        saver.save(&mut conn, keys, &last_id, &ledger).await;
    }
    let all = runs::read_all(&mut conn, keys).await?;
    let snapshot = snapshot::read(&mut conn, keys, &ledger, all).await?;
    Ok(Consumed {
        report: verify(keys, &ledger, &snapshot),
        events_read: ledger.events - events_before,
        read_s,
    })
}

/// Stores checkpoints; a failure (say, Redis out of memory) is reported once and does not stop
/// the verification, which only needs the checkpoint to resume faster.
struct Saver<'a> {
    name: &'a str,
    sha256: &'a str,
    interval: Duration,
    last_saved: Instant,
    warned: bool,
}

impl Saver<'_> {
    async fn save(&mut self, conn: &mut Connection, keys: &Keys, last_id: &str, ledger: &Ledger) {
        self.last_saved = Instant::now();
        if let Err(err) =
            checkpoint::save(conn, keys, self.name, self.sha256, last_id, ledger).await
            && !self.warned
        {
            self.warned = true;
            eprintln!("consume: warning: {err:#}; going on without a checkpoint");
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
