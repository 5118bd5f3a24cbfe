//! The Redis key schema: every key this tool reads or writes is named here and nowhere else.
//!
//! All keys start with the prefix (default `banks_transfers`) and a colon, so `init` can remove
//! exactly this tool's keys (`SCAN MATCH prefix:*`) and an ACL can allow `~prefix:*`.
//! Everything that belongs to one bank carries the bank name as a hash tag (`{Santander}`), so on
//! Redis Cluster all of a bank's keys share one slot and a transfer inside a bank touches one
//! shard. Names are the same on a single server; only cross-bank steps would change in a cluster.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:meta` | hash | what `init` loaded: `status`, `file`, `sha256`, `accounts`, `banks`, `total_cents`, `loaded_at_ms`, `schema` |
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

use crate::ledger::verify::KeyNames;

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
}
