//! The Redis key schema: every key this tool reads or writes is named here and nowhere else.
//!
//! All keys start with the prefix (default `banks_transfers`) and a colon, so `init` can remove
//! exactly this tool's keys (`SCAN MATCH prefix:*`) and an ACL can allow `~prefix:*`.
//! Everything that belongs to one bank carries the bank name as a hash tag (`{Santander}`), so on
//! Redis Cluster all of a bank's keys share one slot and a transfer inside a bank touches one
//! shard. The single layout (one server) keeps one stream and one outcome string per producer;
//! the sharded layout (a cluster) keeps both per bank, and adds each bank's outbox, in-flight
//! total, inbox and recovery mark for the transfers that cross shards.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:meta` | hash | what `init` loaded: `status`, `file`, `sha256`, `accounts`, `banks`, `total_cents`, `loaded_at_ms`, `schema`, `layout` |
//! | `P:banks` | list | bank names, in the banks file's order |
//! | `P:{B}:account:IBAN` | string | the account's balance in cents |
//! | `P:{B}:directory` | list | the IBANs of bank B's accounts (how the broker finds them) |
//! | `P:{B}:balance` | string | bank B's balance: money received minus money sent |
//! | `P:{B}:interbank` | hash | field C: B's balance with bank C (`-a` when B sends `a` to C) |
//! | `P:events` | stream | one entry per transfer, completed or cancelled |
//! | `P:runs` | string | the number of the last broker run |
//! | `P:run:N` | hash | broker run N: strategy, workers, times, counts, status |
//! | `P:producer:ID` | string | one outcome letter per transfer applied for producer ID (idempotency) |
//! | `P:consumer:NAME` | string | consumer NAME's checkpoint: last stream entry read and the replay up to it (JSON) |
//! | `P:positions` | hash | field NAME: consumer NAME's position as of its last checkpoint, small, for the views (JSON) |
//! | `P:verdict` | string | the last verification `consume` reached: when, events covered, each check (JSON) |
//! | `P:{B}:events` | stream | sharded layout: bank B's events (debits, credits, settlements, its transfers inside the bank) |
//! | `P:{B}:producer:ID` | string | sharded layout: one outcome letter per transfer out of bank B applied for producer ID |
//! | `P:{B}:outbox` | hash | sharded layout: field `id`, value `B2,source,destination,amount`: transfers in flight out of B; field `about` (see [`ANCHOR_FIELD`]) |
//! | `P:{B}:inflight` | string | sharded layout: cents in flight out of B |
//! | `P:{B}:inbox` | hash | sharded layout: field `A\|id`: the answer bank B gave the credit of transfer id from bank A, until its settlement is forgotten; field `epoch`: how many times it forgot; field `about` |
//! | `P:{B}:recovery` | string | sharded layout: recovery passes that waited for a replica of B's shard |
//! | `P:accounts:IBAN` | string | seed layout (the Go demo's keys): the account's balance |
//! | `P:banks:B` | string | seed layout: bank B's net flow (missing = 0) |
//! | `P:balances:A:B` | string | seed layout: A's balance with B; a transfer of `a` from A to B adds `+a` here and `-a` to `P:balances:B:A` (the demo's signs) |
//! | `P:transactions` | stream | seed layout: one entry per transfer, one field `json` in the demo's format |
//! | `P:seed:people` | hash | seed layout: field IBAN, the account holder's name (for the events) |
//! | `P:seed:initial` | hash | seed layout: field IBAN, the balance loaded (the demo's `to.ammount`) |

use crate::ledger::verify::KeyNames;

/// The field `init` writes in every outbox and inbox (sharded layout), beside their entries, with
/// a value that says what the hash holds ([`OUTBOX_ABOUT`], [`INBOX_ABOUT`]). Why: Redis keeps a
/// hash of at most 128 fields of at most 64 bytes as a listpack, searched field by field, and a
/// lookup in an outbox of some 100 transfers cost it up to 16,000 instructions (callgrind, see
/// docs/BENCHMARKS.md); a value longer than 64 bytes keeps the hash a hashtable, lookups O(1),
/// also after a restart. The field also keeps the hash from vanishing each time it empties. No
/// transfer id (`rN-wW-S`) or inbox answer (`A|id`) is ever named so; readers skip it.
pub const ANCHOR_FIELD: &str = "about";

/// The anchor's value in `P:{B}:outbox`; longer than 64 bytes (see [`ANCHOR_FIELD`]).
pub const OUTBOX_ABOUT: &str = "the transfers in flight out of this bank: field transfer id, value destination bank,source IBAN,destination IBAN,amount in cents";

