//! The overview: what `status`, the dashboard and `/metrics` show, as one pure function of the
//! [`Facts`] read from Redis.
//!
//! Its first job is the conservation verdict: the money in accounts plus the money in flight
//! equals the total loaded, the bank balances (plus in flight) sum to zero, each bank's interbank
//! row adds up to its balance and the interbank matrix is antisymmetric (each pair's two sides
//! differ only by what is in flight between them). On one server the figures come from one
//! `MULTI`, so a failed check is a real loss. On a cluster each bank is read at its own instant;
//! a difference across banks then means money moved between the reads unless two rounds agreed,
//! and is shown as "unsettled", never as conserved. A per-bank check reads one bank's keys in one
//! `MULTI`, so it is exact everywhere.

use serde::Serialize;

use crate::ledger::events::Layout;
use crate::ledger::runs::{RunStatus, Strategy};
use crate::ledger::verify::Value;
use crate::view::facts::{Facts, Loaded, StreamFacts, id_ms};
use crate::view::verdict::Verdict;

/// Problems listed by name; the rest are counted.
const PROBLEMS_LISTED: usize = 20;

/// Everything the views show.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub read_at_ms: u64,
    pub prefix: String,
    pub layout: Layout,
    pub loaded: Loaded,
    pub money: Money,
    pub conservation: Conservation,
    pub banks: Vec<BankLine>,
    pub matrix: Matrix,
    pub runs: Vec<RunLine>,
    pub streams: Vec<StreamLine>,
    pub consumers: Vec<ConsumerLine>,
    pub verdict: Option<VerdictLine>,
    /// Keys that could not be read as they should be.
    pub problems: Vec<String>,
    pub more_problems: u64,
}

/// The money, in cents.
#[derive(Debug, Clone, Serialize)]
pub struct Money {
    pub total_cents: i64,
    pub accounts_cents: i128,
    /// Debited and not yet credited (the in-flight totals, less the transfers credited at their
    /// destination and not yet settled at their source).
    pub in_flight_cents: i128,
    /// accounts + in flight − total: zero when nothing is lost or created.
    pub difference_cents: i128,
}

/// Whether money is conserved, as far as this read can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Every check holds.
    Conserved,
    /// A check fails on figures read at one instant: money was lost or created.
    Violated,
    /// A check across banks fails on a cluster while money moved between the per-bank reads.
    Unsettled,
    /// Some key could not be read.
    Unknown,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Conserved => "conserved",
            State::Violated => "violated",
            State::Unsettled => "unsettled",
            State::Unknown => "unknown",
        }
    }
}

/// The conservation verdict and its checks.
#[derive(Debug, Clone, Serialize)]
pub struct Conservation {
    pub state: State,
    /// Whether the figures come from one instant.
    pub consistent: bool,
    pub checks: Vec<Invariant>,
}

/// One conservation check.
#[derive(Debug, Clone, Serialize)]
pub struct Invariant {
    pub name: &'static str,
    pub passed: bool,
    /// Whether it compares figures of several banks (read at different instants on a cluster).
    pub across_banks: bool,
    pub detail: String,
}

/// One bank's line.
#[derive(Debug, Clone, Serialize)]
pub struct BankLine {
    pub name: String,
    /// A short unique name for narrow tables (the matrix's legend).
    pub short: String,
    pub balance_cents: Option<i64>,
    /// What other banks owe it, net per pair (its positive positions).
    pub owed_cents: i128,
    /// What it owes other banks, net per pair (its negative positions, as a positive figure).
    pub owing_cents: i128,
    pub in_flight_cents: Option<i64>,
    pub accounts: u64,
    pub accounts_cents: i128,
    pub shard: Option<String>,
}

/// The interbank net positions: `cells[a][b]` is bank a's position with bank b.
#[derive(Debug, Clone, Serialize)]
pub struct Matrix {
    pub banks: Vec<String>,
    /// `None` on the diagonal and where the key could not be read.
    pub cells: Vec<Vec<Option<i64>>>,
    /// Each row's sum: the bank's balance when its row adds up.
    pub row_totals: Vec<i128>,
    /// The largest absolute cell, for colour scales.
    pub max_abs_cents: i64,
}

