//! The dashboard's shared state: the last overview read, whether Redis answered, and the live
//! counts, with a sequence number that rises at every change. Pollers write it; every HTTP
//! request and every event stream reads it. One writer per part, many readers.

use std::sync::RwLock;

use serde::Serialize;
use tokio::sync::watch;

use crate::view::live::Live;
use crate::view::overview::Overview;

/// Whether Redis answered the last read.
#[derive(Debug, Clone, Serialize)]
pub struct RedisStatus {
    pub ok: bool,
    /// Why the last read failed (never with a password: targets print redacted).
    pub error: Option<String>,
    pub checked_at_ms: u64,
    /// Since when reads have failed.
    pub down_since_ms: Option<u64>,
    /// Redis answered but holds no data set under the prefix (run `interbank init`).
    pub empty: Option<String>,
}

/// What `/api/state` answers and each event of `/api/stream` carries.
#[derive(Debug, Clone, Serialize)]
pub struct State {
    pub seq: u64,
    pub redis: RedisStatus,
    /// The last good overview; `None` until Redis was read once.
    pub overview: Option<Overview>,
    pub live: Live,
}

/// The state behind a lock, and a signal of each change.
pub struct Hub {
    state: RwLock<State>,
    changed: watch::Sender<u64>,
}

impl Hub {
    pub fn new(now_ms: u64) -> Hub {
        let redis = RedisStatus {
            ok: false,
            error: None,
            checked_at_ms: now_ms,
            down_since_ms: None,
            empty: None,
        };
        let state = State { seq: 0, redis, overview: None, live: Live::default() };
        Hub { state: RwLock::new(state), changed: watch::channel(0).0 }
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> State {
        self.state.read().expect("no writer panics holding the lock").clone()
    }

    /// A receiver woken at every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Applies `change` and tells every subscriber.
    pub fn update(&self, change: impl FnOnce(&mut State)) {
        let seq = {
            let mut state = self.state.write().expect("no writer panics holding the lock");
            change(&mut state);
            state.seq += 1;
            state.seq
        };
        self.changed.send_replace(seq);
    }

    /// Records a good read.
    pub fn read_ok(&self, overview: Overview, now_ms: u64) {
        self.update(|state| {
            state.overview = Some(overview);
            state.redis = RedisStatus {
                ok: true,
                error: None,
                checked_at_ms: now_ms,
                down_since_ms: None,
                empty: None,
            };
        });
    }

    /// Records that Redis answered with no data set loaded: nothing to show, nothing down.
    pub fn read_empty(&self, why: String, now_ms: u64) {
        self.update(|state| {
            state.overview = None;
            state.redis = RedisStatus {
                ok: true,
                error: None,
                checked_at_ms: now_ms,
                down_since_ms: None,
                empty: Some(why),
            };
        });
    }

    /// Records a failed read; the last overview stays.
    pub fn read_failed(&self, error: String, now_ms: u64) {
        self.update(|state| {
            let down_since_ms = state.redis.down_since_ms.or(Some(now_ms));
            state.redis = RedisStatus {
                ok: false,
                error: Some(error),
                checked_at_ms: now_ms,
                down_since_ms,
                empty: None,
            };
        });
    }
}
