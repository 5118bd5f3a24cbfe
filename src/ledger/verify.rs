//! Comparing what Redis holds with what the replay rebuilt, check by check: a pure function that
//! turns a [`Ledger`] and a [`Snapshot`] into a [`Report`] whose verdict is true only when every
//! check holds. Each failure names the key, the expected and the actual value.

use serde::Serialize;

use crate::ledger::replay::{AnomalyKind, Ledger, RunTally};
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
    pub applied: u64,
    pub completed: u64,
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

fn anomalies_check(
    ledger: &Ledger,
    name: &'static str,
    kinds: &[AnomalyKind],
    ok_detail: String,
) -> Check {
    let mut failures = Failures::new();
    let mut counts = Vec::new();
    for kind in kinds {
        if let Some((count, kept)) = ledger.anomalies.get(kind) {
            counts.push(format!("{count} {}", kind.describe()));
            for anomaly in kept {
                failures.add(|| format!("stream entry {}: {}", anomaly.entry, anomaly.detail));
            }
            failures.more += count - kept.len() as u64;
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
}

/// Every check, in the order the report shows them.
pub fn verify(keys: &impl KeyNames, ledger: &Ledger, snapshot: &Snapshot) -> Report {
    assert_eq!(snapshot.accounts.len(), ledger.balances.len());
    assert_eq!(snapshot.banks.len(), ledger.banks.len());
    assert_eq!(snapshot.interbank.len(), ledger.interbank.len());
    let mut checks = vec![
        entries_check(ledger),
        accounts_check(keys, ledger, snapshot),
        bank_balances_check(keys, ledger, snapshot),
        interbank_check(keys, ledger, snapshot),
        bank_sum_check(snapshot),
        interbank_sum_check(ledger, snapshot),
        conservation_check(ledger, snapshot),
        negative_balance_check(keys, ledger, snapshot),
        anomalies_check(
            ledger,
            "every transfer id appears exactly once",
            &[AnomalyKind::Duplicate, AnomalyKind::Gap],
            format!("{} producers, each in sequence", ledger.producers.len()),
        ),
    ];
    let (events_check, run_lines) = events_match_runs(keys, ledger, snapshot);
    checks.push(events_check);
    if snapshot.runs.iter().any(|r| r.strategy == Strategy::Atomic) {
        checks.push(anomalies_check(
            ledger,
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

/// Check 1: every stream entry is an event of a recorded run, on known accounts.
fn entries_check(ledger: &Ledger) -> Check {
    anomalies_check(
        ledger,
        "every stream entry is an event of a recorded run",
        &[AnomalyKind::Malformed, AnomalyKind::UnknownRun, AnomalyKind::UnknownAccount],
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

/// Check 5: the bank balances in Redis sum to zero.
fn bank_sum_check(snapshot: &Snapshot) -> Check {
    let mut failures = Failures::new();
    let bank_sum: i128 = snapshot.banks.iter().filter_map(Value::int).map(i128::from).sum();
    if bank_sum != 0 {
        failures.add(|| format!("the bank balances in Redis add up to {bank_sum}, not 0"));
    }
    failures.into_check("bank balances sum to zero", format!("sum {bank_sum}"))
}

/// Check 6: the interbank balances in Redis sum to zero, and every A->B is -(B->A).
fn interbank_sum_check(ledger: &Ledger, snapshot: &Snapshot) -> Check {
    let n = ledger.banks.len();
    let mut failures = Failures::new();
    let interbank_sum: i128 =
        snapshot.interbank.iter().filter_map(Value::int).map(i128::from).sum();
    if interbank_sum != 0 {
        failures
            .add(|| format!("the interbank balances in Redis add up to {interbank_sum}, not 0"));
    }
    for a in 0..n {
        for b in (a + 1)..n {
            let (ab, ba) = (&snapshot.interbank[a * n + b], &snapshot.interbank[b * n + a]);
            if let (Some(x), Some(y)) = (ab.int(), ba.int())
                && i128::from(x) != -i128::from(y)
            {
                failures.add(|| {
                    format!(
                        "{} -> {} is {x} but {} -> {} is {y}",
                        ledger.banks[a], ledger.banks[b], ledger.banks[b], ledger.banks[a]
                    )
                });
            }
        }
    }
    failures.into_check(
        "interbank balances sum to zero and A->B = -(B->A)",
        format!("sum {interbank_sum}"),
    )
}

/// Check 7: the accounts in Redis hold exactly what was loaded.
fn conservation_check(ledger: &Ledger, snapshot: &Snapshot) -> Check {
    let mut failures = Failures::new();
    let account_sum: i128 = snapshot.accounts.iter().filter_map(Value::int).map(i128::from).sum();
    if account_sum != i128::from(ledger.initial_total_cents) {
        failures.add(|| {
            format!(
                "the accounts in Redis hold {account_sum} cents; {} were loaded ({} created or lost)",
                ledger.initial_total_cents,
                account_sum - i128::from(ledger.initial_total_cents)
            )
        });
    }
    failures.into_check("money is conserved", format!("{account_sum} cents in accounts"))
}

/// Check 8: no balance is negative, in Redis, in the replay, or right after any debit.
fn negative_balance_check(keys: &impl KeyNames, ledger: &Ledger, snapshot: &Snapshot) -> Check {
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
        ledger,
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
        let seen =
            ledger.producers.get(&(producer.run, producer.producer)).copied().unwrap_or_default();
        let key =
            || keys.producer(&crate::ledger::events::producer_id(producer.run, producer.producer));
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
                    applied: ledger.events,
                    completed: ledger.completed,
                }]
            } else {
                vec![]
            },
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
}