/// The anchor's value in `P:{B}:inbox`; longer than 64 bytes (see [`ANCHOR_FIELD`]).
pub const INBOX_ABOUT: &str = "the answers this bank gave to credits from other banks: field source bank|transfer id, value C, U or O; field epoch: forget calls";

/// Which keys a data set uses: this tool's own, or the Go demo's (`--layout seed`), recorded by
/// `init` as `keys` in `P:meta`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyLayout {
    #[default]
    Ours,
    Seed,
}

impl KeyLayout {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyLayout::Ours => "ours",
            KeyLayout::Seed => "seed",
        }
    }

    pub fn parse(text: &str) -> Option<KeyLayout> {
        [KeyLayout::Ours, KeyLayout::Seed].into_iter().find(|l| l.as_str() == text)
    }
}

/// The version of this schema, stored in `P:meta` so a newer tool can refuse an older layout.
pub const SCHEMA_VERSION: u32 = 1;
/// The default key prefix, as in the seed.
pub const DEFAULT_PREFIX: &str = "banks_transfers";
const MAX_PREFIX_BYTES: usize = 64;

/// Whether a name is safe inside key names and never a glob: 1 to 64 letters, digits, `_ - .`.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_PREFIX_BYTES
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Names every key under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// A schema under `prefix`: letters, digits, `_`, `-` and `.` only, so it is never a glob.
    pub fn new(prefix: &str) -> Result<Keys, String> {
        if !is_plain_name(prefix) {
            return Err(format!(
                "key prefix {prefix:?} is not usable: use 1 to {MAX_PREFIX_BYTES} letters, digits, '_', '-' or '.'"
            ));
        }
        Ok(Keys { prefix: prefix.to_string() })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The `SCAN MATCH` pattern that covers every key of this schema and nothing else.
    pub fn all_keys_pattern(&self) -> String {
        format!("{}:*", self.prefix)
    }

    pub fn meta(&self) -> String {
        format!("{}:meta", self.prefix)
    }

    pub fn banks(&self) -> String {
        format!("{}:banks", self.prefix)
    }

    pub fn account(&self, bank: &str, iban: &str) -> String {
        format!("{}:{{{bank}}}:account:{iban}", self.prefix)
    }

    pub fn directory(&self, bank: &str) -> String {
        format!("{}:{{{bank}}}:directory", self.prefix)
    }

    pub fn bank_balance(&self, bank: &str) -> String {
        format!("{}:{{{bank}}}:balance", self.prefix)
    }

    pub fn interbank(&self, bank: &str) -> String {
        format!("{}:{{{bank}}}:interbank", self.prefix)
    }

    pub fn events(&self) -> String {
        format!("{}:events", self.prefix)
    }

    pub fn runs(&self) -> String {
        format!("{}:runs", self.prefix)
    }

    pub fn run(&self, run_id: u64) -> String {
        format!("{}:run:{run_id}", self.prefix)
    }

    pub fn producer(&self, producer_id: &str) -> String {
        format!("{}:producer:{producer_id}", self.prefix)
    }

    pub fn consumer(&self, name: &str) -> String {
        format!("{}:consumer:{name}", self.prefix)
    }

    /// Every consumer's position as of its last checkpoint, by name (what `status` shows).
    pub fn positions(&self) -> String {
        format!("{}:positions", self.prefix)
    }

    /// The last verification's verdict.
    pub fn verdict(&self) -> String {
        format!("{}:verdict", self.prefix)
    }

    /// Seed layout: an account's balance, as the Go demo names it.
    pub fn seed_account(&self, iban: &str) -> String {
        format!("{}:accounts:{iban}", self.prefix)
    }

    /// Seed layout: a bank's net flow.
    pub fn seed_bank(&self, bank: &str) -> String {
        format!("{}:banks:{bank}", self.prefix)
    }

    /// Seed layout: bank A's balance with bank B.
    pub fn seed_pair(&self, a: &str, b: &str) -> String {
        format!("{}:balances:{a}:{b}", self.prefix)
    }

    /// Seed layout: the demo's event stream.
    pub fn seed_stream(&self) -> String {
        format!("{}:transactions", self.prefix)
    }

    /// Seed layout: account holders' names by IBAN.
    pub fn seed_people(&self) -> String {
        format!("{}:seed:people", self.prefix)
    }

    /// Seed layout: balances as loaded, by IBAN.
    pub fn seed_initial(&self) -> String {
        format!("{}:seed:initial", self.prefix)
    }

    /// Sharded layout: bank B's own event stream.
    pub fn events_of(&self, bank: &str) -> String {
        format!("{}:{{{bank}}}:events", self.prefix)
    }

    /// Sharded layout: producer ID's outcome string for the transfers out of bank B.
    pub fn producer_in(&self, bank: &str, producer_id: &str) -> String {
        format!("{}:{{{bank}}}:producer:{producer_id}", self.prefix)
    }

    /// Sharded layout: bank B's transfers in flight to other banks, by transfer id.
    pub fn outbox(&self, bank: &str) -> String {
        format!("{}:{{{bank}}}:outbox", self.prefix)
    }

    /// Sharded layout: the cents in flight out of bank B (debited, not yet settled or voided).
    pub fn in_flight(&self, bank: &str) -> String {
        format!("{}:{{{bank}}}:inflight", self.prefix)
    }

    /// Sharded layout: the credits bank B answered, by source bank and transfer id.
    pub fn inbox(&self, bank: &str) -> String {
        format!("{}:{{{bank}}}:inbox", self.prefix)
    }

    /// Sharded layout: how many recovery passes marked bank B's shard (a write of the pass's
    /// own, for a replica to acknowledge).
    pub fn recovery_mark(&self, bank: &str) -> String {
        format!("{}:{{{bank}}}:recovery", self.prefix)
    }
}

