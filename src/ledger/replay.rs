//! Rebuilding every balance from the initial accounts and the event stream: a pure function of
//! the events, with no Redis in it, so it can be tested and benchmarked on its own.
//!
//! Memory is O(accounts + banks² + producers), never O(events): exactly-once is checked per
//! producer by sequence number (each worker's transfers reach the stream in order 1, 2, 3...),
//! not by remembering every id.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::ledger::accounts::AccountsFile;
use crate::ledger::events::{CancelReason, Event, Outcome};
use crate::ledger::runs::Strategy;

/// How many anomalies of each kind are kept with their details; the rest are only counted.
pub const MAX_KEPT_PER_KIND: usize = 10;

/// Something in the stream that a correct run cannot produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// An entry that is not an event of this tool.
    Malformed,
    /// An event of a run that has no record in Redis.
    UnknownRun,
    /// A transfer id seen before.
    Duplicate,
    /// Sequence numbers of a producer skipped.
    Gap,
    /// An account or bank that was not loaded, or an account named with the wrong bank.
    UnknownAccount,
    /// A debit left the source negative: two transfers spent the same money.
    Overdraft,
    /// (`atomic` runs) the balance an event recorded differs from the replay at that point, so the
    /// stream order is not the order the transfers were applied in.
    OrderMismatch,
    /// A replayed balance overflowed `i64`.
    Overflow,
}

impl AnomalyKind {
    pub fn describe(self) -> &'static str {
        match self {
            AnomalyKind::Malformed => "malformed stream entries",
            AnomalyKind::UnknownRun => "events of runs that have no record",
            AnomalyKind::Duplicate => "transfer ids seen twice",
            AnomalyKind::Gap => "transfer ids missing from a producer's sequence",
            AnomalyKind::UnknownAccount => "events naming an unknown account or the wrong bank",
            AnomalyKind::Overdraft => "debits that left an account negative (race)",
            AnomalyKind::OrderMismatch => "events whose recorded balance differs from the replay",
            AnomalyKind::Overflow => "replayed balances that overflowed",
        }
    }
}

/// One anomaly, located by stream entry id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    pub entry: String,
    pub detail: String,
}

/// Counts of one run's events, as the replay saw them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTally {
    pub events: u64,
    pub completed: u64,
    pub cancelled: u64,
}

/// What the replay knows of one producer (one worker, or committer, of one run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerTally {
    pub last_seq: u64,
    pub events: u64,
    pub completed: u64,
}

/// What a replay has changed, in a form that serializes (lists rather than maps with tuple keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerState {
    pub balances: Vec<i64>,
    pub bank_balances: Vec<i64>,
    pub interbank: Vec<i64>,
    pub events: u64,
    pub completed: u64,
    pub cancelled: Vec<(CancelReason, u64)>,
    pub moved_cents: i128,
    pub runs: Vec<(u64, RunTally)>,
    pub producers: Vec<(u64, u32, ProducerTally)>,
    pub anomalies: Vec<(AnomalyKind, u64, Vec<Anomaly>)>,
}

/// The balances rebuilt so far, and everything odd seen on the way.
#[derive(Debug, Clone)]
pub struct Ledger {
    pub banks: Vec<String>,
    bank_index: HashMap<String, usize>,
    pub ibans: Vec<Box<str>>,
    account_index: HashMap<Box<str>, u32>,
    pub account_bank: Vec<u16>,
    pub initial_total_cents: i64,
    pub balances: Vec<i64>,
    pub bank_balances: Vec<i64>,
    /// `interbank[a * banks + b]`: bank a's balance with bank b.
    pub interbank: Vec<i64>,
    pub events: u64,
    pub completed: u64,
    pub cancelled: BTreeMap<CancelReason, u64>,
    pub moved_cents: i128,
    pub runs: BTreeMap<u64, RunTally>,
    pub producers: HashMap<(u64, u32), ProducerTally>,
    pub anomalies: BTreeMap<AnomalyKind, (u64, Vec<Anomaly>)>,
}

