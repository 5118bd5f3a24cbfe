//! Rebuilding every balance from the initial accounts and the event stream: a pure function of
//! the events, with no Redis in it, so it can be tested and benchmarked on its own.
//!
//! Memory is O(accounts + banks² + producers), never O(events): exactly-once is checked per
//! producer by sequence number (each worker's transfers reach the stream in order 1, 2, 3...),
//! not by remembering every id.
//!
//! The same ledger replays both [`Layout`]s, because a data set on Redis Cluster must verify by
//! the same rules as one on a single server. The single layout's one stream is fed through
//! [`Ledger::apply`]; the sharded layout's per-bank streams through [`Ledger::apply_on`], whose
//! transfers between banks take three steps on two streams read independently ([`sharded`]):
//! sequences are then scoped by source bank, and the ledger also keeps each transfer between banks
//! until its last step, so memory adds O(transfers in flight), still never O(events).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::ledger::accounts::AccountsFile;
use crate::ledger::events::{CancelReason, Event, Layout, Outcome, TransferId};
use crate::ledger::runs::Strategy;

pub(crate) mod sharded;
pub use sharded::{Crossing, Flight, FlightKey, Seen, Terms, Waiting};

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
    /// (sharded) An entry on the stream of a bank whose keys it does not change.
    WrongStream,
    /// (sharded) A transfer between banks credited twice, or rejected twice.
    AnsweredTwice,
    /// (sharded) A transfer between banks both credited and rejected.
    CreditedAndRejected,
    /// (sharded) Settled without a credit, or voided without a rejection.
    ClosedWrongly,
    /// (sharded) Settled or voided twice (a second closing step, or one for a transfer its
    /// source decided and no longer has in flight).
    ClosedTwice,
    /// (sharded) Settled or voided though its source's stream never debited it.
    ClosedUndebited,
    /// (sharded) A credit or rejection whose debit never appeared (a credit creates money).
    MissingDebit,
    /// (sharded) Steps of one transfer that disagree on its amount, accounts, banks or reason.
    StepMismatch,
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
            AnomalyKind::WrongStream => "events on the stream of a bank they do not change",
            AnomalyKind::AnsweredTwice => "transfers between banks credited or rejected twice",
            AnomalyKind::CreditedAndRejected => "transfers between banks credited and rejected",
            AnomalyKind::ClosedWrongly => {
                "transfers settled without a credit or voided without a rejection"
            }
            AnomalyKind::ClosedTwice => "transfers settled or voided twice",
            AnomalyKind::ClosedUndebited => "transfers settled or voided but never debited",
            AnomalyKind::MissingDebit => "credits or rejections whose debit never appeared",
            AnomalyKind::StepMismatch => "steps of one transfer that disagree with each other",
        }
    }
}

/// One anomaly, located by stream entry id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    pub entry: String,
    pub detail: String,
    /// The bank whose stream holds the entry (sharded layout); `None`: the single stream.
    #[serde(default)]
    pub stream: Option<u16>,
}

/// Anomalies by kind: how many, and the first [`MAX_KEPT_PER_KIND`] with their details.
pub type Anomalies = BTreeMap<AnomalyKind, (u64, Vec<Anomaly>)>;

/// Where a stream entry is: its stream (`None`: the single layout's) and its id.
#[derive(Debug, Clone, Copy)]
struct At<'a> {
    stream: Option<u16>,
    entry: &'a str,
}

/// One producer's sequence of decided transfers: per run and producer, and in the sharded
/// layout per source bank too (each bank keeps its own producer keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    pub bank: Option<u16>,
    pub run: u64,
    pub producer: u32,
}

/// Counts of one run's events, as the replay saw them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTally {
    /// Events that decide a transfer: completed, cancelled and (sharded) debited.
    pub events: u64,
    pub completed: u64,
    pub cancelled: u64,
}

/// What the replay knows of one producer scope (one worker, or committer, of one run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerTally {
    pub last_seq: u64,
    /// Events that decided one of its transfers: completed, cancelled and (sharded) debited.
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
    /// Producers of the single layout: run, producer.
    pub producers: Vec<(u64, u32, ProducerTally)>,
    pub anomalies: Vec<(AnomalyKind, u64, Vec<Anomaly>)>,
    /// The fields below came with the sharded layout; a checkpoint written before them reads
    /// as the single layout with none of them.
    #[serde(default)]
    pub layout: Layout,
    /// Producers of the sharded layout: source bank, run, producer.
    #[serde(default)]
    pub bank_producers: Vec<(u16, u64, u32, ProducerTally)>,
    #[serde(default)]
    pub in_flight: Vec<(FlightKey, Crossing)>,
}

/// The balances rebuilt so far, and everything odd seen on the way.
#[derive(Debug, Clone)]
pub struct Ledger {
    pub layout: Layout,
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
    pub producers: HashMap<Scope, ProducerTally>,
    pub anomalies: Anomalies,
    /// (sharded) Transfers between banks from their first step seen until their last.
    pub in_flight: BTreeMap<FlightKey, Crossing>,
}

