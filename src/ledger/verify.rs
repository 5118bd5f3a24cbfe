//! Comparing what Redis holds with what the replay rebuilt, check by check: a pure function that
//! turns a [`Ledger`] and a [`Snapshot`] into a [`Report`] whose verdict is true only when every
//! check holds. Each failure names the key, the expected and the actual value.
//!
//! Both layouts are held to the same rules. In the sharded layout money can be in flight between
//! banks (debited at the source, not yet credited or refunded), so the sums that are zero on one
//! server are minus that money, the accounts plus that money are what was loaded, and what is in
//! flight must match each bank's outbox and in-flight counter in Redis.

use std::collections::HashSet;

use serde::Serialize;

use crate::ledger::events::{Layout, TransferId, parse_outbound, producer_id};
use crate::ledger::replay::{
    Anomalies, AnomalyKind, Crossing, Flight, FlightKey, Ledger, RunTally, Scope, Terms,
};
use crate::ledger::runs::{RunRecord, RunStatus, Strategy};

/// How many failing items one check lists; the rest are counted.
pub const MAX_LISTED: usize = 20;

/// A value read from Redis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    Missing,
    Int(i64),
    /// Not an integer: what was there, as text.
    Invalid(String),
    /// Redis refused to read it (a key of the wrong type, say): its error.
    Error(String),
}

impl Value {
    fn int(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(*v),
            _ => None,
        }
    }

    fn show(&self) -> String {
        match self {
            Value::Missing => "nothing (the key is missing)".to_string(),
            Value::Int(v) => v.to_string(),
            Value::Invalid(text) => format!("{text:?}, not an integer"),
            Value::Error(error) => format!("an error: {error}"),
        }
    }
}

/// One atomic producer's record in Redis: how many transfers it applied and how many completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    pub run: u64,
    /// The producer's number in its run: a worker, or a committer with `--group-commit`.
    pub producer: u32,
    /// The source bank whose producer key this is (sharded layout: `P:{B}:producer:<id>`), by
    /// index in the ledger's banks; `None` in the single layout (`P:producer:<id>`).
    pub bank: Option<u16>,
    /// The key's length: transfers decided (completed, cancelled and, sharded, debited).
    pub applied: u64,
    /// Its `C` letters: transfers completed in one step.
    pub completed: u64,
}

/// One field of a source bank's outbox (sharded layout), as Redis holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    /// The source bank whose outbox (`P:{A}:outbox`) holds it, by index in the ledger's banks.
    pub bank: u16,
    /// The field: the transfer id.
    pub id: String,
    /// The value: `<to_bank>,<from>,<to>,<amount>`.
    pub value: String,
}

/// What Redis holds, read after the runs ended. Vectors follow the ledger's order.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub accounts: Vec<Value>,
    pub banks: Vec<Value>,
    /// `interbank[a * banks + b]`; the diagonal is not read.
    pub interbank: Vec<Value>,
    pub runs: Vec<RunRecord>,
    pub producers: Vec<ProducerRecord>,
    /// Sharded layout: each bank's in-flight counter (`P:{A}:inflight`); empty in the single one.
    pub in_flight: Vec<Value>,
    /// Sharded layout: every field of every bank's outbox; empty in the single layout.
    pub outbox: Vec<OutboxRecord>,
}

/// One check and its result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
    pub failures: Vec<String>,
    pub more_failures: u64,
}

/// A run as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunLine {
    pub run: u64,
    pub strategy: Strategy,
    pub status: RunStatus,
    pub expected_events: Option<u64>,
    pub seen: RunTally,
}

/// The verdict and everything that led to it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub verified: bool,
    pub events: u64,
    pub completed: u64,
    pub cancelled: u64,
    pub cancelled_by_reason: Vec<(String, u64)>,
    pub moved_cents: i128,
    pub accounts: usize,
    pub banks: usize,
    pub total_cents: i64,
    pub runs: Vec<RunLine>,
    pub checks: Vec<Check>,
}

struct Failures {
    listed: Vec<String>,
    more: u64,
}

impl Failures {
    fn new() -> Failures {
        Failures { listed: Vec::new(), more: 0 }
    }

    fn add(&mut self, text: impl FnOnce() -> String) {
        if self.listed.len() < MAX_LISTED {
            self.listed.push(text());
        } else {
            self.more += 1;
        }
    }

    fn count(&self) -> u64 {
        self.listed.len() as u64 + self.more
    }

    fn into_check(self, name: &'static str, detail: String) -> Check {
        Check {
            name,
            passed: self.count() == 0,
            detail,
            failures: self.listed,
            more_failures: self.more,
        }
    }
}

fn compare(failures: &mut Failures, key: impl FnOnce() -> String, expected: i64, actual: &Value) {
    if actual.int() != Some(expected) {
        failures.add(|| format!("{}: expected {expected}, found {}", key(), actual.show()));
    }
}