/// One broker run.
#[derive(Debug, Clone, Serialize)]
pub struct RunLine {
    pub run: u64,
    pub strategy: Strategy,
    pub workers: u32,
    pub status: RunStatus,
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
    /// Transfers planned (workers × transfers per worker).
    pub planned: u64,
    /// Transfers applied so far (counted while it runs, recorded when it ends).
    pub applied: Option<u64>,
    pub error: Option<String>,
}

/// One event stream.
#[derive(Debug, Clone, Serialize)]
pub struct StreamLine {
    pub key: String,
    pub bank: Option<String>,
    pub length: u64,
    pub last_id: Option<String>,
    /// The newest entry's time, from its id.
    pub last_ms: Option<u64>,
}

/// One consumer's checkpoint and how far behind the streams it is.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumerLine {
    pub name: String,
    pub events: u64,
    pub saved_at_ms: u64,
    /// How much older its position is than the newest entry, summed over the streams it is
    /// behind in (by the entries' ids); 0 when it has everything.
    pub lag_ms: u64,
    /// How many streams have entries after its position.
    pub streams_behind: usize,
}

/// The last verdict and how old it is.
#[derive(Debug, Clone, Serialize)]
pub struct VerdictLine {
    #[serde(flatten)]
    pub verdict: Verdict,
    pub age_ms: u64,
}

/// The overview of `facts`.
pub fn overview(facts: &Facts) -> Overview {
    let mut problems = Problems::default();
    let banks = bank_lines(facts, &mut problems);
    let matrix = matrix(facts, &banks, &mut problems);
    let money = money(facts, &banks);
    let conservation = conservation(facts, &banks, &matrix, &money, &problems);
    Overview {
        read_at_ms: facts.read_at_ms,
        prefix: facts.prefix.clone(),
        layout: facts.layout,
        loaded: facts.loaded.clone(),
        money,
        conservation,
        banks,
        matrix,
        runs: facts.runs.iter().map(run_line).collect(),
        streams: facts.streams.iter().map(stream_line).collect(),
        consumers: facts.consumers.iter().map(|c| consumer_line(c, &facts.streams)).collect(),
        verdict: facts.verdict.clone().map(|verdict| VerdictLine {
            age_ms: facts.read_at_ms.saturating_sub(verdict.at_ms),
            verdict,
        }),
        problems: problems.listed,
        more_problems: problems.more,
    }
}

#[derive(Default)]
struct Problems {
    listed: Vec<String>,
    more: u64,
}

impl Problems {
    fn add(&mut self, text: impl FnOnce() -> String) {
        if self.listed.len() < PROBLEMS_LISTED {
            self.listed.push(text());
        } else {
            self.more += 1;
        }
    }

    fn any(&self) -> bool {
        !self.listed.is_empty()
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Missing => "missing".to_string(),
        Value::Int(v) => v.to_string(),
        Value::Invalid(text) => format!("{text:?}, not an integer"),
        Value::Error(error) => format!("unreadable: {error}"),
    }
}

fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(v) => Some(*v),
        _ => None,
    }
}

fn bank_lines(facts: &Facts, problems: &mut Problems) -> Vec<BankLine> {
    let names: Vec<&str> = facts.banks.iter().map(|b| b.name.as_str()).collect();
    let shorts = short_names(&names);
    let n = facts.banks.len();
    facts
        .banks
        .iter()
        .zip(shorts)
        .enumerate()
        .map(|(a, (bank, short))| {
            for key in &bank.bad_accounts {
                problems.add(|| format!("account {key} is missing or not an integer"));
            }
            let unnamed = bank.bad_account_count.saturating_sub(bank.bad_accounts.len() as u64);
            problems.more += unnamed;
            let balance_cents = int(&bank.balance);
            if balance_cents.is_none() {
                problems
                    .add(|| format!("bank {}'s balance is {}", bank.name, describe(&bank.balance)));
            }
            let in_flight_cents = match &bank.in_flight {
                Value::Missing => Some(0),
                value => int(value),
            };
            if in_flight_cents.is_none() {
                problems.add(|| {
                    format!("bank {}'s money in flight is {}", bank.name, describe(&bank.in_flight))
                });
            }
            let row = (0..n).filter(|&b| b != a).filter_map(|b| int(&facts.interbank[a * n + b]));
            let (owed_cents, owing_cents) = row.fold((0_i128, 0_i128), |(owed, owing), cents| {
                let cents = i128::from(cents);
                if cents > 0 { (owed + cents, owing) } else { (owed, owing - cents) }
            });
            BankLine {
                name: bank.name.clone(),
                short,
                balance_cents,
                owed_cents,
                owing_cents,
                in_flight_cents,
                accounts: bank.accounts,
                accounts_cents: bank.accounts_cents,
                shard: bank.shard.clone(),
            }
        })
        .collect()
}