impl Ledger {
    /// The state before any transfer: the accounts file's balances, banks at zero.
    pub fn new(file: &AccountsFile) -> Ledger {
        let banks = file.banks.clone();
        let n = banks.len();
        Ledger {
            bank_index: banks.iter().enumerate().map(|(i, b)| (b.clone(), i)).collect(),
            banks,
            ibans: file.accounts.iter().map(|a| a.iban.clone().into_boxed_str()).collect(),
            account_index: file
                .accounts
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let index = u32::try_from(i).expect("a file has at most MAX_ACCOUNTS accounts");
                    (a.iban.clone().into_boxed_str(), index)
                })
                .collect(),
            account_bank: file
                .accounts
                .iter()
                .map(|a| u16::try_from(a.bank).expect("a file has at most MAX_BANKS banks"))
                .collect(),
            initial_total_cents: file.total_cents,
            balances: file.accounts.iter().map(|a| a.balance_cents).collect(),
            bank_balances: vec![0; n],
            interbank: vec![0; n * n],
            events: 0,
            completed: 0,
            cancelled: BTreeMap::new(),
            moved_cents: 0,
            runs: BTreeMap::new(),
            producers: HashMap::new(),
            anomalies: BTreeMap::new(),
        }
    }

    /// Everything the replay has changed so far, to be stored as a checkpoint.
    pub fn state(&self) -> LedgerState {
        LedgerState {
            balances: self.balances.clone(),
            bank_balances: self.bank_balances.clone(),
            interbank: self.interbank.clone(),
            events: self.events,
            completed: self.completed,
            cancelled: self.cancelled.iter().map(|(r, c)| (*r, *c)).collect(),
            moved_cents: self.moved_cents,
            runs: self.runs.iter().map(|(r, t)| (*r, *t)).collect(),
            producers: self.producers.iter().map(|(&(run, worker), t)| (run, worker, *t)).collect(),
            anomalies: self.anomalies.iter().map(|(k, (c, kept))| (*k, *c, kept.clone())).collect(),
        }
    }

    /// Continues from a stored state of a replay over the same accounts.
    pub fn restore(&mut self, state: LedgerState) -> Result<(), String> {
        if state.balances.len() != self.balances.len()
            || state.bank_balances.len() != self.bank_balances.len()
            || state.interbank.len() != self.interbank.len()
        {
            return Err(format!(
                "it holds {} accounts and {} banks, the file {} and {}",
                state.balances.len(),
                state.bank_balances.len(),
                self.balances.len(),
                self.bank_balances.len()
            ));
        }
        self.balances = state.balances;
        self.bank_balances = state.bank_balances;
        self.interbank = state.interbank;
        self.events = state.events;
        self.completed = state.completed;
        self.cancelled = state.cancelled.into_iter().collect();
        self.moved_cents = state.moved_cents;
        self.runs = state.runs.into_iter().collect();
        self.producers =
            state.producers.into_iter().map(|(run, worker, t)| ((run, worker), t)).collect();
        self.anomalies = state.anomalies.into_iter().map(|(k, c, kept)| (k, (c, kept))).collect();
        Ok(())
    }

    pub fn cancelled_total(&self) -> u64 {
        self.cancelled.values().sum()
    }

    pub fn anomaly_count(&self, kind: AnomalyKind) -> u64 {
        self.anomalies.get(&kind).map_or(0, |(count, _)| *count)
    }

    /// Notes an anomaly at a stream entry.
    pub fn report(&mut self, kind: AnomalyKind, entry: &str, detail: String) {
        let (count, kept) = self.anomalies.entry(kind).or_default();
        *count += 1;
        if kept.len() < MAX_KEPT_PER_KIND {
            kept.push(Anomaly { entry: entry.to_string(), detail });
        }
    }

    /// Applies one event. `strategy` is that of the event's run, `None` when the run is unknown.
    pub fn apply(&mut self, entry: &str, event: &Event<'_>, strategy: Option<Strategy>) {
        let Some(strategy) = strategy else {
            self.report(
                AnomalyKind::UnknownRun,
                entry,
                format!("{} belongs to run {}, which has no record", event.id, event.id.run),
            );
            return;
        };
        let producer = self.producers.entry((event.id.run, event.id.producer)).or_default();
        let expected = producer.last_seq + 1;
        if event.id.seq < expected {
            self.report(AnomalyKind::Duplicate, entry, format!("{} was already seen", event.id));
            return;
        }
        let gap = event.id.seq > expected;
        producer.last_seq = event.id.seq;
        if gap {
            let detail =
                format!("{}: sequence jumped from {} to {}", event.id, expected - 1, event.id.seq);
            self.report(AnomalyKind::Gap, entry, detail);
        }
        let Some((from, to)) = self.locate(entry, event) else {
            return;
        };
        let completed = event.outcome == Outcome::Completed;
        let producer = self.producers.entry((event.id.run, event.id.producer)).or_default();
        producer.events += 1;
        producer.completed += u64::from(completed);
        let tally = self.runs.entry(event.id.run).or_default();
        tally.events += 1;
        tally.completed += u64::from(completed);
        tally.cancelled += u64::from(!completed);
        self.events += 1;
        match (event.outcome, from, to) {
            (Outcome::Cancelled(reason), from, _) => {
                *self.cancelled.entry(reason).or_default() += 1;
                if strategy == Strategy::Atomic
                    && let (Some(recorded), Some(from)) = (event.from_balance_cents, from)
                    && recorded != self.balances[from]
                {
                    let detail = format!(
                        "{} saw {} at {recorded} cents, the replay has {}",
                        event.id, event.from, self.balances[from]
                    );
                    self.report(AnomalyKind::OrderMismatch, entry, detail);
                }
            }
            (Outcome::Completed, Some(from), Some(to)) => {
                self.completed += 1;
                self.moved_cents += i128::from(event.amount_cents);
                self.apply_completed(entry, event, strategy, from, to);
            }
            (Outcome::Completed, _, _) => {
                unreachable!("locate returns both accounts of a completed transfer")
            }
        }
    }

    /// Finds the event's accounts, checking their banks. A completed transfer needs both; a
    /// cancelled one may name an unknown account (that is why it was cancelled).
    fn locate(&mut self, entry: &str, event: &Event<'_>) -> Option<(Option<usize>, Option<usize>)> {
        let mut found = [None, None];
        for (slot, (iban, bank)) in
            [(event.from, event.from_bank), (event.to, event.to_bank)].into_iter().enumerate()
        {
            let account = self.account_index.get(iban).and_then(|&i| usize::try_from(i).ok());
            let bank_ok = self.bank_index.get(bank).copied();
            match (account, bank_ok) {
                (Some(a), Some(b)) if usize::from(self.account_bank[a]) == b => {
                    found[slot] = Some(a)
                }
                _ if event.outcome != Outcome::Completed => {}
                (Some(a), _) => {
                    let detail = format!(
                        "{}: account {iban} belongs to {}, the event says {bank:?}",
                        event.id,
                        self.banks[usize::from(self.account_bank[a])]
                    );
                    self.report(AnomalyKind::UnknownAccount, entry, detail);
                    return None;
                }
                (None, _) => {
                    self.report(
                        AnomalyKind::UnknownAccount,
                        entry,
                        format!("{}: account {iban} was never loaded", event.id),
                    );
                    return None;
                }
            }
        }
        Some((found[0], found[1]))
    }

    fn apply_completed(
        &mut self,
        entry: &str,
        event: &Event<'_>,
        strategy: Strategy,
        from: usize,
        to: usize,
    ) {
        let amount = event.amount_cents;
        let recorded =
            event.from_balance_cents.expect("parse requires from_balance on completed events");
        if recorded < 0 {
            let detail = format!(
                "{}: the debit of {amount} left {} at {recorded} cents",
                event.id, event.from
            );
            self.report(AnomalyKind::Overdraft, entry, detail);
        }
        let (Some(debited), Some(credited)) =
            (self.balances[from].checked_sub(amount), self.balances[to].checked_add(amount))
        else {
            self.report(
                AnomalyKind::Overflow,
                entry,
                format!("{}: an account balance overflowed", event.id),
            );
            return;
        };
        self.balances[from] = debited;
        self.balances[to] = credited;
        if strategy == Strategy::Atomic && recorded != debited {
            let detail = format!(
                "{}: recorded {} at {recorded} cents after the debit, the replay has {debited}",
                event.id, event.from
            );
            self.report(AnomalyKind::OrderMismatch, entry, detail);
        }
        let (fb, tb) = (usize::from(self.account_bank[from]), usize::from(self.account_bank[to]));
        if fb != tb {
            let n = self.banks.len();
            let mut overflow = false;
            overflow |= !add_in_place(&mut self.bank_balances[fb], -amount);
            overflow |= !add_in_place(&mut self.bank_balances[tb], amount);
            let (ab, ba) = (fb * n + tb, tb * n + fb);
            overflow |= !add_in_place(&mut self.interbank[ab], -amount);
            overflow |= !add_in_place(&mut self.interbank[ba], amount);
            if overflow {
                self.report(
                    AnomalyKind::Overflow,
                    entry,
                    format!("{}: a bank or interbank balance overflowed", event.id),
                );
            }
        }
    }
}

