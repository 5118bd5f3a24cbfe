//! The accounts the broker picks from, read once from the per-bank directory lists in Redis, and
//! which pairs of them a run's transfers are between ([`Pairs`]). Picking a pair is O(1),
//! whatever the number of accounts, with no retry loop.

use anyhow::{Result, ensure};
use rand::Rng;

use crate::store::connection::Connection;
use crate::store::dataset;
use crate::store::keys::Keys;
use crate::store::meta::Meta;

/// Which pairs of accounts a run's transfers are between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pairs {
    /// Any two distinct accounts, uniformly: with b banks of equal size, about (b − 1)/b of the
    /// transfers cross banks.
    #[default]
    Any,
    /// The source uniformly, the destination among its bank's other accounts: no transfer
    /// crosses banks.
    SameBank,
    /// The source uniformly, the destination among the other banks' accounts: every transfer
    /// crosses banks.
    CrossBank,
}

impl Pairs {
    pub fn as_str(self) -> &'static str {
        match self {
            Pairs::Any => "any",
            Pairs::SameBank => "same-bank",
            Pairs::CrossBank => "cross-bank",
        }
    }
}

/// Every account, with the index of its bank, in order of bank.
#[derive(Debug)]
pub struct Directory {
    pub banks: Vec<String>,
    pub accounts: Vec<(Box<str>, u16)>,
    pairs: Pairs,
    /// Bank `b`'s accounts are `accounts[bank_start[b]..bank_start[b + 1]]`.
    bank_start: Vec<usize>,
    /// With [`Pairs::SameBank`], the accounts whose bank has another one to pay; else empty.
    same_bank_sources: Vec<usize>,
}

impl Directory {
    /// Reads the directory lists of every bank in `meta`.
    pub async fn load(
        conn: &mut Connection,
        keys: &Keys,
        meta: &Meta,
        pairs: Pairs,
    ) -> Result<Directory> {
        let accounts = dataset::read_directory(conn, keys, meta).await?;
        Directory::new(meta.banks.clone(), accounts, pairs)
    }

    /// The directory of `accounts`, listed bank by bank in the order of `banks`; refuses a
    /// choice of [`Pairs`] the accounts cannot make.
    pub fn new(banks: Vec<String>, accounts: Vec<(Box<str>, u16)>, pairs: Pairs) -> Result<Self> {
        ensure!(accounts.len() >= 2, "a transfer needs at least two accounts");
        assert!(accounts.windows(2).all(|w| w[0].1 <= w[1].1), "accounts not listed by bank");
        let mut bank_start = vec![0; banks.len() + 1];
        for (_, bank) in &accounts {
            assert!(usize::from(*bank) < banks.len(), "bank {bank} of {}", banks.len());
            bank_start[usize::from(*bank) + 1] += 1;
        }
        for b in 1..bank_start.len() {
            bank_start[b] += bank_start[b - 1];
        }
        let size = |b: usize| bank_start[b + 1] - bank_start[b];
        let banks_with_accounts = (0..banks.len()).filter(|&b| size(b) > 0).count();
        let same_bank_sources: Vec<usize> = match pairs {
            Pairs::SameBank => {
                (0..accounts.len()).filter(|&i| size(usize::from(accounts[i].1)) >= 2).collect()
            }
            Pairs::Any | Pairs::CrossBank => Vec::new(),
        };
        ensure!(
            pairs != Pairs::SameBank || !same_bank_sources.is_empty(),
            "--pairs same-bank needs a bank with two accounts or more; no bank of the data set \
             has more than one: use --pairs any or cross-bank"
        );
        ensure!(
            pairs != Pairs::CrossBank || banks_with_accounts >= 2,
            "--pairs cross-bank needs accounts in two banks or more; the data set has them in \
             {banks_with_accounts}: use --pairs any or same-bank"
        );
        Ok(Directory { banks, accounts, pairs, bank_start, same_bank_sources })
    }

