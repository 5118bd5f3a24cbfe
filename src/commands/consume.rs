//! `interbank consume`: follows the event stream, replays it over the initial accounts and, once
//! the broker runs have ended (or nothing new came for `--idle-timeout`), checks Redis against it.
//!
//! It can start before, during or after the broker: it reads the stream from the beginning with
//! `XREAD COUNT .. BLOCK ..` and keeps up while the broker writes. A run counts as over when its
//! record says so; events are then drained to the end of the stream before the snapshot is read,
//! because a run records its end only after its last event.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde::Serialize;

use crate::commands::{Progress, now_ms};
use crate::ledger::accounts;
use crate::ledger::events::{self, Entry, Layout};
use crate::ledger::replay::{AnomalyKind, Ledger};
use crate::ledger::runs::{RunRecord, RunStatus, Strategy};
use crate::ledger::verify::{Report, verify};
use crate::store::checkpoint::{self, Resume};
use crate::store::connection::Connection;
use crate::store::cross_bank;
use crate::store::keys::Keys;
use crate::store::meta::{self, Meta};
use crate::store::retry::retrying;
use crate::store::stream_reader::{StreamReader, read_once};
use crate::store::xread_reply::Chunk;
use crate::store::{overview, runs, snapshot, verdict};
use crate::view::facts::{ConsumerFacts, id_ms};
use crate::view::overview::overview as build;
use crate::view::report;
use crate::view::timeline::{Timeline, decisions};
use crate::view::verdict::Verdict;

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
    /// Where to write the stand-alone HTML report, if anywhere.
    pub report: Option<PathBuf>,
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
    /// Whether the verdict could be recorded in Redis (`P:verdict`) for `status` and the
    /// dashboard; why not, if not.
    #[serde(skip)]
    pub recorded: Result<(), String>,
    /// The verdict as recorded.
    #[serde(skip)]
    pub verdict: Verdict,
    /// Transfers decided per interval of time, from the entries this invocation read.
    #[serde(skip)]
    pub timeline: Timeline,
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
    let meta = meta::read(&mut conn, keys).await?;
    let mut ledger = ledger_for(config, &meta)?;
    let streams = match meta.layout {
        Layout::Single => 1,
        Layout::Sharded => meta.banks.len(),
    };
    let checkpointing = config.checkpoint_interval_ms > 0;
    let resumed = if checkpointing && !config.restart {
        resume(&mut conn, config, &meta, &mut ledger, progress).await?
    } else {
        None
    };
    let last_ids = resumed.unwrap_or_else(|| vec![START_ID.to_string(); streams]);
    ensure!(
        last_ids.len() == streams,
        "{} holds positions in {} streams, this data set has {streams}: pass --restart",
        keys.consumer(&config.name),
        last_ids.len()
    );
    let saver = Saver {
        name: &config.name,
        sha256: &meta.sha256,
        interval: checkpointing.then(|| Duration::from_millis(config.checkpoint_interval_ms)),
        last_saved: Instant::now(),
        warned: false,
        progress,
    };
    // One stream: the reader asks for the next chunk before this one is applied, so Redis
    // builds it meanwhile. One stream per bank (a cluster): each read on its bank's shard.
    let reader = match meta.layout {
        Layout::Single => {
            Some(StreamReader::connect(&config.target, &keys.events(), READ_COUNT, BLOCK_MS).await?)
        }
        Layout::Sharded => None,
    };
    let mut replicated = Vec::new();
    for bank in meta.banks.iter().filter(|_| meta.layout == Layout::Sharded) {
        let has = retrying(async || cross_bank::shard_has_replicas(&mut conn, keys, bank).await)
            .await
            .with_context(|| format!("asking bank {bank}'s shard for its replicas"))?;
        replicated.push(has);
    }
    let mut follower = Follower {
        conn,
        keys,
        reader,
        banks: meta.banks.clone(),
        chunk: Chunk::default(),
        ledger,
        runs: HashMap::new(),
        last_ids,
        replicated,
        saver,
        timeline: Timeline::default(),
    };
    let events_before = follower.ledger.events;
    let read_started = Instant::now();
    follower.follow(Duration::from_millis(config.idle_timeout_ms), progress).await?;
    let read_s = read_started.elapsed().as_secs_f64();
    progress.finish();
    let consumed = follower.verify(read_s, events_before).await?;
    if let Some(path) = &config.report {
        write_report(config, &consumed, path).await?;
    }
    Ok(consumed)
}