fn matrix(facts: &Facts, banks: &[BankLine], problems: &mut Problems) -> Matrix {
    let n = banks.len();
    let mut cells = vec![vec![None; n]; n];
    let mut max_abs_cents = 0_i64;
    for a in 0..n {
        for b in (0..n).filter(|&b| b != a) {
            let value = &facts.interbank[a * n + b];
            let cents = match value {
                Value::Missing => Some(0),
                value => int(value),
            };
            if cents.is_none() {
                problems.add(|| {
                    format!(
                        "{}'s position with {} is {}",
                        banks[a].name,
                        banks[b].name,
                        describe(value)
                    )
                });
            }
            max_abs_cents = max_abs_cents.max(cents.map_or(0, i64::saturating_abs));
            cells[a][b] = cents;
        }
    }
    let row_totals =
        cells.iter().map(|row| row.iter().flatten().map(|&c| i128::from(c)).sum()).collect();
    Matrix {
        banks: banks.iter().map(|b| b.name.clone()).collect(),
        cells,
        row_totals,
        max_abs_cents,
    }
}

fn money(facts: &Facts, banks: &[BankLine]) -> Money {
    let accounts_cents = banks.iter().map(|b| b.accounts_cents).sum::<i128>();
    let counted: i128 = banks.iter().filter_map(|b| b.in_flight_cents).map(i128::from).sum();
    let credited: i128 = facts.banks.iter().map(|b| b.credited_unsettled_cents).sum();
    let in_flight_cents = counted - credited;
    let total_cents = facts.loaded.total_cents;
    Money {
        total_cents,
        accounts_cents,
        in_flight_cents,
        difference_cents: accounts_cents + in_flight_cents - i128::from(total_cents),
    }
}

fn conservation(
    facts: &Facts,
    banks: &[BankLine],
    matrix: &Matrix,
    money: &Money,
    problems: &Problems,
) -> Conservation {
    let mut checks = vec![Invariant {
        name: "money",
        passed: money.difference_cents == 0,
        across_banks: true,
        detail: format!(
            "accounts {} + in flight {} − loaded {} = {}",
            money.accounts_cents, money.in_flight_cents, money.total_cents, money.difference_cents
        ),
    }];
    let balances: i128 = banks.iter().filter_map(|b| b.balance_cents).map(i128::from).sum();
    let sum = balances + money.in_flight_cents;
    checks.push(Invariant {
        name: "bank balances",
        passed: sum == 0,
        across_banks: true,
        detail: format!("bank balances {balances} + in flight {} = {sum}", money.in_flight_cents),
    });
    checks.push(rows_check(banks, matrix));
    checks.push(antisymmetry_check(facts, matrix));
    let state = if problems.any() {
        State::Unknown
    } else if checks.iter().all(|c| c.passed) {
        State::Conserved
    } else if facts.consistent || checks.iter().any(|c| !c.passed && !c.across_banks) {
        State::Violated
    } else {
        State::Unsettled
    };
    Conservation { state, consistent: facts.consistent, checks }
}

/// Each bank's interbank row adds up to its balance: both move in the same script.
fn rows_check(banks: &[BankLine], matrix: &Matrix) -> Invariant {
    let off: Vec<String> = banks
        .iter()
        .zip(&matrix.row_totals)
        .filter(|(bank, total)| bank.balance_cents.map(i128::from) != Some(**total))
        .map(|(bank, total)| {
            format!("{}: row {total}, balance {:?}", bank.name, bank.balance_cents)
        })
        .collect();
    Invariant {
        name: "interbank rows",
        passed: off.is_empty(),
        across_banks: false,
        detail: if off.is_empty() {
            format!("each of {} banks' positions add up to its balance", banks.len())
        } else {
            off.join("; ")
        },
    }
}