/// How an anomaly's entry is named: its id, and in the sharded layout its bank's stream.
fn entry_name(keys: &impl KeyNames, ledger: &Ledger, stream: Option<u16>, entry: &str) -> String {
    match stream {
        None => format!("stream entry {entry}"),
        Some(bank) => {
            format!("stream {} entry {entry}", keys.events_of(&ledger.banks[usize::from(bank)]))
        }
    }
}

fn anomalies_check(
    keys: &impl KeyNames,
    ledger: &Ledger,
    anomalies: &Anomalies,
    name: &'static str,
    kinds: &[AnomalyKind],
    ok_detail: String,
) -> Check {
    let mut failures = Failures::new();
    let mut counts = Vec::new();
    for kind in kinds {
        if let Some((count, kept)) = anomalies.get(kind) {
            counts.push(format!("{count} {}", kind.describe()));
            for anomaly in kept {
                failures.add(|| {
                    let at = entry_name(keys, ledger, anomaly.stream, &anomaly.entry);
                    format!("{at}: {}", anomaly.detail)
                });
            }
            failures.more += count.saturating_sub(kept.len() as u64);
        }
    }
    let detail = if counts.is_empty() { ok_detail } else { counts.join("; ") };
    failures.into_check(name, detail)
}

/// How the store names what a failure points at, so that every failure names the very key to look
/// at. The store's key schema implements it; the ledger never builds a key itself.
pub trait KeyNames {
    fn account(&self, bank: &str, iban: &str) -> String;
    fn bank_balance(&self, bank: &str) -> String;
    fn interbank(&self, bank: &str) -> String;
    fn run(&self, run: u64) -> String;
    fn producer(&self, producer: &str) -> String;
    /// Sharded layout: bank B's stream, its producer keys, outbox and in-flight counter.
    fn events_of(&self, bank: &str) -> String;
    fn producer_in(&self, bank: &str, producer: &str) -> String;
    fn outbox(&self, bank: &str) -> String;
    fn in_flight(&self, bank: &str) -> String;
}

/// The anomalies the steps of transfers between banks can show (sharded layout).
const CROSSING_ANOMALIES: [AnomalyKind; 7] = [
    AnomalyKind::MissingDebit,
    AnomalyKind::AnsweredTwice,
    AnomalyKind::CreditedAndRejected,
    AnomalyKind::ClosedWrongly,
    AnomalyKind::ClosedTwice,
    AnomalyKind::ClosedUndebited,
    AnomalyKind::StepMismatch,
];

/// Every check, in the order the report shows them.
pub fn verify(keys: &impl KeyNames, ledger: &Ledger, snapshot: &Snapshot) -> Report {
    assert_fits(ledger, snapshot);
    let sharded = ledger.layout == Layout::Sharded;
    let anomalies = ledger.final_anomalies();
    let flight = ledger.flight();
    let mut checks = vec![
        entries_check(keys, ledger, &anomalies),
        accounts_check(keys, ledger, snapshot),
        bank_balances_check(keys, ledger, snapshot),
        interbank_check(keys, ledger, snapshot),
    ];
    if sharded {
        checks.push(in_flight_check(keys, ledger, snapshot, &flight));
        checks.push(outbox_check(keys, ledger, snapshot));
    }
    checks.extend([
        bank_sum_check(ledger, snapshot, &flight),
        interbank_sum_check(ledger, snapshot, &flight),
        conservation_check(ledger, snapshot, &flight),
        negative_balance_check(keys, ledger, &anomalies, snapshot),
        ids_check(keys, ledger, &anomalies),
    ]);
    if sharded {
        checks.push(crossings_check(keys, ledger, &anomalies, &flight));
    }
    let (events_check, run_lines) = events_match_runs(keys, ledger, snapshot);
    checks.push(events_check);
    if snapshot.runs.iter().any(|r| r.strategy == Strategy::Atomic) {
        checks.push(anomalies_check(
            keys,
            ledger,
            &anomalies,
            "stream order is the order transfers were applied (atomic runs)",
            &[AnomalyKind::OrderMismatch],
            "every event's recorded balance equals the replay at that point".to_string(),
        ));
    }
    Report {
        verified: checks.iter().all(|c| c.passed),
        events: ledger.events,
        completed: ledger.completed,
        cancelled: ledger.cancelled_total(),
        cancelled_by_reason: ledger
            .cancelled
            .iter()
            .map(|(r, c)| (r.as_str().to_string(), *c))
            .collect(),
        moved_cents: ledger.moved_cents,
        accounts: ledger.balances.len(),
        banks: ledger.banks.len(),
        total_cents: ledger.initial_total_cents,
        runs: run_lines,
        checks,
    }
}

