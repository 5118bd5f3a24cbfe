//! The pure replay and verification code, without Redis: how many events per second `consume`'s
//! ledger applies, in both layouts, and how long the checks take, on a generated data set.
//! `cargo bench`.

use divan::Bencher;
use interbank::ledger::accounts::{Account, AccountsFile};
use interbank::ledger::events::{
    Entry, Event, Layout, Outcome, Phase, Settlement, Step, TransferId,
};
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

/// The sharded layout's entries for as many transfers of one atomic producer, each with the bank
/// whose stream holds it: a transfer inside a bank is one event, one between banks a debit, a
/// credit and a settlement (of that one transfer), in that order.
fn sharded_entries(file: &AccountsFile, transfers: u64) -> Vec<(u16, Entry<'_>)> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut balances: Vec<i64> = file.accounts.iter().map(|a| a.balance_cents).collect();
    let mut next_seq = [1_u64; BANKS];
    let mut entries = Vec::new();
    for _ in 0..transfers {
        let from = rng.random_range(0..balances.len());
        let to = (from + 1 + rng.random_range(0..balances.len() - 1)) % balances.len();
        let amount_cents = rng.random_range(100..=5000);
        balances[from] -= amount_cents;
        balances[to] += amount_cents;
        let (a, b) = (file.accounts[from].bank, file.accounts[to].bank);
        let id = TransferId { run: 1, producer: 1, seq: next_seq[a] };
        next_seq[a] += 1;
        let (from_iban, to_iban) = (&file.accounts[from].iban, &file.accounts[to].iban);
        let (from_bank, to_bank) = (&file.banks[a], &file.banks[b]);
        let stream = |bank: usize| u16::try_from(bank).expect("13 banks");
        if a == b {
            let event = Event {
                id,
                outcome: Outcome::Completed,
                from: from_iban,
                to: to_iban,
                from_bank,
                to_bank,
                amount_cents,
                from_balance_cents: Some(balances[from]),
            };
            entries.push((stream(a), Entry::Transfer(event)));
            continue;
        }
        let step = |phase| {
            let step =
                Step { id, phase, from: from_iban, to: to_iban, from_bank, to_bank, amount_cents };
            Entry::Step(step)
        };
        entries.push((stream(a), step(Phase::Debited { from_balance_cents: balances[from] })));
        entries.push((stream(b), step(Phase::Credited { to_balance_cents: balances[to] })));
        let settlement = Settlement { from_bank, amount_cents, ids: vec![id] };
        entries.push((stream(a), Entry::Settlement(settlement)));
    }
    entries
}

#[divan::bench(args = [100, 10_000, 1_000_000])]
fn replay_100k_sharded_transfers(bencher: Bencher, accounts: usize) {
    let file = file(accounts);
    let entries = sharded_entries(&file, EVENTS);
    bencher
        .counter(divan::counter::ItemsCount::new(entries.len()))
        .with_inputs(|| Ledger::with_layout(&file, Layout::Sharded))
        .bench_values(|mut ledger| {
            for (bank, entry) in &entries {
                ledger.apply_on(*bank, "0-0", entry, |_| Some(Strategy::Atomic));
            }
            assert!(ledger.in_flight.is_empty());
            ledger
        });
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
        producers: vec![ProducerRecord {
            run: 1,
            producer: 1,
            bank: None,
            applied: EVENTS,
            completed: EVENTS,
        }],
        in_flight: vec![],
        outbox: vec![],
    };
    let keys = Keys::new("bench").unwrap();
    bencher.bench(|| {
        let report = verify(&keys, &ledger, &snapshot);
        assert!(report.verified);
        report
    });
}