impl Ledger {
    /// The state before any transfer, in the single layout.
    pub fn new(file: &AccountsFile) -> Ledger {
        Ledger::with_layout(file, Layout::Single)
    }

    /// The state before any transfer: the accounts file's balances, banks at zero.
    pub fn with_layout(file: &AccountsFile, layout: Layout) -> Ledger {
        let banks = file.banks.clone();
        let n = banks.len();
        Ledger {
            layout,
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
            in_flight: BTreeMap::new(),
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
            producers: self
                .producers
                .iter()
                .filter(|(scope, _)| scope.bank.is_none())
                .map(|(scope, t)| (scope.run, scope.producer, *t))
                .collect(),
            anomalies: self.anomalies.iter().map(|(k, (c, kept))| (*k, *c, kept.clone())).collect(),
            layout: self.layout,
            bank_producers: self
                .producers
                .iter()
                .filter_map(|(scope, t)| Some((scope.bank?, scope.run, scope.producer, *t)))
                .collect(),
            in_flight: self.in_flight.iter().map(|(k, c)| (*k, c.clone())).collect(),
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
        if state.layout != self.layout {
            return Err(format!(
                "it replays the {} layout, the data set has the {} layout",
                state.layout.as_str(),
                self.layout.as_str()
            ));
        }
        self.check_indices(&state)?;
        self.balances = state.balances;
        self.bank_balances = state.bank_balances;
        self.interbank = state.interbank;
        self.events = state.events;
        self.completed = state.completed;
        self.cancelled = state.cancelled.into_iter().collect();
        self.moved_cents = state.moved_cents;
        self.runs = state.runs.into_iter().collect();
        let single = state.producers.into_iter().map(|(run, producer, t)| (None, run, producer, t));
        let banked = state.bank_producers.into_iter().map(|(b, run, p, t)| (Some(b), run, p, t));
        self.producers = single
            .chain(banked)
            .map(|(bank, run, producer, t)| (Scope { bank, run, producer }, t))
            .collect();
        self.anomalies = state.anomalies.into_iter().map(|(k, c, kept)| (k, (c, kept))).collect();
        self.in_flight = state.in_flight.into_iter().collect();
        Ok(())
    }

    /// Refuses a state that names a bank or an account these accounts do not have.
    fn check_indices(&self, state: &LedgerState) -> Result<(), String> {
        let banks = self.banks.len();
        let accounts = self.balances.len();
        let bank_ok = |b: u16| usize::from(b) < banks;
        let account_ok =
            |a: Option<u32>| a.is_none_or(|a| usize::try_from(a).is_ok_and(|a| a < accounts));
        let streams = state.anomalies.iter().flat_map(|(_, _, kept)| kept).filter_map(|a| a.stream);
        let crossings = state.in_flight.iter().all(|(key, c)| {
            bank_ok(key.bank)
                && bank_ok(c.terms.to_bank)
                && account_ok(c.terms.from)
                && account_ok(c.terms.to)
                && c.waiting.as_ref().is_none_or(|w| bank_ok(w.stream))
        });
        if streams.chain(state.bank_producers.iter().map(|p| p.0)).all(bank_ok) && crossings {
            Ok(())
        } else {
            Err(format!(
                "it names a bank or account beyond the file's {banks} banks and {accounts} accounts"
            ))
        }
    }

    pub fn cancelled_total(&self) -> u64 {
        self.cancelled.values().sum()
    }

    pub fn anomaly_count(&self, kind: AnomalyKind) -> u64 {
        self.anomalies.get(&kind).map_or(0, |(count, _)| *count)
    }

    /// Notes an anomaly at an entry of the single layout's stream.
    pub fn report(&mut self, kind: AnomalyKind, entry: &str, detail: String) {
        self.report_at(kind, At { stream: None, entry }, detail);
    }

    /// Notes an anomaly at an entry of bank `bank`'s stream (sharded layout).
    pub fn report_on(&mut self, kind: AnomalyKind, bank: u16, entry: &str, detail: String) {
        self.report_at(kind, At { stream: Some(bank), entry }, detail);
    }

    fn report_at(&mut self, kind: AnomalyKind, at: At<'_>, detail: String) {
        let anomaly = Anomaly { entry: at.entry.to_string(), detail, stream: at.stream };
        note(&mut self.anomalies, kind, anomaly);
    }

    /// Applies one event of the single layout's stream. `strategy` is that of the event's run,
    /// `None` when the run is unknown.
    pub fn apply(&mut self, entry: &str, event: &Event<'_>, strategy: Option<Strategy>) {
        debug_assert_eq!(self.layout, Layout::Single, "apply_on reads the sharded streams");
        let at = At { stream: None, entry };
        if let Some(strategy) = self.known_run(at, event.id, strategy) {
            self.apply_transfer(at, event, strategy);
        }
    }

    /// The strategy of the entry's run; reports the entry when its run has no record.
    fn known_run(
        &mut self,
        at: At<'_>,
        id: TransferId,
        strategy: Option<Strategy>,
    ) -> Option<Strategy> {
        if strategy.is_none() {
            let detail = format!("{id} belongs to run {}, which has no record", id.run);
            self.report_at(AnomalyKind::UnknownRun, at, detail);
        }
        strategy
    }

    /// Takes `id` as the next sequence of its producer scope: false (and reported) when it was
    /// seen before; a gap is reported and taken.
    fn take_seq(&mut self, at: At<'_>, scope: Scope, id: TransferId) -> bool {
        let producer = self.producers.entry(scope).or_default();
        let expected = producer.last_seq + 1;
        if id.seq < expected {
            self.report_at(AnomalyKind::Duplicate, at, format!("{id} was already seen"));
            return false;
        }
        producer.last_seq = id.seq;
        if id.seq > expected {
            let detail = format!("{id}: sequence jumped from {} to {}", expected - 1, id.seq);
            self.report_at(AnomalyKind::Gap, at, detail);
        }
        true
    }

    /// Counts an event that decided a transfer of `scope`.
    fn count_decided(&mut self, scope: Scope, completed: bool, cancelled: bool) {
        let producer = self.producers.entry(scope).or_default();
        producer.events += 1;
        producer.completed += u64::from(completed);
        let tally = self.runs.entry(scope.run).or_default();
        tally.events += 1;
        tally.completed += u64::from(completed);
        tally.cancelled += u64::from(cancelled);
        self.events += 1;
    }

    /// A transfer decided in one event, on the single stream or (sharded) its bank's stream.
    fn apply_transfer(&mut self, at: At<'_>, event: &Event<'_>, strategy: Strategy) {
        let scope = Scope { bank: at.stream, run: event.id.run, producer: event.id.producer };
        if !self.take_seq(at, scope, event.id) {
            return;
        }
        let Some((from, to)) = self.locate(at, event) else {
            return;
        };
        let completed = event.outcome == Outcome::Completed;
        self.count_decided(scope, completed, !completed);
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
                    self.report_at(AnomalyKind::OrderMismatch, at, detail);
                }
            }
            (Outcome::Completed, Some(from), Some(to)) => {
                self.completed += 1;
                self.moved_cents += i128::from(event.amount_cents);
                self.apply_completed(at, event, strategy, from, to);
            }
            (Outcome::Completed, _, _) => {
                unreachable!("locate returns both accounts of a completed transfer")
            }
        }
    }

    /// Finds the event's accounts, checking their banks. A completed transfer needs both; a
    /// cancelled one may name an unknown account (that is why it was cancelled).
    fn locate(&mut self, at: At<'_>, event: &Event<'_>) -> Option<(Option<usize>, Option<usize>)> {
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
                    self.report_at(AnomalyKind::UnknownAccount, at, detail);
                    return None;
                }
                (None, _) => {
                    self.report_at(
                        AnomalyKind::UnknownAccount,
                        at,
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
        at: At<'_>,
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
            self.report_at(AnomalyKind::Overdraft, at, detail);
        }
        let (Some(debited), Some(credited)) =
            (self.balances[from].checked_sub(amount), self.balances[to].checked_add(amount))
        else {
            self.report_at(
                AnomalyKind::Overflow,
                at,
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
            self.report_at(AnomalyKind::OrderMismatch, at, detail);
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
                self.report_at(
                    AnomalyKind::Overflow,
                    at,
                    format!("{}: a bank or interbank balance overflowed", event.id),
                );
            }
        }
    }
}