    /// Two distinct account indices, as [`Pairs`] says.
    pub fn pick_pair(&self, rng: &mut impl Rng) -> (usize, usize) {
        let n = self.accounts.len();
        let (from, to) = match self.pairs {
            Pairs::Any => {
                let from = rng.random_range(0..n);
                (from, skip(rng.random_range(0..n - 1), from, 1))
            }
            Pairs::SameBank => {
                let from =
                    self.same_bank_sources[rng.random_range(0..self.same_bank_sources.len())];
                let (start, end) = self.bank_of(from);
                let to = start + rng.random_range(0..end - start - 1);
                (from, skip(to, from, 1))
            }
            Pairs::CrossBank => {
                let from = rng.random_range(0..n);
                let (start, end) = self.bank_of(from);
                (from, skip(rng.random_range(0..n - (end - start)), start, end - start))
            }
        };
        debug_assert_ne!(from, to);
        (from, to)
    }

    /// The range of indices of the accounts of `account`'s bank.
    fn bank_of(&self, account: usize) -> (usize, usize) {
        let bank = usize::from(self.accounts[account].1);
        (self.bank_start[bank], self.bank_start[bank + 1])
    }
}

/// Index `k` of a list from which `len` items starting at `start` were taken out, as an index of
/// the whole list.
fn skip(k: usize, start: usize, len: usize) -> usize {
    if k >= start { k + len } else { k }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Accounts `ES0`... in banks of the given sizes, listed bank by bank.
    fn directory(sizes: &[usize], pairs: Pairs) -> Result<Directory> {
        let banks = (0..sizes.len()).map(|b| format!("B{b}")).collect();
        let mut accounts = Vec::new();
        for (b, &size) in sizes.iter().enumerate() {
            let bank = u16::try_from(b).unwrap();
            for _ in 0..size {
                accounts.push((format!("ES{}", accounts.len()).into(), bank));
            }
        }
        Directory::new(banks, accounts, pairs)
    }

    /// Every ordered pair `pick_pair` made in 4,000 picks, as `seen[from][to]`.
    fn picks(dir: &Directory) -> Vec<Vec<bool>> {
        let n = dir.accounts.len();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut seen = vec![vec![false; n]; n];
        for _ in 0..4_000 {
            let (from, to) = dir.pick_pair(&mut rng);
            assert_ne!(from, to);
            seen[from][to] = true;
        }
        seen
    }

    /// Which ordered pairs of distinct accounts `keep(from bank, to bank)` allows.
    fn expected(dir: &Directory, keep: impl Fn(u16, u16) -> bool) -> Vec<Vec<bool>> {
        let bank = |i: usize| dir.accounts[i].1;
        let n = dir.accounts.len();
        (0..n).map(|f| (0..n).map(|t| f != t && keep(bank(f), bank(t))).collect()).collect()
    }

    #[test]
    fn any_pairs_cover_every_two_accounts() {
        let dir = directory(&[3, 1, 0, 2], Pairs::Any).unwrap();
        assert_eq!(picks(&dir), expected(&dir, |_, _| true));
    }

    #[test]
    fn same_bank_pairs_cover_every_two_accounts_of_a_bank_and_no_other() {
        let dir = directory(&[3, 1, 0, 2], Pairs::SameBank).unwrap();
        assert_eq!(picks(&dir), expected(&dir, |a, b| a == b));
    }

    #[test]
    fn cross_bank_pairs_cover_every_two_accounts_of_two_banks_and_no_other() {
        let dir = directory(&[3, 1, 0, 2], Pairs::CrossBank).unwrap();
        assert_eq!(picks(&dir), expected(&dir, |a, b| a != b));
    }

    #[test]
    fn pairs_the_accounts_cannot_make_are_refused_with_the_flag() {
        let err = directory(&[1, 1, 1], Pairs::SameBank).unwrap_err().to_string();
        assert!(err.contains("--pairs same-bank"), "{err}");
        let err = directory(&[0, 4, 0], Pairs::CrossBank).unwrap_err().to_string();
        assert!(err.contains("--pairs cross-bank") && err.contains("in 1"), "{err}");
        assert!(directory(&[1], Pairs::Any).is_err());
    }
}