/// The snapshot was read for this ledger: one value per account, bank and pair, per bank's
/// in-flight counter in the sharded layout, and bank numbers that exist.
fn assert_fits(ledger: &Ledger, snapshot: &Snapshot) {
    assert_eq!(snapshot.accounts.len(), ledger.balances.len());
    assert_eq!(snapshot.banks.len(), ledger.banks.len());
    assert_eq!(snapshot.interbank.len(), ledger.interbank.len());
    let counters = if ledger.layout == Layout::Sharded { ledger.banks.len() } else { 0 };
    assert_eq!(snapshot.in_flight.len(), counters);
    let bank_ok = |b: u16| usize::from(b) < ledger.banks.len();
    assert!(snapshot.outbox.iter().all(|o| bank_ok(o.bank)));
    assert!(snapshot.producers.iter().all(|p| p.bank.is_none_or(bank_ok)));
}

/// Check 1: every stream entry is an event of a recorded run, on known accounts, on the stream
/// of the bank it changes.
fn entries_check(keys: &impl KeyNames, ledger: &Ledger, anomalies: &Anomalies) -> Check {
    anomalies_check(
        keys,
        ledger,
        anomalies,
        "every stream entry is an event of a recorded run",
        &[
            AnomalyKind::Malformed,
            AnomalyKind::UnknownRun,
            AnomalyKind::UnknownAccount,
            AnomalyKind::WrongStream,
        ],
        format!("{} events read", ledger.events),
    )
}

/// Check 2: every account in Redis equals the replay.
fn accounts_check(keys: &impl KeyNames, ledger: &Ledger, snapshot: &Snapshot) -> Check {
    let mut failures = Failures::new();
    for (i, (expected, actual)) in ledger.balances.iter().zip(&snapshot.accounts).enumerate() {
        let bank = &ledger.banks[usize::from(ledger.account_bank[i])];
        compare(&mut failures, || keys.account(bank, &ledger.ibans[i]), *expected, actual);
    }
    failures.into_check("accounts match the replay", format!("{} accounts", ledger.balances.len()))
}

/// Check 3: every bank balance equals the replay.
fn bank_balances_check(keys: &impl KeyNames, ledger: &Ledger, snapshot: &Snapshot) -> Check {
    let mut failures = Failures::new();
    for (bank, (expected, actual)) in
        ledger.banks.iter().zip(ledger.bank_balances.iter().zip(&snapshot.banks))
    {
        compare(&mut failures, || keys.bank_balance(bank), *expected, actual);
    }
    failures.into_check("bank balances match the replay", format!("{} banks", ledger.banks.len()))
}

/// Check 4: every interbank pair equals the replay.
fn interbank_check(keys: &impl KeyNames, ledger: &Ledger, snapshot: &Snapshot) -> Check {
    let n = ledger.banks.len();
    let mut failures = Failures::new();
    for a in 0..n {
        for b in (0..n).filter(|&b| b != a) {
            let (bank, other) = (&ledger.banks[a], &ledger.banks[b]);
            compare(
                &mut failures,
                || format!("{} field {other}", keys.interbank(bank)),
                ledger.interbank[a * n + b],
                &snapshot.interbank[a * n + b],
            );
        }
    }
    failures.into_check(
        "interbank balances match the replay",
        format!("{} pairs", n * n.saturating_sub(1)),
    )
}

/// Sharded layout: every bank's in-flight counter equals the money the replay has debited there
/// and not yet settled or voided (a missing counter is 0: `INCRBY` creates it).
fn in_flight_check(
    keys: &impl KeyNames,
    ledger: &Ledger,
    snapshot: &Snapshot,
    flight: &Flight,
) -> Check {
    let mut failures = Failures::new();
    for (bank, (expected, actual)) in
        ledger.banks.iter().zip(flight.outbound.iter().zip(&snapshot.in_flight))
    {
        let found = if *actual == Value::Missing { Some(0) } else { actual.int() };
        if found.map(i128::from) != Some(*expected) {
            failures.add(|| {
                format!("{}: expected {expected}, found {}", keys.in_flight(bank), actual.show())
            });
        }
    }
    let total: i128 = flight.outbound.iter().sum();
    failures.into_check(
        "in-flight counters match the replay",
        format!(
            "{} banks; {total} cents debited and not yet settled or voided",
            ledger.banks.len()
        ),
    )
}

/// Sharded layout: the outboxes hold exactly the transfers the replay has debited and not yet
/// settled or voided, each with its destination, accounts and amount.
fn outbox_check(keys: &impl KeyNames, ledger: &Ledger, snapshot: &Snapshot) -> Check {
    let mut failures = Failures::new();
    let mut found = HashSet::new();
    for record in &snapshot.outbox {
        let bank = &ledger.banks[usize::from(record.bank)];
        let field = || format!("{} field {}", keys.outbox(bank), record.id);
        let Some(id) = TransferId::parse(&record.id) else {
            failures.add(|| format!("{}: not a transfer id (value {:?})", field(), record.value));
            continue;
        };
        let key = FlightKey { bank: record.bank, id };
        found.insert(key);
        match ledger.in_flight.get(&key).filter(|c| c.seen.outbound()) {
            None => failures.add(|| {
                format!(
                    "{}: holds {:?}, but the replay has no transfer {id} from {bank} debited and not yet settled or voided",
                    field(),
                    record.value
                )
            }),
            Some(crossing) if outbox_terms(ledger, key, &record.value) != Some(crossing.terms) => {
                failures.add(|| {
                    format!(
                        "{}: expected {}, found {:?}",
                        field(),
                        outbox_value(ledger, crossing),
                        record.value
                    )
                })
            }
            Some(_) => {}
        }
    }
    let expected = ledger.in_flight.iter().filter(|(_, c)| c.seen.outbound());
    for (key, crossing) in expected.filter(|(key, _)| !found.contains(*key)) {
        failures.add(|| {
            let outbox = keys.outbox(&ledger.banks[usize::from(key.bank)]);
            format!(
                "{outbox} field {}: expected {}, found nothing",
                key.id,
                outbox_value(ledger, crossing)
            )
        });
    }
    failures.into_check(
        "outboxes hold the transfers in flight",
        format!("{} outbox entries", snapshot.outbox.len()),
    )
}