/// Adds `delta` unless that would overflow; says whether it did.
fn add_in_place(slot: &mut i64, delta: i64) -> bool {
    match slot.checked_add(delta) {
        Some(value) => {
            *slot = value;
            true
        }
        None => false,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ledger::accounts::Account;
    use crate::ledger::events::TransferId;

    pub fn file() -> AccountsFile {
        let account = |iban: &str, bank, balance_cents| Account {
            iban: iban.into(),
            bank,
            name: "x".into(),
            balance_cents,
        };
        AccountsFile {
            path: "t.csv".into(),
            sha256: String::new(),
            banks: vec!["A".into(), "B".into()],
            accounts: vec![account("A1", 0, 1000), account("A2", 0, 500), account("B1", 1, 0)],
            total_cents: 1500,
        }
    }

    pub fn event<'a>(
        seq: u64,
        from: &'a str,
        to: &'a str,
        amount: i64,
        from_balance: i64,
    ) -> Event<'a> {
        let bank = |iban: &'a str| &iban[..1];
        Event {
            id: TransferId { run: 1, producer: 1, seq },
            outcome: Outcome::Completed,
            from,
            to,
            from_bank: bank(from),
            to_bank: bank(to),
            amount_cents: amount,
            from_balance_cents: Some(from_balance),
        }
    }

    #[test]
    fn replay_moves_accounts_banks_and_interbank_with_the_seed_signs() {
        let mut ledger = Ledger::new(&file());
        ledger.apply("1-0", &event(1, "A1", "B1", 300, 700), Some(Strategy::Atomic));
        ledger.apply("2-0", &event(2, "A2", "A1", 100, 400), Some(Strategy::Atomic));
        assert_eq!(ledger.balances, vec![800, 400, 300]);
        assert_eq!(ledger.bank_balances, vec![-300, 300]);
        assert_eq!(ledger.interbank, vec![0, -300, 300, 0]);
        assert_eq!(ledger.completed, 2);
        assert!(ledger.anomalies.is_empty(), "{:?}", ledger.anomalies);
    }

    #[test]
    fn duplicates_gaps_and_unknown_runs_are_reported_not_applied() {
        let mut ledger = Ledger::new(&file());
        ledger.apply("1-0", &event(1, "A1", "B1", 300, 700), Some(Strategy::Atomic));
        ledger.apply("2-0", &event(1, "A1", "B1", 300, 700), Some(Strategy::Atomic));
        ledger.apply("3-0", &event(3, "A1", "B1", 100, 600), Some(Strategy::Atomic));
        ledger.apply("4-0", &event(4, "A1", "B1", 100, 500), None);
        assert_eq!(ledger.balances[0], 600);
        assert_eq!(ledger.anomaly_count(AnomalyKind::Duplicate), 1);
        assert_eq!(ledger.anomaly_count(AnomalyKind::Gap), 1);
        assert_eq!(ledger.anomaly_count(AnomalyKind::UnknownRun), 1);
        assert_eq!(ledger.anomalies[&AnomalyKind::Duplicate].1[0].entry, "2-0");
    }

    #[test]
    fn overdrafts_and_order_mismatches_are_caught() {
        let mut ledger = Ledger::new(&file());
        ledger.apply("1-0", &event(1, "A2", "B1", 600, -100), Some(Strategy::Naive));
        assert_eq!(ledger.anomaly_count(AnomalyKind::Overdraft), 1);
        assert_eq!(
            ledger.anomaly_count(AnomalyKind::OrderMismatch),
            0,
            "naive events are not in commit order"
        );
        ledger.apply("2-0", &event(2, "A1", "B1", 100, 5), Some(Strategy::Atomic));
        assert_eq!(ledger.anomaly_count(AnomalyKind::OrderMismatch), 1);
    }

    #[test]
    fn a_restored_state_continues_exactly_where_it_stopped() {
        let events = [
            event(1, "A1", "B1", 300, 700),
            event(2, "B1", "A2", 100, 200),
            event(1, "A1", "B1", 300, 700),
            event(3, "A2", "A1", 50, 550),
        ];
        let mut straight = Ledger::new(&file());
        let mut resumed = Ledger::new(&file());
        for (i, e) in events.iter().enumerate() {
            straight.apply(&format!("{i}-0"), e, Some(Strategy::Atomic));
            if i < 2 {
                resumed.apply(&format!("{i}-0"), e, Some(Strategy::Atomic));
            }
        }
        let json = serde_json::to_string(&resumed.state()).unwrap();
        let mut restarted = Ledger::new(&file());
        restarted.restore(serde_json::from_str(&json).unwrap()).unwrap();
        for (i, e) in events.iter().enumerate().skip(2) {
            restarted.apply(&format!("{i}-0"), e, Some(Strategy::Atomic));
        }
        assert_eq!(restarted.state(), straight.state());
        let mut other = file();
        other.accounts.pop();
        assert!(Ledger::new(&other).restore(straight.state()).is_err());
    }

    #[test]
    fn unknown_accounts_and_wrong_banks_are_reported() {
        let mut ledger = Ledger::new(&file());
        ledger.apply("1-0", &event(1, "A1", "Z9", 1, 999), Some(Strategy::Atomic));
        let mut wrong_bank = event(2, "A1", "B1", 1, 999);
        wrong_bank.to_bank = "A";
        ledger.apply("2-0", &wrong_bank, Some(Strategy::Atomic));
        assert_eq!(ledger.anomaly_count(AnomalyKind::UnknownAccount), 2);
        assert_eq!(ledger.balances, vec![1000, 500, 0]);
        let mut cancelled = event(3, "Z9", "B1", 1, 0);
        cancelled.outcome = Outcome::Cancelled(CancelReason::UnknownAccount);
        cancelled.from_balance_cents = None;
        ledger.apply("3-0", &cancelled, Some(Strategy::Atomic));
        assert_eq!(ledger.cancelled_total(), 1);
        assert_eq!(ledger.anomaly_count(AnomalyKind::UnknownAccount), 2);
    }
}