/// How many hash slots a Redis Cluster has.
pub const CLUSTER_SLOTS: u16 = 16_384;

/// A key's hash tag as Redis Cluster reads it: the text between the first `{` and the next `}`,
/// if not empty. Keys with the same tag share a slot.
pub fn hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let rest = &key[open + 1..];
    let close = rest.find('}')?;
    (close > 0).then(|| &rest[..close])
}

/// The Redis Cluster slot of a key: CRC16 (XMODEM) of its hash tag, or of the whole key, modulo
/// 16,384, as the cluster specification defines it.
pub fn cluster_slot(key: &str) -> u16 {
    let hashed = hash_tag(key).unwrap_or(key);
    let crc = hashed.bytes().fold(0_u16, |crc, byte| {
        (0..8).fold(crc ^ (u16::from(byte) << 8), |crc, _| {
            if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 }
        })
    });
    crc % CLUSTER_SLOTS
}

/// The verification names the keys it finds wrong as this schema names them.
impl KeyNames for Keys {
    fn account(&self, bank: &str, iban: &str) -> String {
        Keys::account(self, bank, iban)
    }
    fn bank_balance(&self, bank: &str) -> String {
        Keys::bank_balance(self, bank)
    }
    fn interbank(&self, bank: &str) -> String {
        Keys::interbank(self, bank)
    }
    fn run(&self, run: u64) -> String {
        Keys::run(self, run)
    }
    fn producer(&self, producer: &str) -> String {
        Keys::producer(self, producer)
    }
    fn events_of(&self, bank: &str) -> String {
        Keys::events_of(self, bank)
    }
    fn producer_in(&self, bank: &str, producer: &str) -> String {
        Keys::producer_in(self, bank, producer)
    }
    fn outbox(&self, bank: &str) -> String {
        Keys::outbox(self, bank)
    }
    fn in_flight(&self, bank: &str) -> String {
        Keys::in_flight(self, bank)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_under_the_prefix_and_bank_keys_share_a_hash_tag() {
        let keys = Keys::new("bt").unwrap();
        let bank_keys = [
            keys.account("Deutsche Bank", "ES00"),
            keys.directory("Deutsche Bank"),
            keys.bank_balance("Deutsche Bank"),
            keys.interbank("Deutsche Bank"),
        ];
        for key in &bank_keys {
            assert!(key.starts_with("bt:{Deutsche Bank}:"), "{key}");
        }
        for key in [
            keys.meta(),
            keys.banks(),
            keys.events(),
            keys.runs(),
            keys.run(3),
            keys.producer("r3-w1"),
            keys.consumer("c"),
        ] {
            assert!(key.starts_with("bt:"), "{key}");
        }
        assert_eq!(keys.all_keys_pattern(), "bt:*");
        assert_eq!(keys.account("ING", "ES12"), "bt:{ING}:account:ES12");
    }

    #[test]
    fn prefixes_that_could_match_other_keys_are_refused() {
        assert!(Keys::new(DEFAULT_PREFIX).is_ok());
        for bad in ["", "a*", "a?", "a[b]", "a:b", "a b", &"x".repeat(65)] {
            assert!(Keys::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn slots_are_those_redis_computes() {
        // Values from `CLUSTER KEYSLOT` on Redis 7.0.
        assert_eq!(cluster_slot("foo"), 12182);
        assert_eq!(cluster_slot("bar"), 5061);
        assert_eq!(cluster_slot("p:{Santander}:balance"), cluster_slot("Santander"));
        assert_eq!(cluster_slot("{}foo"), cluster_slot("{}foo"));
        assert_eq!(hash_tag("p:{Santander}:account:ES1"), Some("Santander"));
        assert_eq!(hash_tag("p:{}:x{a}"), None);
        assert_eq!(hash_tag("p:meta"), None);
    }
}