/// Counts an anomaly of `kind`, keeping its details while fewer than [`MAX_KEPT_PER_KIND`] are.
fn note(anomalies: &mut Anomalies, kind: AnomalyKind, anomaly: Anomaly) {
    let (count, kept) = anomalies.entry(kind).or_default();
    *count += 1;
    if kept.len() < MAX_KEPT_PER_KIND {
        kept.push(anomaly);
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

    #[test]
    fn a_checkpoint_written_before_the_sharded_layout_still_loads() {
        let old = r#"{"balances":[700,500,300],"bank_balances":[-300,300],"interbank":[0,-300,300,0],
            "events":1,"completed":1,"cancelled":[],"moved_cents":300,
            "runs":[[1,{"events":1,"completed":1,"cancelled":0}]],
            "producers":[[1,1,{"last_seq":1,"events":1,"completed":1}]],
            "anomalies":[["gap",1,[{"entry":"1-0","detail":"r1-w1-1: sequence jumped"}]]]}"#;
        let mut ledger = Ledger::new(&file());
        ledger.restore(serde_json::from_str(old).unwrap()).unwrap();
        let scope = Scope { bank: None, run: 1, producer: 1 };
        assert_eq!(ledger.producers[&scope].last_seq, 1);
        assert_eq!(ledger.anomalies[&AnomalyKind::Gap].1[0].stream, None);
        ledger.apply("2-0", &event(2, "A1", "B1", 100, 600), Some(Strategy::Atomic));
        assert_eq!(ledger.balances, vec![600, 500, 400]);
        let state = serde_json::from_str::<LedgerState>(old).unwrap();
        assert_eq!(state.layout, Layout::Single);
        let err = Ledger::with_layout(&file(), Layout::Sharded).restore(state).unwrap_err();
        assert!(err.contains("the single layout, the data set has the sharded layout"), "{err}");
    }
}