/// `position[a][b] + position[b][a]` is minus what is in flight between a and b.
fn antisymmetry_check(facts: &Facts, matrix: &Matrix) -> Invariant {
    let n = matrix.banks.len();
    let mut off = Vec::new();
    for a in 0..n {
        for b in (a + 1)..n {
            let (Some(ab), Some(ba)) = (matrix.cells[a][b], matrix.cells[b][a]) else { continue };
            let flight = in_flight_between(facts, a, b) + in_flight_between(facts, b, a);
            let sum = i128::from(ab) + i128::from(ba) + flight;
            if sum != 0 {
                off.push(format!(
                    "{} / {}: {ab} + {ba} + in flight {flight} = {sum}",
                    matrix.banks[a], matrix.banks[b]
                ));
            }
        }
    }
    Invariant {
        name: "interbank pairs",
        passed: off.is_empty(),
        across_banks: true,
        detail: if off.is_empty() {
            format!("{} pairs antisymmetric (in flight counted)", n * n.saturating_sub(1) / 2)
        } else {
            off.join("; ")
        },
    }
}

fn in_flight_between(facts: &Facts, from: usize, to: usize) -> i128 {
    facts.banks[from].in_flight_to_cents.get(to).copied().unwrap_or(0)
}

fn run_line(run: &crate::view::facts::RunFacts) -> RunLine {
    let record = &run.record;
    RunLine {
        run: record.id,
        strategy: record.strategy,
        workers: record.workers,
        status: record.status,
        started_ms: record.started_ms,
        ended_ms: record.ended_ms,
        planned: record.planned,
        applied: run.applied.or(record.events),
        error: record.error.clone(),
    }
}

fn stream_line(stream: &StreamFacts) -> StreamLine {
    StreamLine {
        key: stream.key.clone(),
        bank: stream.bank.clone(),
        length: stream.length,
        last_id: stream.last_id.clone(),
        last_ms: stream.last_id.as_deref().and_then(id_ms),
    }
}

fn consumer_line(
    consumer: &crate::view::facts::ConsumerFacts,
    streams: &[StreamFacts],
) -> ConsumerLine {
    let mut lag_ms = 0;
    let mut streams_behind = 0;
    for (stream, position) in streams.iter().zip(&consumer.last_ids) {
        let newest = stream.last_id.as_deref();
        if newest.is_some_and(|newest| newest != position) {
            streams_behind += 1;
            let newest_ms = newest.and_then(id_ms).unwrap_or(0);
            lag_ms += newest_ms.saturating_sub(id_ms(position).unwrap_or(0));
        }
    }
    ConsumerLine {
        name: consumer.name.clone(),
        events: consumer.events,
        saved_at_ms: consumer.saved_at_ms,
        lag_ms,
        streams_behind,
    }
}

