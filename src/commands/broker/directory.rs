//! The accounts the broker picks from, read once from the per-bank directory lists in Redis.
//! Picking a pair of distinct accounts is O(1), whatever the number of accounts.

use anyhow::{Result, ensure};
use rand::Rng;

use crate::store::connection::Connection;
use crate::store::dataset;
use crate::store::keys::Keys;
use crate::store::meta::Meta;

/// Every account, with the index of its bank.
#[derive(Debug)]
pub struct Directory {
    pub banks: Vec<String>,
    pub accounts: Vec<(Box<str>, u16)>,
}

impl Directory {
    /// Reads the directory lists of every bank in `meta`.
    pub async fn load(conn: &mut Connection, keys: &Keys, meta: &Meta) -> Result<Directory> {
        let accounts = dataset::read_directory(conn, keys, meta).await?;
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