/// Writes the stand-alone HTML report of `consumed` to `path`, with the data set as Redis holds
/// it now (written whole to a temporary file, then renamed, so no half report is left).
async fn write_report(
    config: &ConsumeConfig,
    consumed: &Consumed,
    path: &std::path::Path,
) -> Result<()> {
    let mut conn = Connection::open(&config.target).await?;
    let facts = overview::read(&mut conn, &config.keys, &mut None, now_ms).await?;
    let html = report::render(&build(&facts), &consumed.verdict, &consumed.timeline);
    let folder =
        path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(folder)
        .with_context(|| format!("cannot write the report in {}", folder.display()))?;
    std::io::Write::write_all(&mut file, html.as_bytes())
        .with_context(|| format!("cannot write the report {}", path.display()))?;
    // A temporary file is private (0600); a report is a document to share, as any file written.
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .with_context(|| format!("cannot write the report {}", path.display()))?;
    file.persist(path).with_context(|| format!("cannot write the report {}", path.display()))?;
    Ok(())
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
    Ok(Ledger::with_layout(&file, meta.layout))
}

/// Restores this consumer's checkpoint into `ledger`, if it has one; returns the stream ids to
/// read after (one per stream).
async fn resume(
    conn: &mut Connection,
    config: &ConsumeConfig,
    meta: &Meta,
    ledger: &mut Ledger,
    progress: &dyn Progress,
) -> Result<Option<Vec<String>>> {
    let keys = &config.keys;
    Ok(match checkpoint::load(conn, keys, &config.name, &meta.sha256, ledger).await? {
        Resume::Start => None,
        Resume::After(ids) => {
            progress.note(&format!(
                "resuming from checkpoint {} after stream entry {} ({} events replayed)",
                keys.consumer(&config.name),
                ids.join(", "),
                ledger.events
            ));
            Some(ids)
        }
    })
}

/// The replay under way: the streams read so far, the runs known, and the checkpoints stored.
struct Follower<'a> {
    conn: Connection,
    keys: &'a Keys,
    /// The one stream's reader (single layout); `None` when each bank has its stream.
    reader: Option<StreamReader>,
    banks: Vec<String>,
    chunk: Chunk,
    ledger: Ledger,
    runs: HashMap<u64, RunRecord>,
    /// The id of the last entry replayed, per stream.
    last_ids: Vec<String>,
    /// Sharded layout: per bank, whether its shard has a replica configured (entries are
    /// replayed once a replica has them).
    replicated: Vec<bool>,
    saver: Saver<'a>,
    /// Transfers decided per interval of time, for the report.
    timeline: Timeline,
}