/// What an outbox value says, as the replay's terms; `None` when it cannot be read.
fn outbox_terms(ledger: &Ledger, key: FlightKey, value: &str) -> Option<Terms> {
    let outbound = parse_outbound(value).ok()?;
    let to_bank = ledger.banks.iter().position(|b| b == outbound.to_bank)?;
    Some(Terms {
        to_bank: u16::try_from(to_bank).ok()?,
        from: ledger.account_in(outbound.from, usize::from(key.bank)),
        to: ledger.account_in(outbound.to, to_bank),
        amount_cents: outbound.amount_cents,
    })
}

/// The outbox value the replay expects for a transfer in flight.
fn outbox_value(ledger: &Ledger, crossing: &Crossing) -> String {
    let terms = crossing.terms;
    let iban = |account: Option<u32>| {
        account
            .and_then(|a| usize::try_from(a).ok())
            .map_or("<an unknown account>", |a| &ledger.ibans[a])
    };
    format!(
        "\"{},{},{},{}\"",
        ledger.banks[usize::from(terms.to_bank)],
        iban(terms.from),
        iban(terms.to),
        terms.amount_cents
    )
}

/// How a sum's detail mentions the money in flight: not at all in the single layout.
fn in_flight_note(ledger: &Ledger, flight: &Flight) -> String {
    match ledger.layout {
        Layout::Single => String::new(),
        Layout::Sharded => format!("; {} cents in flight", flight.total()),
    }
}

/// Check 5: the bank balances in Redis sum to zero, or (sharded) to minus the money in flight.
fn bank_sum_check(ledger: &Ledger, snapshot: &Snapshot, flight: &Flight) -> Check {
    let mut failures = Failures::new();
    let bank_sum: i128 = snapshot.banks.iter().filter_map(Value::int).map(i128::from).sum();
    let expected = -flight.total();
    if bank_sum != expected {
        failures.add(|| format!("the bank balances in Redis add up to {bank_sum}, not {expected}"));
    }
    let name = match ledger.layout {
        Layout::Single => "bank balances sum to zero",
        Layout::Sharded => "bank balances sum to minus the money in flight",
    };
    failures.into_check(name, format!("sum {bank_sum}{}", in_flight_note(ledger, flight)))
}

/// Check 6: the interbank balances in Redis sum to zero and every A->B is -(B->A); sharded, both
/// less the money in flight (the debit moved the source's side, the credit not yet the other).
fn interbank_sum_check(ledger: &Ledger, snapshot: &Snapshot, flight: &Flight) -> Check {
    let n = ledger.banks.len();
    let mut failures = Failures::new();
    let interbank_sum: i128 =
        snapshot.interbank.iter().filter_map(Value::int).map(i128::from).sum();
    let expected = -flight.total();
    if interbank_sum != expected {
        failures.add(|| {
            format!("the interbank balances in Redis add up to {interbank_sum}, not {expected}")
        });
    }
    for a in 0..n {
        for b in (a + 1)..n {
            let (ab, ba) = (&snapshot.interbank[a * n + b], &snapshot.interbank[b * n + a]);
            if let (Some(x), Some(y)) = (ab.int(), ba.int())
                && i128::from(x) + i128::from(y) != -flight.between(a, b)
            {
                failures.add(|| pair_failure(ledger, flight, (a, b), (x, y)));
            }
        }
    }
    let name = match ledger.layout {
        Layout::Single => "interbank balances sum to zero and A->B = -(B->A)",
        Layout::Sharded => "interbank balances sum to minus the money in flight, pair by pair",
    };
    failures.into_check(name, format!("sum {interbank_sum}{}", in_flight_note(ledger, flight)))
}

/// Why a pair of banks' interbank balances do not cancel out (less what is in flight).
fn pair_failure(
    ledger: &Ledger,
    flight: &Flight,
    (a, b): (usize, usize),
    (x, y): (i64, i64),
) -> String {
    let (bank_a, bank_b) = (&ledger.banks[a], &ledger.banks[b]);
    match ledger.layout {
        Layout::Single => format!("{bank_a} -> {bank_b} is {x} but {bank_b} -> {bank_a} is {y}"),
        Layout::Sharded => format!(
            "{bank_a} -> {bank_b} is {x} and {bank_b} -> {bank_a} is {y}: they add up to {}, not {} ({} cents in flight between them)",
            i128::from(x) + i128::from(y),
            -flight.between(a, b),
            flight.between(a, b)
        ),
    }
}

