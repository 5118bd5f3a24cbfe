//! `interbank gen`: random, reproducible accounts files in the seed's format.
//!
//! The same `--seed` and count always give the same file (ChaCha8, whose output is fixed by its
//! specification). IBANs are valid Spanish IBANs carrying the bank's real entity code, and are
//! unique by construction: the ten-digit account number is a bijection of the row number.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::ledger::banks::KNOWN_BANKS;
use crate::ledger::iban;

/// The seed's range of initial balances, in cents.
pub const MIN_BALANCE_CENTS: i64 = 100;
pub const MAX_BALANCE_CENTS: i64 = 10_000;
/// The most accounts one call makes: the account number space is 10^10, and files stay sane.
pub const MAX_GENERATED_ACCOUNTS: u64 = 50_000_000;
/// Account numbers are `(row * MULTIPLIER + offset) mod 10^10`: the multiplier is coprime with
/// 10^10 (odd, not a multiple of 5), so distinct rows get distinct numbers.
const ACCOUNT_NUMBER_SPACE: u64 = 10_000_000_000;
const ACCOUNT_NUMBER_MULTIPLIER: u64 = 7_919_876_543;

const FIRST_NAMES: &[&str] = &[
    "Hortensia",
    "Asdrubal",
    "Martin",
    "Alex",
    "Gabriela",
    "Florinda",
    "Albina",
    "Raquel",
    "Lucia",
    "Hugo",
    "Carmen",
    "Mateo",
    "Elena",
    "Pablo",
    "Ines",
    "Jorge",
    "Nuria",
    "Diego",
    "Marta",
    "Ivan",
    "Rocio",
    "Sergio",
    "Pilar",
    "Andres",
    "Teresa",
    "Javier",
    "Lorena",
    "Ruben",
    "Aitana",
    "Unai",
];
const SURNAMES: &[&str] = &[
    "Salcedo",
    "Rivera",
    "Ferreras",
    "Rosales",
    "Collado",
    "Fernandez",
    "Ferrero",
    "Armas",
    "Burgos",
    "Mulet",
    "Penalver",
    "Ponce",
    "Saez",
    "Alvarez",
    "Garcia",
    "Lopez",
    "Martinez",
    "Sanchez",
    "Perez",
    "Gomez",
    "Ruiz",
    "Diaz",
    "Moreno",
    "Navarro",
    "Torres",
    "Romero",
    "Iglesias",
    "Ortega",
];

/// What `gen` wrote.
#[derive(Debug)]
pub struct Generated {
    pub accounts_path: PathBuf,
    pub banks_path: PathBuf,
    pub accounts: u64,
    pub total_cents: i64,
}

/// Writes `accounts_<count>.csv` and `banks.csv` into `out_dir`.
pub fn generate(out_dir: &Path, count: u64, seed: u64) -> Result<Generated> {
    ensure!(
        (2..=MAX_GENERATED_ACCOUNTS).contains(&count),
        "--accounts must be between 2 and {MAX_GENERATED_ACCOUNTS} (a transfer needs two accounts); got {count}"
    );
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create the output folder {}", out_dir.display()))?;
    let banks_path = out_dir.join("banks.csv");
    let accounts_path = out_dir.join(format!("accounts_{count}.csv"));
    write_atomically(&banks_path, |out| {
        writeln!(out, "bank")?;
        for bank in &KNOWN_BANKS {
            writeln!(out, "{}", bank.name)?;
        }
        Ok(())
    })?;
    let mut total_cents: i64 = 0;
    write_atomically(&accounts_path, |out| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let offset = rng.random_range(0..ACCOUNT_NUMBER_SPACE);
        writeln!(out, "iban,bank,name,ammount")?;
        for row in 0..count {
            let bank = &KNOWN_BANKS[rng.random_range(0..KNOWN_BANKS.len())];
            let branch = format!("{:04}", rng.random_range(0..10_000u32));
            let number = (row as u128 * ACCOUNT_NUMBER_MULTIPLIER as u128 + offset as u128)
                % ACCOUNT_NUMBER_SPACE as u128;
            let account = format!("{number:010}");
            let iban = iban::spanish(bank.entity_code, &branch, &account);
            let first = FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())];
            let surname1 = SURNAMES[rng.random_range(0..SURNAMES.len())];
            let surname2 = SURNAMES[rng.random_range(0..SURNAMES.len())];
            let balance = rng.random_range(MIN_BALANCE_CENTS..=MAX_BALANCE_CENTS);
            total_cents += balance;
            writeln!(out, "{iban},{},{first} {surname1} {surname2},{balance}", bank.name)?;
        }
        Ok(())
    })?;
    Ok(Generated { accounts_path, banks_path, accounts: count, total_cents })
}

/// Writes a file through a temporary file in the same folder and renames it into place, so a
/// reader never sees half a file.
fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = path.with_extension("csv.tmp");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    write(&mut out)
        .and_then(|()| out.flush())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::accounts;
    use crate::ledger::banks::bank_for_entity_code;

    #[test]
    fn generated_files_are_valid_reproducible_and_bank_readable() {
        let dir = tempfile::tempdir().unwrap();
        let first = generate(dir.path(), 500, 7).unwrap();
        let bytes_first = std::fs::read(&first.accounts_path).unwrap();
        let loaded = accounts::load(&first.accounts_path, None).unwrap();
        assert_eq!(loaded.accounts.len(), 500);
        assert_eq!(loaded.total_cents, first.total_cents);
        for account in &loaded.accounts {
            let code = iban::spanish_entity_code(&account.iban).unwrap();
            assert_eq!(bank_for_entity_code(code).unwrap().name, loaded.banks[account.bank]);
            assert!((MIN_BALANCE_CENTS..=MAX_BALANCE_CENTS).contains(&account.balance_cents));
        }
        generate(dir.path(), 500, 7).unwrap();
        assert_eq!(std::fs::read(&first.accounts_path).unwrap(), bytes_first);
        generate(dir.path(), 500, 8).unwrap();
        assert_ne!(std::fs::read(&first.accounts_path).unwrap(), bytes_first);
    }

    #[test]
    fn refuses_fewer_than_two_accounts() {
        let dir = tempfile::tempdir().unwrap();
        assert!(generate(dir.path(), 1, 0).unwrap_err().to_string().contains("between 2 and"));
    }
}
