//! What Redis holds right now, as the store read it for the views: the raw figures, before any
//! judgement. [`crate::view::overview::overview`] turns them into what is shown.

use serde::Serialize;

use crate::ledger::events::Layout;
use crate::ledger::runs::RunRecord;
use crate::ledger::verify::Value;
use crate::view::verdict::Verdict;

/// Everything the views need, read at one instant where the backend allows it.
#[derive(Debug, Clone)]
pub struct Facts {
    /// When the read finished, in ms since the Unix epoch.
    pub read_at_ms: u64,
    pub prefix: String,
    pub layout: Layout,
    /// What `init` loaded (`P:meta`).
    pub loaded: Loaded,
    /// One per bank, in the banks' order.
    pub banks: Vec<BankFacts>,
    /// `interbank[a * banks + b]`: bank a's position with bank b; the diagonal is not read.
    pub interbank: Vec<Value>,
    pub runs: Vec<RunFacts>,
    /// One stream on a single server; one per bank on a cluster.
    pub streams: Vec<StreamFacts>,
    pub consumers: Vec<ConsumerFacts>,
    /// The last verification `consume` recorded, if any.
    pub verdict: Option<Verdict>,
    /// Whether every figure comes from one instant: one `MULTI` on a single server; on a
    /// cluster, two rounds of per-bank reads that found the same stream ends.
    pub consistent: bool,
}

/// What `init` loaded.
#[derive(Debug, Clone, Serialize)]
pub struct Loaded {
    pub file: String,
    pub accounts: u64,
    pub total_cents: i64,
    pub loaded_at_ms: u64,
}

/// One bank's keys, read together (one slot, one `MULTI`).
#[derive(Debug, Clone)]
pub struct BankFacts {
    pub name: String,
    /// How many accounts its directory lists.
    pub accounts: u64,
    /// The sum of the balances that could be read.
    pub accounts_cents: i128,
    /// Account keys that were missing or not an integer (at most a few named, all counted).
    pub bad_accounts: Vec<String>,
    pub bad_account_count: u64,
    pub balance: Value,
    /// Cents debited and not yet settled or voided (sharded layout; 0 on a single server).
    pub in_flight: Value,
    /// In flight out of this bank, by destination bank (from its outbox, less what the
    /// destination has credited already), in the banks' order.
    pub in_flight_to_cents: Vec<i128>,
    /// Debited here and credited at the destination, not yet settled here: in the destination's
    /// accounts already, still in this bank's in-flight total until the settlement.
    pub credited_unsettled_cents: i128,
    /// The node that serves this bank's slot, on a cluster.
    pub shard: Option<String>,
}

/// A run's record and, while it runs, the transfers its producers have applied so far.
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub record: RunRecord,
    /// Transfers applied, counted from its producers' outcome keys (one letter each).
    pub applied: Option<u64>,
}

/// An event stream's length and newest entry.
#[derive(Debug, Clone, Serialize)]
pub struct StreamFacts {
    pub key: String,
    /// The bank whose stream it is (sharded layout).
    pub bank: Option<String>,
    pub length: u64,
    pub last_id: Option<String>,
}

/// A consumer's position, as it recorded it with its last checkpoint.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ConsumerFacts {
    pub name: String,
    /// The last entry it replayed, per stream (in the streams' order).
    pub last_ids: Vec<String>,
    /// Events replayed up to there.
    pub events: u64,
    pub saved_at_ms: u64,
}

/// The ms timestamp of a stream entry id (`<ms>-<seq>`).
pub fn id_ms(id: &str) -> Option<u64> {
    id.split_once('-').map_or(id, |(ms, _)| ms).parse().ok()
}
