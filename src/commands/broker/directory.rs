//! The accounts the broker picks from, read once from the per-bank directory lists in Redis.
//! Picking a pair of distinct accounts is O(1), whatever the number of accounts.

use anyhow::{Context, Result, ensure};
use rand::Rng;

use crate::commands::init::Meta;
use crate::store::keys::Keys;
use crate::store::retry::query_retrying;

/// IBANs read per `LRANGE`.
const LRANGE_CHUNK: i64 = 100_000;

/// Every account, with the index of its bank.
#[derive(Debug)]
pub struct Directory {
    pub banks: Vec<String>,
    pub accounts: Vec<(Box<str>, u16)>,
}

impl Directory {
    /// Reads the directory lists of every bank in `meta`.
    pub async fn load(
        conn: &mut impl redis::aio::ConnectionLike,
        keys: &Keys,
        meta: &Meta,
    ) -> Result<Directory> {
        ensure!(meta.banks.len() <= usize::from(u16::MAX), "too many banks");
        let mut accounts = Vec::with_capacity(meta.accounts as usize);
        for (bank_index, bank) in meta.banks.iter().enumerate() {
            let key = keys.directory(bank);
            let mut start = 0;
            loop {
                let mut cmd = redis::cmd("LRANGE");
                cmd.arg(&key).arg(start).arg(start + LRANGE_CHUNK - 1);
                let chunk: Vec<String> =
                    query_retrying(conn, &cmd).await.with_context(|| format!("reading {key}"))?;
                let len = chunk.len() as i64;
                ensure!(
                    accounts.len() as u64 + len as u64 <= meta.accounts,
                    "{key} lists more accounts than {} says were loaded: run `interbank init` again",
                    keys.meta()
                );
                accounts.extend(
                    chunk.into_iter().map(|iban| (iban.into_boxed_str(), bank_index as u16)),
                );
                if len < LRANGE_CHUNK {
                    break;
                }
                start += LRANGE_CHUNK;
            }
        }
        ensure!(
            accounts.len() as u64 == meta.accounts,
            "the bank directories list {} accounts but {} says {}: run `interbank init` again",
            accounts.len(),
            keys.meta(),
            meta.accounts
        );
        ensure!(accounts.len() >= 2, "a transfer needs at least two accounts");
        Ok(Directory { banks: meta.banks.clone(), accounts })
    }

    /// Two distinct account indices, uniformly: O(1), no retry loop.
    pub fn pick_pair(&self, rng: &mut impl Rng) -> (usize, usize) {
        let n = self.accounts.len();
        let from = rng.random_range(0..n);
        let mut to = rng.random_range(0..n - 1);
        if to >= from {
            to += 1;
        }
        debug_assert_ne!(from, to);
        (from, to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn pairs_are_distinct_and_cover_all_accounts() {
        let directory = Directory {
            banks: vec!["A".into()],
            accounts: (0..5).map(|i| (format!("ES{i}").into_boxed_str(), 0)).collect(),
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut seen = [[false; 5]; 5];
        for _ in 0..2_000 {
            let (from, to) = directory.pick_pair(&mut rng);
            assert_ne!(from, to);
            seen[from][to] = true;
        }
        let pairs = seen.iter().flatten().filter(|s| **s).count();
        assert_eq!(pairs, 20);
    }
}