/// Check 7: the accounts in Redis, with the money in flight (sharded), hold exactly what was
/// loaded.
fn conservation_check(ledger: &Ledger, snapshot: &Snapshot, flight: &Flight) -> Check {
    let mut failures = Failures::new();
    let account_sum: i128 = snapshot.accounts.iter().filter_map(Value::int).map(i128::from).sum();
    let in_flight = flight.total();
    let (held, in_flight_text) = match ledger.layout {
        Layout::Single => (format!("{account_sum} cents"), String::new()),
        Layout::Sharded => (
            format!("{account_sum} cents and {in_flight} are in flight"),
            format!(" and {in_flight} in flight"),
        ),
    };
    let loaded = i128::from(ledger.initial_total_cents);
    if account_sum + in_flight != loaded {
        failures.add(|| {
            format!(
                "the accounts in Redis hold {held}; {loaded} were loaded ({} created or lost)",
                account_sum + in_flight - loaded
            )
        });
    }
    failures.into_check(
        "money is conserved",
        format!("{account_sum} cents in accounts{in_flight_text}"),
    )
}

/// Check 8: no balance is negative, in Redis, in the replay, or right after any debit.
fn negative_balance_check(
    keys: &impl KeyNames,
    ledger: &Ledger,
    anomalies: &Anomalies,
    snapshot: &Snapshot,
) -> Check {
    let mut failures = Failures::new();
    for (i, value) in snapshot.accounts.iter().enumerate() {
        if let Some(v) = value.int().filter(|v| *v < 0) {
            let bank = &ledger.banks[usize::from(ledger.account_bank[i])];
            failures.add(|| format!("{} is {v} in Redis", keys.account(bank, &ledger.ibans[i])));
        }
    }
    for (i, v) in ledger.balances.iter().enumerate().filter(|(_, v)| **v < 0) {
        failures.add(|| format!("account {} is {v} in the replay", ledger.ibans[i]));
    }
    let overdraft = anomalies_check(
        keys,
        ledger,
        anomalies,
        "",
        &[AnomalyKind::Overdraft, AnomalyKind::Overflow],
        String::new(),
    );
    failures.listed.extend(overdraft.failures);
    failures.more += overdraft.more_failures;
    let detail = if overdraft.passed {
        "no account below zero, now or after any debit".to_string()
    } else {
        overdraft.detail
    };
    failures.into_check("no balance is negative", detail)
}

/// Every transfer id once per producer scope: per run and producer, and (sharded) source bank.
fn ids_check(keys: &impl KeyNames, ledger: &Ledger, anomalies: &Anomalies) -> Check {
    let scopes = ledger.producers.len();
    let detail = match ledger.layout {
        Layout::Single => format!("{scopes} producers, each in sequence"),
        Layout::Sharded => {
            format!("{scopes} producer scopes (source bank, run, producer), each in sequence")
        }
    };
    anomalies_check(
        keys,
        ledger,
        anomalies,
        "every transfer id appears exactly once",
        &[AnomalyKind::Duplicate, AnomalyKind::Gap],
        detail,
    )
}

/// Sharded layout: every transfer between banks has one debit, one answer and one closing step
/// that agree, or is still on its way (in flight, matched against Redis by the checks above).
fn crossings_check(
    keys: &impl KeyNames,
    ledger: &Ledger,
    anomalies: &Anomalies,
    flight: &Flight,
) -> Check {
    anomalies_check(
        keys,
        ledger,
        anomalies,
        "every transfer between banks is debited, answered and closed once",
        &CROSSING_ANOMALIES,
        format!(
            "{} in flight: {} cents debited and not yet credited or refunded",
            flight.transfers,
            flight.total()
        ),
    )
}