/// Short unique names (at most 4 characters) for narrow tables: the first letters of a name,
/// or its initials when it has several words, numbered when two would be the same.
pub fn short_names(names: &[&str]) -> Vec<String> {
    const WIDTH: usize = 4;
    let mut shorts: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        let words: Vec<&str> = name.split_whitespace().collect();
        let base: String = if words.len() > 1 {
            words.iter().filter_map(|w| w.chars().next()).take(WIDTH).collect()
        } else {
            name.chars().filter(|c| !c.is_whitespace()).take(WIDTH).collect()
        };
        let base = if base.is_empty() { "?".to_string() } else { base };
        let mut short = base.clone();
        let mut number = 2_usize;
        while shorts.contains(&short) {
            let suffix = number.to_string();
            let keep = WIDTH.saturating_sub(suffix.len()).max(1);
            short = format!("{}{suffix}", base.chars().take(keep).collect::<String>());
            number += 1;
        }
        shorts.push(short);
    }
    shorts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::facts::{BankFacts, StreamFacts};

    /// Two banks of one account each, 100 cents loaded; bank a sent `moved` to bank b.
    fn facts(moved: i64, in_flight: i64, consistent: bool) -> Facts {
        let bank = |name: &str, cents: i128, balance: i64, flight: i64| BankFacts {
            name: name.to_string(),
            accounts: 1,
            accounts_cents: cents,
            bad_accounts: Vec::new(),
            bad_account_count: 0,
            balance: Value::Int(balance),
            in_flight: Value::Int(flight),
            in_flight_to_cents: vec![0, i128::from(flight)],
            credited_unsettled_cents: 0,
            shard: None,
        };
        let arrived = moved - in_flight;
        Facts {
            read_at_ms: 10_000,
            prefix: "p".into(),
            layout: Layout::Sharded,
            loaded: Loaded { file: "f.csv".into(), accounts: 2, total_cents: 100, loaded_at_ms: 1 },
            banks: vec![
                bank("A", i128::from(50 - moved), -moved, in_flight),
                bank("B", i128::from(50 + arrived), arrived, 0),
            ],
            interbank: vec![
                Value::Missing,
                Value::Int(-moved),
                Value::Int(arrived),
                Value::Missing,
            ],
            runs: Vec::new(),
            streams: vec![StreamFacts {
                key: "p:events".into(),
                bank: None,
                length: 3,
                last_id: Some("9000-0".into()),
            }],
            consumers: vec![ConsumerFacts {
                name: "c".into(),
                last_ids: vec!["7500-1".into()],
                events: 2,
                saved_at_ms: 8_000,
            }],
            verdict: None,
            consistent,
        }
    }

    use crate::view::facts::ConsumerFacts;

    #[test]
    fn money_in_flight_is_accounted_for() {
        let view = overview(&facts(30, 10, true));
        assert_eq!(view.conservation.state, State::Conserved, "{:?}", view.conservation);
        assert_eq!(view.money.in_flight_cents, 10);
        assert_eq!(view.money.difference_cents, 0);
        assert_eq!(view.banks[0].owing_cents, 30);
        assert_eq!(view.banks[1].owed_cents, 20);
        assert_eq!(view.matrix.row_totals, vec![-30, 20]);
        assert_eq!(view.matrix.max_abs_cents, 30);
    }

    #[test]
    fn a_transfer_credited_and_not_yet_settled_is_not_counted_twice() {
        // A debited 30 to B and B credited it; A's in-flight total keeps it until the settlement.
        let mut credited = facts(30, 0, true);
        credited.banks[0].in_flight = Value::Int(30);
        credited.banks[0].credited_unsettled_cents = 30;
        let view = overview(&credited);
        assert_eq!(view.conservation.state, State::Conserved, "{:?}", view.conservation);
        assert_eq!(view.money.in_flight_cents, 0);
        assert_eq!(view.banks[0].in_flight_cents, Some(30));
    }

    #[test]
    fn a_difference_read_at_one_instant_is_a_violation() {
        let mut lost = facts(30, 0, true);
        lost.banks[1].accounts_cents -= 5;
        let view = overview(&lost);
        assert_eq!(view.conservation.state, State::Violated);
        assert_eq!(view.money.difference_cents, -5);
    }

    #[test]
    fn a_difference_across_banks_read_apart_is_unsettled_not_conserved() {
        let mut moving = facts(30, 0, false);
        moving.banks[1].accounts_cents += 7;
        assert_eq!(overview(&moving).conservation.state, State::Unsettled);
        // A bank's own row read in one MULTI is judged even then.
        let mut broken = facts(30, 0, false);
        broken.banks[0].balance = Value::Int(-29);
        assert_eq!(overview(&broken).conservation.state, State::Violated);
    }

    #[test]
    fn an_unreadable_key_makes_the_state_unknown_and_is_named() {
        let mut bad = facts(0, 0, true);
        bad.banks[0].balance = Value::Invalid("x".into());
        let view = overview(&bad);
        assert_eq!(view.conservation.state, State::Unknown);
        assert!(view.problems[0].contains("bank A's balance"), "{:?}", view.problems);
    }

    #[test]
    fn consumer_lag_and_verdict_age_come_from_ids_and_times() {
        let mut f = facts(0, 0, true);
        let view = overview(&f);
        assert_eq!(view.consumers[0].lag_ms, 1_500);
        assert_eq!(view.consumers[0].streams_behind, 1);
        f.consumers[0].last_ids = vec!["9000-0".into()];
        assert_eq!(overview(&f).consumers[0].streams_behind, 0);
    }

    #[test]
    fn short_names_are_unique_and_short() {
        let names = ["Deutsche Bank", "Santander", "Santa Fe", "Sant", "", "Cajamar"];
        let shorts = short_names(&names);
        assert_eq!(shorts[0], "DB");
        assert_eq!(shorts[1], "Sant");
        let mut unique = shorts.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{shorts:?}");
        assert!(shorts.iter().all(|s| (1..=4).contains(&s.chars().count())), "{shorts:?}");
    }
}
