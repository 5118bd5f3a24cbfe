//! The pure replay and verification code, without Redis: how many events per second `consume`'s
//! ledger applies, and how long the checks take, on a generated data set. `cargo bench`.

use divan::Bencher;
use interbank::ledger::accounts::{Account, AccountsFile};
use interbank::ledger::events::{Event, Outcome, TransferId};
use interbank::ledger::replay::Ledger;
use interbank::ledger::runs::{RunRecord, RunStatus, Strategy};
use interbank::ledger::verify::{ProducerRecord, Snapshot, Value, verify};
use interbank::store::keys::Keys;
use rand::{Rng, SeedableRng};

const BANKS: usize = 13;
const EVENTS: u64 = 100_000;

fn main() {
    divan::main();
}

fn file(accounts: usize) -> AccountsFile {
    let banks: Vec<String> = (0..BANKS).map(|b| format!("Bank{b}")).collect();
    let accounts = (0..accounts)
        .map(|i| Account {
            iban: format!("ES{i:022}"),
            bank: i % BANKS,
            name: "x".into(),
            balance_cents: 1_000_000,
        })
        .collect::<Vec<_>>();
    let total_cents = accounts.iter().map(|a| a.balance_cents).sum();
    AccountsFile { path: "bench.csv".into(), sha256: String::new(), banks, accounts, total_cents }
}

/// Events of one atomic producer whose recorded balances match the replay.
fn events(file: &AccountsFile, count: u64) -> Vec<Event<'_>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut balances: Vec<i64> = file.accounts.iter().map(|a| a.balance_cents).collect();
    (1..=count)
        .map(|seq| {
            let from = rng.random_range(0..balances.len());
            let to = (from + 1 + rng.random_range(0..balances.len() - 1)) % balances.len();
            let amount = rng.random_range(100..=5000);
            balances[from] -= amount;
            balances[to] += amount;
            Event {
                id: TransferId { run: 1, producer: 1, seq },
                outcome: Outcome::Completed,
                from: &file.accounts[from].iban,
                to: &file.accounts[to].iban,
                from_bank: &file.banks[file.accounts[from].bank],
                to_bank: &file.banks[file.accounts[to].bank],
                amount_cents: amount,
                from_balance_cents: Some(balances[from]),
            }
        })
        .collect()
}

#[divan::bench(args = [100, 10_000, 1_000_000])]
fn replay_100k_events(bencher: Bencher, accounts: usize) {
    let file = file(accounts);
    let events = events(&file, EVENTS);
    bencher
        .counter(divan::counter::ItemsCount::new(EVENTS as usize))
        .with_inputs(|| Ledger::new(&file))
        .bench_values(|mut ledger| {
            for event in &events {
                ledger.apply("0-0", event, Some(Strategy::Atomic));
            }
            assert_eq!(ledger.events, EVENTS);
            ledger
        });
}

#[divan::bench(args = [100, 10_000, 1_000_000])]
fn verify_snapshot(bencher: Bencher, accounts: usize) {
    let file = file(accounts);
    let mut ledger = Ledger::new(&file);
    for event in &events(&file, EVENTS) {
        ledger.apply("0-0", event, Some(Strategy::Atomic));
    }
    let snapshot = Snapshot {
        accounts: ledger.balances.iter().map(|v| Value::Int(*v)).collect(),
        banks: ledger.bank_balances.iter().map(|v| Value::Int(*v)).collect(),
        interbank: ledger.interbank.iter().map(|v| Value::Int(*v)).collect(),
        runs: vec![RunRecord {
            id: 1,
            strategy: Strategy::Atomic,
            workers: 1,
            producers: 1,
            planned: EVENTS,
            started_ms: 0,
            status: RunStatus::Ended,
            ended_ms: Some(1),
            events: Some(EVENTS),
            error: None,
        }],
        producers: vec![ProducerRecord { run: 1, producer: 1, applied: EVENTS, completed: EVENTS }],
    };
    let keys = Keys::new("bench").unwrap();
    bencher.bench(|| {
        let report = verify(&keys, &ledger, &snapshot);
        assert!(report.verified);
        report
    });
}
