//! Broker runs as the ledger knows them: how a run made its transfers ([`Strategy`]), whether it
//! is still going ([`RunStatus`]), and what it recorded ([`RunRecord`]), so that the verification
//! knows which runs exist, which checks apply to their events, and how many events to expect.

/// How transfers are made. Only `Atomic` is safe; the others exist to be compared and caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// One server-side script per call: checked, applied and evented atomically, idempotent.
    Atomic,
    /// The seed's protocol: WATCH/GET/MULTI/INCRBY/EXEC, then the other writes one by one (unsafe).
    Watch,
    /// GET then INCRBY with nothing in between to stop a race (unsafe, on purpose).
    Naive,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Atomic => "atomic",
            Strategy::Watch => "watch",
            Strategy::Naive => "naive",
        }
    }

    /// The strategy a name stands for (as `as_str` writes it).
    pub fn parse(text: &str) -> Option<Strategy> {
        [Strategy::Atomic, Strategy::Watch, Strategy::Naive]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A run's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Started and not ended: still going, or its broker was killed.
    Running,
    /// Every worker finished its transfers.
    Ended,
    /// Stopped early by Ctrl-C: every transfer sent got its outcome.
    Interrupted,
    /// Stopped early by an error, which `error` names.
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Ended => "ended",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Failed => "failed",
        }
    }

    /// The status a name stands for (as `as_str` writes it).
    pub fn parse(text: &str) -> Option<RunStatus> {
        [RunStatus::Running, RunStatus::Ended, RunStatus::Interrupted, RunStatus::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One broker run as stored in `P:run:N`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRecord {
    pub id: u64,
    pub strategy: Strategy,
    pub workers: u32,
    /// Producers whose keys hold the run's outcomes (`P:producer:r<run>-w<n>`, n = 1..producers):
    /// the workers, or with `--group-commit` the committers.
    pub producers: u32,
    pub planned: u64,
    pub started_ms: u64,
    pub status: RunStatus,
    pub ended_ms: Option<u64>,
    /// Events the run wrote, set when it stops (for `atomic`, counted from its producer keys).
    pub events: Option<u64>,
    pub error: Option<String>,
}