impl Follower<'_> {
    /// Replays the streams as they grow, until every recorded run is over (or nothing new came
    /// for `idle`), then to their end: a run records its end only after its last event.
    async fn follow(&mut self, idle: Duration, progress: &dyn Progress) -> Result<()> {
        let mut last_event_at = Instant::now();
        loop {
            if self.read_round(true).await? {
                last_event_at = Instant::now();
                progress.update(self.ledger.events);
                if self.saver.due() {
                    self.saver.save(&mut self.conn, self.keys, &self.last_ids, &self.ledger).await;
                }
                continue;
            }
            let all = runs::read_all(&mut self.conn, self.keys).await?;
            let over = !all.is_empty() && all.iter().all(|r| r.status != RunStatus::Running);
            refresh(&mut self.runs, all);
            if over || last_event_at.elapsed() >= idle {
                // Replays what is left, without waiting: the runs wrote no more.
                while self.read_round(false).await? {}
                return Ok(());
            }
        }
    }

    /// Reads and replays the next chunk of each stream; whether there was anything. With `wait`,
    /// an empty round waits up to [`BLOCK_MS`] (on the one stream's reader, or by a pause).
    async fn read_round(&mut self, wait: bool) -> Result<bool> {
        if let Some(reader) = &mut self.reader {
            reader.read(&self.last_ids[0], wait, &mut self.chunk).await?;
            if self.chunk.is_empty() {
                return Ok(false);
            }
            let Follower { conn, keys, ledger, runs, chunk, last_ids, timeline, .. } = self;
            let replay = Replay { ledger, runs, timeline };
            apply_entries(conn, keys, replay, chunk, &mut last_ids[0]).await?;
            return Ok(true);
        }
        let mut any = false;
        for bank in 0..self.banks.len() {
            let stream = self.keys.events_of(&self.banks[bank]);
            read_once(&mut self.conn, &stream, &self.last_ids[bank], READ_COUNT, &mut self.chunk)
                .await?;
            if self.chunk.is_empty() || !self.replicated_now(bank).await? {
                continue;
            }
            any = true;
            let Follower { conn, keys, ledger, runs, chunk, last_ids, timeline, .. } = self;
            let replay = Replay { ledger, runs, timeline };
            apply_bank_entries(conn, keys, replay, chunk, bank, &mut last_ids[bank]).await?;
        }
        if !any && wait {
            tokio::time::sleep(Duration::from_millis(BLOCK_MS)).await;
        }
        Ok(any)
    }

    /// Whether what was just read from bank `bank`'s shard may be replayed: a replica has it, or
    /// the shard has no replica configured (any more). Entries a failover could still take back
    /// are left for a later round.
    async fn replicated_now(&mut self, bank: usize) -> Result<bool> {
        if !self.replicated[bank] {
            return Ok(true);
        }
        let name = &self.banks[bank];
        let replicated =
            retrying(async || cross_bank::replica_has_all(&mut self.conn, self.keys, name).await)
                .await
                .with_context(|| format!("waiting for a replica of bank {name}'s shard"))?;
        if replicated {
            return Ok(true);
        }
        let has_replicas = retrying(async || {
            cross_bank::shard_has_replicas(&mut self.conn, self.keys, name).await
        })
        .await
        .with_context(|| format!("asking bank {name}'s shard for its replicas"))?;
        self.replicated[bank] = has_replicas;
        Ok(!has_replicas)
    }

    /// Stores the last checkpoint, reads what Redis holds and checks it against the replay.
    async fn verify(mut self, read_s: f64, events_before: u64) -> Result<Consumed> {
        if self.saver.interval.is_some() {
            self.saver.save(&mut self.conn, self.keys, &self.last_ids, &self.ledger).await;
        }
        let all = runs::read_all(&mut self.conn, self.keys).await?;
        let snapshot = snapshot::read(&mut self.conn, self.keys, &self.ledger, all).await?;
        let report = verify(self.keys, &self.ledger, &snapshot);
        let verdict = Verdict::of(&report, self.saver.name, now_ms());
        let recorded = verdict::record(&mut self.conn, self.keys, &verdict)
            .await
            .map_err(|err| format!("{err:#}"));
        Ok(Consumed {
            report,
            events_read: self.ledger.events - events_before,
            read_s,
            recorded,
            verdict,
            timeline: self.timeline,
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

    async fn save(
        &mut self,
        conn: &mut Connection,
        keys: &Keys,
        last_ids: &[String],
        ledger: &Ledger,
    ) {
        self.last_saved = Instant::now();
        let position = ConsumerFacts {
            name: self.name.to_string(),
            last_ids: last_ids.to_vec(),
            events: ledger.events,
            saved_at_ms: now_ms(),
        };
        let saved =
            match checkpoint::save(conn, keys, self.name, self.sha256, last_ids, ledger).await {
                Ok(()) => verdict::record_position(conn, keys, &position).await,
                Err(err) => Err(err),
            };
        if let Err(err) = saved
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

/// What replaying an entry changes: the ledger, the runs known, the timeline.
struct Replay<'a> {
    ledger: &'a mut Ledger,
    runs: &'a mut HashMap<u64, RunRecord>,
    timeline: &'a mut Timeline,
}

impl Replay<'_> {
    /// Counts a decided transfer in the timeline, at the time its entry id says.
    fn count(&mut self, id: &str, entry: &Entry<'_>) {
        if let (Some(decided), Some(at_ms)) = (decisions(entry), id_ms(id)) {
            self.timeline.add(at_ms, decided);
        }
    }
}

async fn apply_entries(
    conn: &mut Connection,
    keys: &Keys,
    mut replay: Replay<'_>,
    chunk: &Chunk,
    last_id: &mut String,
) -> Result<()> {
    for (id, fields) in chunk.iter() {
        match events::parse(fields) {
            Ok(event) => {
                if !replay.runs.contains_key(&event.id.run) {
                    // A run is recorded before its first event: read the records again once.
                    refresh(replay.runs, runs::read_all(conn, keys).await?);
                }
                let strategy: Option<Strategy> = replay.runs.get(&event.id.run).map(|r| r.strategy);
                replay.ledger.apply(id, &event, strategy);
                replay.count(id, &Entry::Transfer(event));
            }
            Err(why) => replay.ledger.report(AnomalyKind::Malformed, id, why),
        }
    }
    if let Some(id) = chunk.last_id() {
        id.clone_into(last_id);
    }
    Ok(())
}

/// Replays a chunk of bank `bank`'s own stream (sharded layout): each entry changes only that
/// bank's keys.
async fn apply_bank_entries(
    conn: &mut Connection,
    keys: &Keys,
    mut replay: Replay<'_>,
    chunk: &Chunk,
    bank: usize,
    last_id: &mut String,
) -> Result<()> {
    let stream = u16::try_from(bank).expect("at most MAX_BANKS banks");
    for (id, fields) in chunk.iter() {
        match events::parse_entry(fields) {
            Ok(entry) => {
                // A settlement names transfers of any runs and moves no money: it needs none.
                if entry.runs().any(|run| !replay.runs.contains_key(&run)) {
                    refresh(replay.runs, runs::read_all(conn, keys).await?);
                }
                let runs = &*replay.runs;
                let strategy_of = |run| runs.get(&run).map(|r: &RunRecord| r.strategy);
                replay.ledger.apply_on(stream, id, &entry, strategy_of);
                replay.count(id, &entry);
            }
            Err(why) => replay.ledger.report_on(AnomalyKind::Malformed, stream, id, why),
        }
    }
    if let Some(id) = chunk.last_id() {
        id.clone_into(last_id);
    }
    Ok(())
}