/// Events per run against what the run recorded, and per atomic producer against its key.
fn events_match_runs(
    keys: &impl KeyNames,
    ledger: &Ledger,
    snapshot: &Snapshot,
) -> (Check, Vec<RunLine>) {
    let mut failures = Failures::new();
    let mut lines = Vec::new();
    let mut unchecked = 0;
    for run in &snapshot.runs {
        let seen = ledger.runs.get(&run.id).copied().unwrap_or_default();
        let applied: Option<u64> = (run.strategy == Strategy::Atomic).then(|| {
            snapshot.producers.iter().filter(|p| p.run == run.id).map(|p| p.applied).sum()
        });
        let expected = applied.or(run.events);
        match expected {
            Some(expected) if expected != seen.events => failures.add(|| {
                format!(
                    "run {} ({}) wrote {expected} transfers but the stream has {} events",
                    run.id,
                    run.strategy.as_str(),
                    seen.events
                )
            }),
            Some(_) => {}
            None => unchecked += 1,
        }
        if let (Some(recorded), Some(applied)) = (run.events, applied)
            && recorded != applied
        {
            failures.add(|| {
                format!(
                    "{} says {recorded} events, its producer keys hold {applied}",
                    keys.run(run.id)
                )
            });
        }
        lines.push(RunLine {
            run: run.id,
            strategy: run.strategy,
            status: run.status,
            expected_events: expected,
            seen,
        });
    }
    for producer in &snapshot.producers {
        let scope = Scope { bank: producer.bank, run: producer.run, producer: producer.producer };
        let seen = ledger.producers.get(&scope).copied().unwrap_or_default();
        let key = || {
            let id = producer_id(producer.run, producer.producer);
            match producer.bank {
                None => keys.producer(&id),
                Some(bank) => keys.producer_in(&ledger.banks[usize::from(bank)], &id),
            }
        };
        if seen.events != producer.applied || seen.last_seq != producer.applied {
            failures.add(|| {
                format!(
                    "{}: {} transfers applied, the stream has {} events up to sequence {}",
                    key(),
                    producer.applied,
                    seen.events,
                    seen.last_seq
                )
            });
        } else if seen.completed != producer.completed {
            failures.add(|| {
                format!(
                    "{}: {} completed, the stream has {}",
                    key(),
                    producer.completed,
                    seen.completed
                )
            });
        }
    }
    let stray: u64 =
        ledger.runs.keys().filter(|id| !snapshot.runs.iter().any(|r| r.id == **id)).count() as u64;
    if stray > 0 {
        failures.add(|| format!("{stray} runs in the stream have no record"));
    }
    let mut detail = format!("{} events from {} runs", ledger.events, snapshot.runs.len());
    if unchecked > 0 {
        detail.push_str(&format!("; {unchecked} unfinished non-atomic runs cannot be counted"));
    }
    (failures.into_check("events = transfers issued", detail), lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::replay::sharded::tests::{credit, debit, replay, settle, sharded};
    use crate::ledger::replay::tests::{event, file};

    fn run(strategy: Strategy, events: u64) -> RunRecord {
        RunRecord {
            id: 1,
            strategy,
            workers: 1,
            producers: 1,
            planned: events,
            started_ms: 0,
            status: RunStatus::Ended,
            ended_ms: Some(1),
            events: Some(events),
            error: None,
        }
    }

    fn matching(ledger: &Ledger, strategy: Strategy) -> Snapshot {
        Snapshot {
            accounts: ledger.balances.iter().map(|v| Value::Int(*v)).collect(),
            banks: ledger.bank_balances.iter().map(|v| Value::Int(*v)).collect(),
            interbank: ledger.interbank.iter().map(|v| Value::Int(*v)).collect(),
            runs: vec![run(strategy, ledger.events)],
            producers: if strategy == Strategy::Atomic {
                vec![ProducerRecord {
                    run: 1,
                    producer: 1,
                    bank: None,
                    applied: ledger.events,
                    completed: ledger.completed,
                }]
            } else {
                vec![]
            },
            in_flight: vec![],
            outbox: vec![],
        }
    }

    fn replayed() -> Ledger {
        let mut ledger = Ledger::new(&file());
        ledger.apply("1-0", &event(1, "A1", "B1", 300, 700), Some(Strategy::Atomic));
        ledger.apply("2-0", &event(2, "B1", "A2", 100, 200), Some(Strategy::Atomic));
        ledger
    }

    /// Names keys as the store's schema does under the prefix `p`.
    struct TestKeys;

    impl KeyNames for TestKeys {
        fn account(&self, bank: &str, iban: &str) -> String {
            format!("p:{{{bank}}}:account:{iban}")
        }
        fn bank_balance(&self, bank: &str) -> String {
            format!("p:{{{bank}}}:balance")
        }
        fn interbank(&self, bank: &str) -> String {
            format!("p:{{{bank}}}:interbank")
        }
        fn run(&self, run: u64) -> String {
            format!("p:run:{run}")
        }
        fn producer(&self, producer: &str) -> String {
            format!("p:producer:{producer}")
        }
        fn events_of(&self, bank: &str) -> String {
            format!("p:{{{bank}}}:events")
        }
        fn producer_in(&self, bank: &str, producer: &str) -> String {
            format!("p:{{{bank}}}:producer:{producer}")
        }
        fn outbox(&self, bank: &str) -> String {
            format!("p:{{{bank}}}:outbox")
        }
        fn in_flight(&self, bank: &str) -> String {
            format!("p:{{{bank}}}:inflight")
        }
    }

    /// Every check's name, detail and failures, one per line, to search in.
    fn text(report: &Report) -> String {
        let mut text = String::new();
        for check in &report.checks {
            let mark = if check.passed { "ok" } else { "FAIL" };
            text.push_str(&format!("{mark} {} ({})\n", check.name, check.detail));
            for failure in &check.failures {
                text.push_str(&format!("  {failure}\n"));
            }
        }
        text
    }

    fn failed(report: &Report) -> Vec<&Check> {
        report.checks.iter().filter(|c| !c.passed).collect()
    }

    #[test]
    fn a_matching_snapshot_verifies() {
        let ledger = replayed();
        let report = verify(&TestKeys, &ledger, &matching(&ledger, Strategy::Atomic));
        assert!(report.verified, "{}", text(&report));
        assert_eq!((report.events, report.completed, report.cancelled), (2, 2, 0));
    }

    #[test]
    fn a_changed_account_is_named_with_expected_and_found() {
        let ledger = replayed();
        let mut snapshot = matching(&ledger, Strategy::Atomic);
        snapshot.accounts[1] = Value::Int(601);
        let report = verify(&TestKeys, &ledger, &snapshot);
        assert!(!report.verified);
        let names: Vec<&str> = failed(&report).iter().map(|c| c.name).collect();
        assert_eq!(names, vec!["accounts match the replay", "money is conserved"]);
        assert_eq!(failed(&report)[0].failures, vec!["p:{A}:account:A2: expected 600, found 601"]);
    }

    #[test]
    fn changed_bank_and_interbank_keys_are_named() {
        let ledger = replayed();
        let mut snapshot = matching(&ledger, Strategy::Atomic);
        snapshot.banks[0] = Value::Invalid("abc".into());
        snapshot.interbank[1] = Value::Missing;
        let text = text(&verify(&TestKeys, &ledger, &snapshot));
        assert!(
            text.contains("p:{A}:balance: expected -200, found \"abc\", not an integer"),
            "{text}"
        );
        assert!(text.contains("p:{A}:interbank field B: expected -200, found nothing"), "{text}");
        assert!(text.contains("FAIL interbank balances sum to zero"), "{text}");
    }

    #[test]
    fn missing_events_and_producer_disagreements_fail() {
        let ledger = replayed();
        let mut snapshot = matching(&ledger, Strategy::Atomic);
        snapshot.producers[0].applied = 3;
        let report = verify(&TestKeys, &ledger, &snapshot);
        let check =
            failed(&report).into_iter().find(|c| c.name == "events = transfers issued").unwrap();
        assert!(
            check
                .failures
                .iter()
                .any(|f| f.contains("wrote 3 transfers but the stream has 2 events")),
            "{:?}",
            check.failures
        );
    }

    #[test]
    fn a_naive_overdraft_fails_even_when_redis_agrees() {
        let mut ledger = Ledger::new(&file());
        ledger.apply("1-0", &event(1, "A2", "A1", 400, 100), Some(Strategy::Naive));
        ledger.apply("2-0", &event(2, "A2", "A1", 400, -300), Some(Strategy::Naive));
        ledger.apply("3-0", &event(3, "A1", "A2", 500, 1300), Some(Strategy::Naive));
        let report = verify(&TestKeys, &ledger, &matching(&ledger, Strategy::Naive));
        let names: Vec<&str> = failed(&report).iter().map(|c| c.name).collect();
        assert_eq!(names, vec!["no balance is negative"], "{}", text(&report));
        assert!(text(&report).contains("the debit of 400 left A2 at -300 cents"));
    }

    /// What Redis holds when it agrees with a sharded replay: the in-flight counters and outbox
    /// entries of the transfers in flight, each producer scope's key.
    fn sharded_snapshot(ledger: &Ledger) -> Snapshot {
        let decided = ledger.runs.get(&1).map_or(0, |t| t.events);
        let iban = |a: Option<u32>| ledger.ibans[usize::try_from(a.unwrap()).unwrap()].to_string();
        let outbox = ledger.in_flight.iter().filter(|(_, c)| c.seen.outbound());
        Snapshot {
            in_flight: ledger
                .flight()
                .outbound
                .iter()
                .map(|v| Value::Int(i64::try_from(*v).unwrap()))
                .collect(),
            outbox: outbox
                .map(|(key, c)| OutboxRecord {
                    bank: key.bank,
                    id: key.id.to_string(),
                    value: format!(
                        "{},{},{},{}",
                        ledger.banks[usize::from(c.terms.to_bank)],
                        iban(c.terms.from),
                        iban(c.terms.to),
                        c.terms.amount_cents
                    ),
                })
                .collect(),
            producers: ledger
                .producers
                .iter()
                .map(|(scope, tally)| ProducerRecord {
                    run: scope.run,
                    producer: scope.producer,
                    bank: scope.bank,
                    applied: tally.last_seq,
                    completed: tally.completed,
                })
                .collect(),
            runs: vec![run(Strategy::Atomic, decided)],
            ..matching(ledger, Strategy::Naive)
        }
    }

    fn sharded_replay(entries: &[(u16, &str, crate::ledger::events::Entry<'_>)]) -> Ledger {
        let mut ledger = sharded();
        replay(&mut ledger, entries);
        ledger
    }

    fn check<'r>(report: &'r Report, name: &str) -> &'r Check {
        report.checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no check {name}"))
    }

    #[test]
    fn money_in_flight_at_the_end_verifies_against_its_outbox_and_counter() {
        let ledger = sharded_replay(&[(0, "1-0", debit(1, 300, 700))]);
        let snapshot = sharded_snapshot(&ledger);
        assert_eq!(snapshot.outbox[0].value, "B,A1,B1,300");
        let report = verify(&TestKeys, &ledger, &snapshot);
        assert!(report.verified, "{}", text(&report));
        let text = text(&report);
        assert!(
            text.contains("ok money is conserved (1200 cents in accounts and 300 in flight)"),
            "{text}"
        );
        assert!(
            text.contains(
                "ok bank balances sum to minus the money in flight (sum -300; 300 cents in flight)"
            ),
            "{text}"
        );
        assert!(
            text.contains("(1 in flight: 300 cents debited and not yet credited or refunded)"),
            "{text}"
        );
    }

    #[test]
    fn an_outbox_without_the_transfer_or_with_an_extra_one_fails_by_name() {
        let ledger = sharded_replay(&[(0, "1-0", debit(1, 300, 700))]);
        let mut snapshot = sharded_snapshot(&ledger);
        snapshot.outbox[0].id = "r1-w1-9".into();
        snapshot.in_flight[0] = Value::Int(200);
        let report = verify(&TestKeys, &ledger, &snapshot);
        let names: Vec<&str> = failed(&report).iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            vec!["in-flight counters match the replay", "outboxes hold the transfers in flight"]
        );
        assert_eq!(failed(&report)[0].failures, vec!["p:{A}:inflight: expected 300, found 200"]);
        assert_eq!(
            failed(&report)[1].failures,
            vec![
                "p:{A}:outbox field r1-w1-9: holds \"B,A1,B1,300\", but the replay has no transfer r1-w1-9 from A debited and not yet settled or voided",
                "p:{A}:outbox field r1-w1-1: expected \"B,A1,B1,300\", found nothing",
            ]
        );
        snapshot = sharded_snapshot(&ledger);
        snapshot.outbox[0].value = "B,A1,B1,250".into();
        let report = verify(&TestKeys, &ledger, &snapshot);
        let outbox = check(&report, "outboxes hold the transfers in flight");
        assert_eq!(
            outbox.failures,
            vec!["p:{A}:outbox field r1-w1-1: expected \"B,A1,B1,300\", found \"B,A1,B1,250\""]
        );
    }

    #[test]
    fn sums_and_conservation_count_the_money_in_flight() {
        let ledger = sharded_replay(&[(0, "1-0", debit(1, 300, 700))]);
        let mut snapshot = sharded_snapshot(&ledger);
        snapshot.accounts[2] = Value::Int(300);
        snapshot.banks[1] = Value::Int(300);
        snapshot.interbank[2] = Value::Int(300);
        let text = text(&verify(&TestKeys, &ledger, &snapshot));
        assert!(text.contains("the accounts in Redis hold 1500 cents and 300 are in flight; 1500 were loaded (300 created or lost)"), "{text}");
        assert!(text.contains("the bank balances in Redis add up to 0, not -300"), "{text}");
        assert!(
            text.contains("A -> B is -300 and B -> A is 300: they add up to 0, not -300 (300 cents in flight between them)"),
            "{text}"
        );
    }

    #[test]
    fn a_lost_debit_fails_verification_with_its_stream_entry() {
        let ledger = sharded_replay(&[(1, "5-0", credit(1, 300, 300))]);
        let report = verify(&TestKeys, &ledger, &sharded_snapshot(&ledger));
        let crossing =
            check(&report, "every transfer between banks is debited, answered and closed once");
        assert!(!crossing.passed);
        assert!(
            crossing.failures[0].starts_with("stream p:{B}:events entry 5-0: r1-w1-1 from A: credited at B (300 cents), but A's stream never debited it"),
            "{:?}",
            crossing.failures
        );
        assert!(!check(&report, "money is conserved").passed);
    }

    #[test]
    fn a_finished_sharded_run_verifies_with_scoped_producer_keys() {
        let inside = crate::ledger::events::Entry::Transfer(event(2, "A2", "A1", 100, 400));
        let ledger = sharded_replay(&[
            (0, "1-0", debit(1, 300, 700)),
            (1, "1-0", credit(1, 300, 300)),
            (0, "2-0", settle(1, 300)),
            (0, "3-0", inside),
        ]);
        let mut snapshot = sharded_snapshot(&ledger);
        let report = verify(&TestKeys, &ledger, &snapshot);
        assert!(report.verified, "{}", text(&report));
        assert!(text(&report).contains("1 producer scopes (source bank, run, producer)"));
        snapshot.producers[0].applied = 1;
        let report = verify(&TestKeys, &ledger, &snapshot);
        let events = check(&report, "events = transfers issued");
        assert!(
            events.failures.iter().any(|f| f
                .starts_with("p:{A}:producer:r1-w1: 1 transfers applied, the stream has 2 events")),
            "{:?}",
            events.failures
        );
    }
}
