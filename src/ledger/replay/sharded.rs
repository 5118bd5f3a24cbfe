//! The sharded layout's transfers between banks, as the replay follows them: a debit on the
//! source bank's stream, a credit or a rejection on the destination's, then a settlement (after a
//! credit; one entry names every transfer one call settled) or a void, the refund (after a
//! rejection), on the source's. Each stream is in the order
//! its bank applied its events, but streams are read independently, so a credit may be replayed
//! before its debit; nothing here assumes an order across streams.
//!
//! Each transfer between banks is kept, by source bank and id, from its first step seen to its
//! last (debited, credited, settled; or debited, rejected, voided), then dropped: memory is
//! O(transfers in flight + the window between the streams' reading points). A step seen a second
//! time is reported and not applied, as a duplicate id is; a step that contradicts another (a
//! credit after a rejection, say) is reported and applied, since its bank's keys did move.
//! Settlements of one producer may come out of sequence order (a transfer left in flight is
//! settled later by the recovery pass); each is checked against its transfer's own steps.

use serde::{Deserialize, Serialize};

use super::{Anomalies, Anomaly, AnomalyKind, At, Ledger, Scope, add_in_place, note};
use crate::ledger::events::{
    CancelReason, Entry, Event, Layout, Outcome, Phase, Settlement, Step, TransferId,
};
use crate::ledger::runs::Strategy;

/// A transfer between banks: its source bank and its id, unique among that bank's transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FlightKey {
    pub bank: u16,
    pub id: TransferId,
}

/// What a step says its transfer is; every step of one transfer must say the same. An account
/// is `None` when it is not one of its bank's accounts (a debit to an account the destination
/// bank lacks, which that bank then rejects).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    pub to_bank: u16,
    pub from: Option<u32>,
    pub to: Option<u32>,
    pub amount_cents: i64,
}

/// Which steps of a transfer between banks were replayed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    pub debited: bool,
    pub credited: bool,
    pub rejected: bool,
    pub settled: bool,
    pub voided: bool,
}

impl Seen {
    fn answered(self) -> bool {
        self.credited || self.rejected
    }

    fn closed(self) -> bool {
        self.settled || self.voided
    }

    /// Debited and neither credited nor voided: money that left the source and did not arrive.
    pub fn money_in_flight(self) -> bool {
        self.debited && !self.credited && !self.voided
    }

    /// Debited and neither settled nor voided: in the source's outbox and in-flight counter.
    pub fn outbound(self) -> bool {
        self.debited && !self.closed()
    }
}

/// The entry of a step whose earlier step, on another stream, has not been replayed yet: a
/// credit or rejection before its debit, a settlement or void before its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    pub stream: u16,
    pub entry: Box<str>,
}

/// A transfer between banks from its first step replayed to its last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Crossing {
    /// As its first step replayed said.
    pub terms: Terms,
    pub seen: Seen,
    /// The reason of its rejection or of its void, whichever came first.
    pub reason: Option<CancelReason>,
    pub waiting: Option<Waiting>,
}

impl Crossing {
    /// Notes a step; the step waits when the one before it is missing.
    fn record(&mut self, phase: Phase, stream: u16, entry: &str) {
        let seen = &mut self.seen;
        match phase {
            Phase::Debited { .. } => seen.debited = true,
            Phase::Credited { .. } => seen.credited = true,
            Phase::Rejected(reason) => {
                seen.rejected = true;
                self.reason.get_or_insert(reason);
            }
            Phase::Voided { reason, .. } => {
                seen.voided = true;
                self.reason.get_or_insert(reason);
            }
        }
        let waits = match phase {
            Phase::Debited { .. } => false,
            Phase::Credited { .. } | Phase::Rejected(_) => !seen.debited,
            Phase::Voided { .. } => !seen.answered(),
        };
        self.waiting = waits.then(|| Waiting { stream, entry: entry.into() });
    }

    /// Notes the settlement; it waits when the credit has not been replayed yet.
    fn record_settled(&mut self, stream: u16, entry: &str) {
        self.seen.settled = true;
        let waits = !self.seen.answered();
        self.waiting = waits.then(|| Waiting { stream, entry: entry.into() });
    }

    fn complete(&self) -> bool {
        self.seen.debited && self.seen.answered() && self.seen.closed()
    }
}

/// Money in flight, as the replay has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flight {
    banks: usize,
    /// `pairs[a * banks + b]`: debited at a for b, neither credited nor voided yet.
    pub pairs: Vec<i128>,
    /// Per bank: debited there, neither settled nor voided yet (its in-flight counter).
    pub outbound: Vec<i128>,
    /// Transfers debited and neither settled nor voided (its outbox entries), all banks.
    pub transfers: u64,
}

impl Flight {
    /// Money debited and neither credited nor voided, all pairs.
    pub fn total(&self) -> i128 {
        self.pairs.iter().sum()
    }

    /// Money in flight between a and b, both ways.
    pub fn between(&self, a: usize, b: usize) -> i128 {
        self.pairs[a * self.banks + b] + self.pairs[b * self.banks + a]
    }
}

/// A step whose banks are known and whose stream is the right one.
struct Placed<'s, 'a> {
    at: At<'a>,
    stream: u16,
    step: &'s Step<'a>,
    key: FlightKey,
    terms: Terms,
}

impl Placed<'_, '_> {
    fn scope(&self) -> Scope {
        Scope { bank: Some(self.key.bank), run: self.key.id.run, producer: self.key.id.producer }
    }
}

impl Ledger {
    /// Applies one entry of bank `bank`'s stream (sharded layout). `strategy_of` gives a run's
    /// strategy, `None` when the run is unknown.
    pub fn apply_on(
        &mut self,
        bank: u16,
        entry: &str,
        event: &Entry<'_>,
        strategy_of: impl Fn(u64) -> Option<Strategy>,
    ) {
        debug_assert_eq!(self.layout, Layout::Sharded, "apply reads the single stream");
        let at = At { stream: Some(bank), entry };
        match event {
            Entry::Transfer(event) => {
                let Some(strategy) = self.known_run(at, event.id, strategy_of(event.id.run)) else {
                    return;
                };
                if self.decided_here(at, bank, event) {
                    self.apply_transfer(at, event, strategy);
                }
            }
            Entry::Step(step) => self.apply_one_step(at, bank, step, &strategy_of),
            Entry::Settlement(settlement) => self.settle(at, bank, settlement),
            Entry::Batch(batch) => {
                // One entry read, however many steps it holds.
                let read = self.events;
                for step in &batch.steps {
                    self.apply_one_step(at, bank, step, &strategy_of);
                }
                self.events = read + 1;
            }
        }
    }

    fn apply_one_step(
        &mut self,
        at: At<'_>,
        bank: u16,
        step: &Step<'_>,
        strategy_of: &impl Fn(u64) -> Option<Strategy>,
    ) {
        let Some(strategy) = self.known_run(at, step.id, strategy_of(step.id.run)) else {
            return;
        };
        if let Some(placed) = self.place(at, bank, step) {
            self.apply_step(&placed, strategy);
        }
    }

    /// The anomalies, with those only the end of the streams reveals: a credit or rejection
    /// whose debit never came, a settlement or void whose answer never came.
    pub fn final_anomalies(&self) -> Anomalies {
        let mut anomalies = self.anomalies.clone();
        for (key, crossing) in &self.in_flight {
            let seen = crossing.seen;
            let (a, b) = self.bank_names(*key, crossing.terms);
            let (kind, detail) = if !seen.debited {
                let (answer, created) = if seen.credited {
                    ("credited", ": money created (was the debit lost in a failover?)")
                } else {
                    ("rejected", "")
                };
                let amount = crossing.terms.amount_cents;
                let detail = format!(
                    "{} from {a}: {answer} at {b} ({amount} cents), but {a}'s stream never debited it{created}",
                    key.id
                );
                (AnomalyKind::MissingDebit, detail)
            } else if seen.closed() && !seen.answered() {
                let (closed, answer) =
                    if seen.settled { ("settled", "credited") } else { ("voided", "rejected") };
                let detail = format!(
                    "{} from {a}: {closed} at {a}, but {b}'s stream never {answer} it",
                    key.id
                );
                (AnomalyKind::ClosedWrongly, detail)
            } else {
                continue;
            };
            let waiting = crossing.waiting.as_ref();
            let anomaly = Anomaly {
                entry: waiting.map(|w| w.entry.to_string()).unwrap_or_default(),
                detail,
                stream: waiting.map(|w| w.stream),
            };
            note(&mut anomalies, kind, anomaly);
        }
        anomalies
    }

    /// The money in flight at this point of the replay.
    pub fn flight(&self) -> Flight {
        let banks = self.banks.len();
        let mut flight =
            Flight { banks, pairs: vec![0; banks * banks], outbound: vec![0; banks], transfers: 0 };
        for (key, crossing) in &self.in_flight {
            let (a, b) = (usize::from(key.bank), usize::from(crossing.terms.to_bank));
            let amount = i128::from(crossing.terms.amount_cents);
            if crossing.seen.money_in_flight() {
                flight.pairs[a * banks + b] += amount;
            }
            if crossing.seen.outbound() {
                flight.outbound[a] += amount;
                flight.transfers += 1;
            }
        }
        flight
    }

    /// Whether a transfer decided in one event is on its source bank's stream, and inside one
    /// bank if completed; reported when not.
    fn decided_here(&mut self, at: At<'_>, bank: u16, event: &Event<'_>) -> bool {
        let here = &self.banks[usize::from(bank)];
        let detail = if event.from_bank != here {
            format!(
                "{}: a transfer from bank {:?} on {here}'s stream: a transfer is decided on its source bank's stream",
                event.id, event.from_bank
            )
        } else if event.outcome == Outcome::Completed && event.to_bank != here {
            format!(
                "{}: completed from {here} to {:?} in one event: between banks a transfer is debited, then credited",
                event.id, event.to_bank
            )
        } else {
            return true;
        };
        self.report_at(AnomalyKind::WrongStream, at, detail);
        false
    }

    /// Finds a step's banks and accounts and checks it is on the stream of the bank it changes
    /// (the source's for a debit, settlement or void, the destination's for an answer).
    fn place<'s, 'a>(
        &mut self,
        at: At<'a>,
        bank: u16,
        step: &'s Step<'a>,
    ) -> Option<Placed<'s, 'a>> {
        let found = (self.bank_index.get(step.from_bank), self.bank_index.get(step.to_bank));
        let (Some(&a), Some(&b)) = found else {
            let unknown = if found.0.is_none() { step.from_bank } else { step.to_bank };
            let detail = format!("{}: bank {unknown:?} was never loaded", step.id);
            self.report_at(AnomalyKind::UnknownAccount, at, detail);
            return None;
        };
        let answer = matches!(step.phase, Phase::Credited { .. } | Phase::Rejected(_));
        let owner = if answer { b } else { a };
        if owner != usize::from(bank) {
            let detail = format!(
                "{}: a {} step from {} to {} belongs on {}'s stream, not {}'s",
                step.id,
                step.phase.as_str(),
                step.from_bank,
                step.to_bank,
                self.banks[owner],
                self.banks[usize::from(bank)]
            );
            self.report_at(AnomalyKind::WrongStream, at, detail);
            return None;
        }
        let index = |i: usize| u16::try_from(i).expect("a file has at most MAX_BANKS banks");
        let terms = Terms {
            to_bank: index(b),
            from: self.account_in(step.from, a),
            to: self.account_in(step.to, b),
            amount_cents: step.amount_cents,
        };
        Some(Placed {
            at,
            stream: bank,
            step,
            key: FlightKey { bank: index(a), id: step.id },
            terms,
        })
    }

    fn apply_step(&mut self, p: &Placed<'_, '_>, strategy: Strategy) {
        match p.step.phase {
            Phase::Debited { from_balance_cents } => self.debit(p, from_balance_cents, strategy),
            Phase::Credited { to_balance_cents } => self.credit(p, to_balance_cents, strategy),
            Phase::Rejected(reason) => self.reject(p, reason),
            Phase::Voided { from_balance_cents, .. } => self.void(p, from_balance_cents, strategy),
        }
    }

    /// The source bank's step that decides the transfer: its sequence is checked with the
    /// transfers decided in one event of the same scope.
    fn debit(&mut self, p: &Placed<'_, '_>, recorded: i64, strategy: Strategy) {
        let scope = p.scope();
        if !self.take_seq(p.at, scope, p.key.id) {
            return;
        }
        let Some(from) = self.need(p, p.terms.from, p.step.from, p.key.bank) else {
            return;
        };
        self.count_decided(scope, false, false);
        self.track(p);
        let amount = p.step.amount_cents;
        if recorded < 0 {
            let detail = format!(
                "{}: the debit of {amount} left {} at {recorded} cents",
                self.label(p.key),
                p.step.from
            );
            self.report_at(AnomalyKind::Overdraft, p.at, detail);
        }
        if let Some(balance) = self.shift(p, from, p.key.bank, p.terms.to_bank, -amount) {
            self.check_recorded(p, strategy, p.step.from, recorded, balance, "debit");
        }
    }

    fn credit(&mut self, p: &Placed<'_, '_>, recorded: i64, strategy: Strategy) {
        let Some(to) = self.need(p, p.terms.to, p.step.to, p.terms.to_bank) else {
            return;
        };
        if !self.answer_is_new(p) {
            return;
        }
        self.track(p);
        let amount = p.step.amount_cents;
        self.events += 1;
        self.completed += 1;
        self.moved_cents += i128::from(amount);
        if let Some(balance) = self.shift(p, to, p.terms.to_bank, p.key.bank, amount) {
            self.check_recorded(p, strategy, p.step.to, recorded, balance, "credit");
        }
    }

    fn reject(&mut self, p: &Placed<'_, '_>, reason: CancelReason) {
        if !self.answer_is_new(p) {
            return;
        }
        self.track(p);
        self.events += 1;
        *self.cancelled.entry(reason).or_default() += 1;
    }

    /// A void: the refund of a rejected transfer; `recorded` is the source balance after it.
    fn void(&mut self, p: &Placed<'_, '_>, recorded: i64, strategy: Strategy) {
        let Some(from) = self.need(p, p.terms.from, p.step.from, p.key.bank) else {
            return;
        };
        if !self.close_is_new(p.at, p.key, "voided") {
            return;
        }
        self.track(p);
        self.events += 1;
        if let Some(balance) = self.shift(p, from, p.key.bank, p.terms.to_bank, p.step.amount_cents)
        {
            self.check_recorded(p, strategy, p.step.from, recorded, balance, "refund");
        }
    }

    /// A settlement on bank `bank`'s stream: each transfer it names leaves the bank's outbox, and
    /// its amount the in-flight total. No money moves; the entry's sum must be its transfers'.
    fn settle(&mut self, at: At<'_>, bank: u16, settlement: &Settlement<'_>) {
        let here = self.banks[usize::from(bank)].clone();
        if settlement.from_bank != here {
            let detail = format!(
                "a settlement of bank {:?} on {here}'s stream: a bank settles on its own stream",
                settlement.from_bank
            );
            self.report_at(AnomalyKind::WrongStream, at, detail);
            return;
        }
        self.events += 1;
        let (mut settled_cents, mut all_closed_here): (i128, bool) = (0, true);
        for &id in &settlement.ids {
            let key = FlightKey { bank, id };
            if !self.close_is_new(at, key, "settled") {
                all_closed_here = false;
                continue;
            }
            let crossing = self.in_flight.get_mut(&key).expect("close_is_new found it debited");
            crossing.record_settled(bank, at.entry);
            settled_cents += i128::from(crossing.terms.amount_cents);
            let (rejected, complete) = (crossing.seen.rejected, crossing.complete());
            if complete {
                self.in_flight.remove(&key);
            }
            if rejected {
                let detail = format!(
                    "{}: settled though rejected: its source is never refunded",
                    self.label(key)
                );
                self.report_at(AnomalyKind::ClosedWrongly, at, detail);
            }
        }
        // A transfer reported above has no amount to add: the sum is checked when none was.
        if all_closed_here && settled_cents != i128::from(settlement.amount_cents) {
            let detail = format!(
                "a settlement of {} cents at {here}, but the debits of the transfers it settles sum to {settled_cents}",
                settlement.amount_cents
            );
            self.report_at(AnomalyKind::StepMismatch, at, detail);
        }
    }

    /// Whether an answer is its transfer's first of its kind; reported when it is a second
    /// one, or when the source's stream decided the transfer and no longer has it in flight.
    fn answer_is_new(&mut self, p: &Placed<'_, '_>) -> bool {
        let credit = matches!(p.step.phase, Phase::Credited { .. });
        let why = match self.in_flight.get(&p.key).map(|c| c.seen) {
            Some(seen) if (credit && seen.credited) || (!credit && seen.rejected) => {
                "it was answered so before"
            }
            None if self.decided_at_source(p.key) => {
                "its source's stream has it no longer in flight: answered before, or never debited"
            }
            _ => return true,
        };
        let detail = format!("{}: {}, but {why}", self.label(p.key), p.step.phase.as_str());
        self.report_at(AnomalyKind::AnsweredTwice, p.at, detail);
        false
    }

    /// Whether a settlement or void (`what`) closes a transfer its stream debited and has not
    /// closed; reported when not.
    fn close_is_new(&mut self, at: At<'_>, key: FlightKey, what: &str) -> bool {
        let seen = self.in_flight.get(&key).map(|c| c.seen);
        let (kind, why) = match (seen, self.decided_at_source(key)) {
            (Some(seen), _) if seen.closed() => (AnomalyKind::ClosedTwice, "it was closed already"),
            (Some(seen), _) if seen.debited => return true,
            (None, true) => (
                AnomalyKind::ClosedTwice,
                "its source's stream has it no longer in flight: closed before, or never debited",
            ),
            (Some(_), true) => {
                (AnomalyKind::ClosedUndebited, "its source's stream decided it without a debit")
            }
            (_, false) => (AnomalyKind::ClosedUndebited, "its source's stream has not debited it"),
        };
        let detail = format!("{}: {what}, but {why}", self.label(key));
        self.report_at(kind, at, detail);
        false
    }

    /// Whether the source's stream has decided this transfer's sequence (in any way).
    fn decided_at_source(&self, key: FlightKey) -> bool {
        let scope = Scope { bank: Some(key.bank), run: key.id.run, producer: key.id.producer };
        self.producers.get(&scope).is_some_and(|t| t.last_seq >= key.id.seq)
    }

    /// Records a step after reporting what it contradicts among its transfer's earlier steps;
    /// drops the transfer once its three steps are in.
    fn track(&mut self, p: &Placed<'_, '_>) {
        if let Some(before) = self.in_flight.get(&p.key) {
            let (terms, seen, reason) = (before.terms, before.seen, before.reason);
            if terms != p.terms {
                let detail = format!(
                    "{}: the {} step says {}, an earlier step said {}",
                    self.label(p.key),
                    p.step.phase.as_str(),
                    self.describe(p.key, p.terms),
                    self.describe(p.key, terms)
                );
                self.report_at(AnomalyKind::StepMismatch, p.at, detail);
            }
            if let Some((kind, why)) = conflict(p.step.phase, seen, reason) {
                let detail = format!("{}: {why}", self.label(p.key));
                self.report_at(kind, p.at, detail);
            }
        }
        let crossing = self.in_flight.entry(p.key).or_insert_with(|| Crossing {
            terms: p.terms,
            seen: Seen::default(),
            reason: None,
            waiting: None,
        });
        crossing.record(p.step.phase, p.stream, p.at.entry);
        if crossing.complete() {
            self.in_flight.remove(&p.key);
        }
    }

    /// Adds `delta` to an account, its bank's balance and that bank's position with `other`, as
    /// one step does on one bank's keys; the account's balance after, `None` if it overflowed.
    fn shift(
        &mut self,
        p: &Placed<'_, '_>,
        account: usize,
        bank: u16,
        other: u16,
        delta: i64,
    ) -> Option<i64> {
        let Some(balance) = self.balances[account].checked_add(delta) else {
            let detail =
                format!("{}: account {} overflowed", self.label(p.key), self.ibans[account]);
            self.report_at(AnomalyKind::Overflow, p.at, detail);
            return None;
        };
        self.balances[account] = balance;
        let (bank, other, n) = (usize::from(bank), usize::from(other), self.banks.len());
        let bank_ok = add_in_place(&mut self.bank_balances[bank], delta);
        let pair_ok = add_in_place(&mut self.interbank[bank * n + other], delta);
        if !(bank_ok && pair_ok) {
            let detail = format!("{}: a bank or interbank balance overflowed", self.label(p.key));
            self.report_at(AnomalyKind::Overflow, p.at, detail);
        }
        Some(balance)
    }

    /// For atomic runs, the balance a step recorded must be the replay's at that point.
    fn check_recorded(
        &mut self,
        p: &Placed<'_, '_>,
        strategy: Strategy,
        iban: &str,
        recorded: i64,
        replayed: i64,
        what: &str,
    ) {
        if strategy == Strategy::Atomic && recorded != replayed {
            let detail = format!(
                "{}: recorded {iban} at {recorded} cents after the {what}, the replay has {replayed}",
                self.label(p.key)
            );
            self.report_at(AnomalyKind::OrderMismatch, p.at, detail);
        }
    }

    /// The account a step moves, which must be one of its bank's; reported when not.
    fn need(
        &mut self,
        p: &Placed<'_, '_>,
        account: Option<u32>,
        iban: &str,
        bank: u16,
    ) -> Option<usize> {
        if let Some(index) = account.and_then(|a| usize::try_from(a).ok()) {
            return Some(index);
        }
        let said = &self.banks[usize::from(bank)];
        let detail = match self.account_index.get(iban).and_then(|&i| usize::try_from(i).ok()) {
            Some(i) => format!(
                "{}: account {iban} belongs to {}, the event says {said:?}",
                self.label(p.key),
                self.banks[usize::from(self.account_bank[i])]
            ),
            None => format!("{}: account {iban} was never loaded", self.label(p.key)),
        };
        self.report_at(AnomalyKind::UnknownAccount, p.at, detail);
        None
    }

    /// The index of `iban` if it is one of bank `bank`'s accounts.
    pub fn account_in(&self, iban: &str, bank: usize) -> Option<u32> {
        self.account_index.get(iban).copied().filter(|&i| {
            usize::try_from(i).is_ok_and(|i| usize::from(self.account_bank[i]) == bank)
        })
    }

    /// A transfer between banks as failures name it: its id and its source bank.
    fn label(&self, key: FlightKey) -> String {
        format!("{} from {}", key.id, self.banks[usize::from(key.bank)])
    }

    fn bank_names(&self, key: FlightKey, terms: Terms) -> (&str, &str) {
        (&self.banks[usize::from(key.bank)], &self.banks[usize::from(terms.to_bank)])
    }

    /// What `terms` say, in words: amount, accounts and banks.
    fn describe(&self, key: FlightKey, terms: Terms) -> String {
        let iban = |account: Option<u32>| {
            account
                .and_then(|a| usize::try_from(a).ok())
                .map_or("an unknown account", |a| &self.ibans[a])
        };
        let (a, b) = self.bank_names(key, terms);
        format!(
            "{} cents from {} at {a} to {} at {b}",
            terms.amount_cents,
            iban(terms.from),
            iban(terms.to)
        )
    }
}

/// What a step contradicts among the steps of its transfer replayed before it, if anything.
fn conflict(
    phase: Phase,
    seen: Seen,
    reason: Option<CancelReason>,
) -> Option<(AnomalyKind, String)> {
    let other_reason = |mine: CancelReason, what: &str| {
        reason.filter(|r| *r != mine).map(|r| {
            let why =
                format!("{what} for {}, but the other side says {}", mine.as_str(), r.as_str());
            (AnomalyKind::StepMismatch, why)
        })
    };
    let (kind, why) = match phase {
        Phase::Credited { .. } if seen.rejected => {
            (AnomalyKind::CreditedAndRejected, "credited after it was rejected")
        }
        Phase::Credited { .. } if seen.voided => {
            (AnomalyKind::ClosedWrongly, "credited after its source was refunded: paid twice")
        }
        Phase::Rejected(_) if seen.credited => {
            (AnomalyKind::CreditedAndRejected, "rejected after it was credited")
        }
        Phase::Rejected(_) if seen.settled => {
            (AnomalyKind::ClosedWrongly, "rejected, but settled as credited: never refunded")
        }
        Phase::Voided { .. } if seen.credited => {
            (AnomalyKind::ClosedWrongly, "voided (refunded) though credited: paid twice")
        }
        Phase::Rejected(mine) => return other_reason(mine, "rejected"),
        Phase::Voided { reason: mine, .. } => return other_reason(mine, "voided"),
        _ => return None,
    };
    Some((kind, why.to_string()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ledger::events::Batch;
    use crate::ledger::replay::tests::file;

    const A: u16 = 0;
    const B: u16 = 1;

    pub fn sharded() -> Ledger {
        Ledger::with_layout(&file(), Layout::Sharded)
    }

    /// A step of producer 1 of run 1 between the test file's banks `A` and `B` (an IBAN's first
    /// letter is its bank).
    pub fn step<'a>(seq: u64, phase: Phase, from: &'a str, to: &'a str, amount: i64) -> Entry<'a> {
        Entry::Step(Step {
            id: TransferId { run: 1, producer: 1, seq },
            phase,
            from,
            to,
            from_bank: &from[..1],
            to_bank: &to[..1],
            amount_cents: amount,
        })
    }

    pub fn debit(seq: u64, amount: i64, from_balance: i64) -> Entry<'static> {
        step(seq, Phase::Debited { from_balance_cents: from_balance }, "A1", "B1", amount)
    }

    pub fn credit(seq: u64, amount: i64, to_balance: i64) -> Entry<'static> {
        step(seq, Phase::Credited { to_balance_cents: to_balance }, "A1", "B1", amount)
    }

    pub fn reject(seq: u64, amount: i64) -> Entry<'static> {
        step(seq, Phase::Rejected(CancelReason::UnknownAccount), "A1", "B1", amount)
    }

    pub fn settle(seq: u64, amount: i64) -> Entry<'static> {
        Entry::Settlement(Settlement {
            from_bank: "A",
            amount_cents: amount,
            ids: vec![TransferId { run: 1, producer: 1, seq }],
        })
    }

    pub fn void(seq: u64, amount: i64, from_balance: i64) -> Entry<'static> {
        let phase = Phase::Voided {
            reason: CancelReason::UnknownAccount,
            from_balance_cents: from_balance,
        };
        step(seq, phase, "A1", "B1", amount)
    }

    /// Applies entries, each on the stream of the bank given with it, as an atomic run's.
    pub fn replay(ledger: &mut Ledger, entries: &[(u16, &str, Entry<'_>)]) {
        for (bank, id, entry) in entries {
            ledger.apply_on(*bank, id, entry, |_| Some(Strategy::Atomic));
        }
    }

    /// The one kept anomaly of `kind`.
    fn only(anomalies: &Anomalies, kind: AnomalyKind) -> &Anomaly {
        let (count, kept) = &anomalies[&kind];
        assert_eq!(*count, 1, "{anomalies:?}");
        &kept[0]
    }

    #[test]
    fn debited_credited_settled_moves_the_money_and_leaves_nothing_in_flight() {
        let mut ledger = sharded();
        replay(&mut ledger, &[(A, "1-0", debit(1, 300, 700))]);
        let flight = ledger.flight();
        assert_eq!(
            (flight.total(), flight.outbound.clone(), flight.transfers),
            (300, vec![300, 0], 1)
        );
        replay(&mut ledger, &[(B, "1-0", credit(1, 300, 300))]);
        assert_eq!((ledger.flight().total(), ledger.flight().outbound), (0, vec![300, 0]));
        replay(&mut ledger, &[(A, "2-0", settle(1, 300))]);
        assert_eq!(ledger.balances, vec![700, 500, 300]);
        assert_eq!(ledger.bank_balances, vec![-300, 300]);
        assert_eq!(ledger.interbank, vec![0, -300, 300, 0]);
        assert!(ledger.in_flight.is_empty(), "{:?}", ledger.in_flight);
        assert_eq!(ledger.flight(), Ledger::new(&file()).flight());
        assert!(ledger.final_anomalies().is_empty(), "{:?}", ledger.final_anomalies());
        assert_eq!((ledger.events, ledger.completed, ledger.moved_cents), (3, 1, 300));
        let scope = Scope { bank: Some(A), run: 1, producer: 1 };
        assert_eq!((ledger.producers[&scope].last_seq, ledger.producers[&scope].events), (1, 1));
        assert_eq!(ledger.runs[&1].events, 1, "only the debit decides the transfer");
    }

    #[test]
    fn the_credits_of_one_call_are_one_event_and_each_counts_once() {
        let mut ledger = sharded();
        let debits = [(A, "1-0", debit(1, 300, 700)), (A, "2-0", debit(2, 100, 600))];
        replay(&mut ledger, &debits);
        let steps = [credit(1, 300, 300), credit(2, 100, 400)]
            .map(|entry| match entry {
                Entry::Step(step) => step,
                other => panic!("{other:?}"),
            })
            .to_vec();
        let credits = Entry::Batch(Batch { steps });
        replay(&mut ledger, &[(B, "1-0", credits.clone())]);
        assert_eq!(ledger.balances, vec![600, 500, 400]);
        assert_eq!(ledger.interbank, vec![0, -400, 400, 0]);
        assert_eq!((ledger.events, ledger.completed, ledger.moved_cents), (3, 2, 400));
        let both = vec![ids_1(), TransferId { seq: 2, ..ids_1() }];
        let settled =
            Entry::Settlement(Settlement { from_bank: "A", amount_cents: 400, ids: both });
        replay(&mut ledger, &[(A, "3-0", settled)]);
        assert!(ledger.in_flight.is_empty(), "{:?}", ledger.in_flight);
        assert!(ledger.final_anomalies().is_empty(), "{:?}", ledger.final_anomalies());

        // Sent again (or on the wrong stream): each transfer is reported, nothing moves.
        replay(&mut ledger, &[(B, "2-0", credits.clone()), (A, "4-0", credits)]);
        assert_eq!(ledger.anomaly_count(AnomalyKind::AnsweredTwice), 2);
        assert_eq!(ledger.anomaly_count(AnomalyKind::WrongStream), 2);
        assert_eq!(ledger.balances, vec![600, 500, 400]);
    }

    #[test]
    fn a_credit_read_before_its_debit_waits_for_it() {
        let mut ledger = sharded();
        replay(&mut ledger, &[(B, "1-0", credit(1, 300, 300))]);
        let early = ledger.final_anomalies();
        assert_eq!(only(&early, AnomalyKind::MissingDebit).stream, Some(B));
        replay(&mut ledger, &[(A, "1-0", debit(1, 300, 700)), (A, "2-0", settle(1, 300))]);
        assert_eq!(ledger.balances, vec![700, 500, 300]);
        assert_eq!(ledger.interbank, vec![0, -300, 300, 0]);
        assert!(ledger.in_flight.is_empty());
        assert!(ledger.final_anomalies().is_empty(), "{:?}", ledger.final_anomalies());
    }

    #[test]
    fn a_settlement_closes_every_transfer_it_names_and_its_sum_must_be_theirs() {
        let mut ledger = sharded();
        let debits_and_credits = [
            (A, "1-0", debit(1, 300, 700)),
            (A, "2-0", debit(2, 100, 600)),
            (B, "1-0", credit(1, 300, 300)),
            (B, "2-0", credit(2, 100, 400)),
        ];
        replay(&mut ledger, &debits_and_credits);
        let ids = vec![ids_1(), TransferId { seq: 2, ..ids_1() }];
        let both = Entry::Settlement(Settlement { from_bank: "A", amount_cents: 400, ids });
        replay(&mut ledger, &[(A, "3-0", both.clone())]);
        assert!(ledger.in_flight.is_empty(), "{:?}", ledger.in_flight);
        assert!(ledger.final_anomalies().is_empty(), "{:?}", ledger.final_anomalies());
        assert_eq!(ledger.flight().outbound, vec![0, 0]);

        // Settled again: each transfer is reported, and the sum is not checked on top.
        replay(&mut ledger, &[(A, "4-0", both)]);
        assert_eq!(ledger.anomaly_count(AnomalyKind::ClosedTwice), 2);
        assert_eq!(ledger.anomaly_count(AnomalyKind::StepMismatch), 0);

        let mut wrong_sum = sharded();
        replay(&mut wrong_sum, &debits_and_credits[..3]);
        let short =
            Entry::Settlement(Settlement { from_bank: "A", amount_cents: 299, ids: vec![ids_1()] });
        replay(&mut wrong_sum, &[(A, "3-0", short.clone()), (B, "3-0", short)]);
        let anomaly = only(&wrong_sum.anomalies, AnomalyKind::StepMismatch);
        assert!(anomaly.detail.contains("a settlement of 299 cents at A"), "{anomaly:?}");
        assert!(anomaly.detail.contains("sum to 300"), "{anomaly:?}");
        let elsewhere = only(&wrong_sum.anomalies, AnomalyKind::WrongStream);
        assert!(elsewhere.detail.contains("a bank settles on its own stream"), "{elsewhere:?}");
    }

    fn ids_1() -> TransferId {
        TransferId { run: 1, producer: 1, seq: 1 }
    }

    #[test]
    fn a_rejection_and_its_void_refund_the_source() {
        let mut ledger = sharded();
        replay(
            &mut ledger,
            &[
                (A, "1-0", debit(1, 300, 700)),
                (B, "1-0", reject(1, 300)),
                (A, "2-0", void(1, 300, 1000)),
            ],
        );
        assert_eq!(ledger.balances, vec![1000, 500, 0]);
        assert_eq!(
            (ledger.bank_balances.clone(), ledger.interbank.clone()),
            (vec![0, 0], vec![0; 4])
        );
        assert_eq!(ledger.cancelled[&CancelReason::UnknownAccount], 1);
        assert!(ledger.in_flight.is_empty());
        assert!(ledger.final_anomalies().is_empty(), "{:?}", ledger.final_anomalies());
    }

    #[test]
    fn a_second_credit_is_reported_and_not_applied() {
        let mut ledger = sharded();
        replay(
            &mut ledger,
            &[
                (A, "1-0", debit(1, 300, 700)),
                (B, "1-0", credit(1, 300, 300)),
                (B, "2-0", credit(1, 300, 600)),
            ],
        );
        assert_eq!(ledger.balances[2], 300);
        assert_eq!(only(&ledger.anomalies, AnomalyKind::AnsweredTwice).entry, "2-0");
        replay(&mut ledger, &[(A, "2-0", settle(1, 300)), (B, "3-0", credit(1, 300, 600))]);
        assert!(ledger.in_flight.is_empty(), "a credit after the end opens nothing");
        assert_eq!(ledger.anomaly_count(AnomalyKind::AnsweredTwice), 2);
        assert_eq!(ledger.balances[2], 300);
    }

    #[test]
    fn a_transfer_credited_and_rejected_is_reported() {
        let mut ledger = sharded();
        replay(
            &mut ledger,
            &[
                (A, "1-0", debit(1, 300, 700)),
                (B, "1-0", credit(1, 300, 300)),
                (B, "2-0", reject(1, 300)),
            ],
        );
        let anomaly = only(&ledger.anomalies, AnomalyKind::CreditedAndRejected);
        assert_eq!((anomaly.stream, anomaly.entry.as_str()), (Some(B), "2-0"));
        assert!(
            anomaly.detail.contains("r1-w1-1 from A: rejected after it was credited"),
            "{anomaly:?}"
        );
    }

    #[test]
    fn settling_without_a_credit_is_reported_when_both_sides_are_known() {
        let mut ledger = sharded();
        replay(
            &mut ledger,
            &[
                (A, "1-0", debit(1, 300, 700)),
                (A, "2-0", settle(1, 300)),
                (B, "1-0", reject(1, 300)),
            ],
        );
        let anomaly = only(&ledger.anomalies, AnomalyKind::ClosedWrongly);
        assert!(anomaly.detail.contains("rejected, but settled as credited"), "{anomaly:?}");

        let mut unanswered = sharded();
        replay(&mut unanswered, &[(A, "1-0", debit(1, 300, 700)), (A, "2-0", settle(1, 300))]);
        assert!(unanswered.anomalies.is_empty(), "B's stream may not be read yet");
        let end = unanswered.final_anomalies();
        let anomaly = only(&end, AnomalyKind::ClosedWrongly);
        assert_eq!((anomaly.stream, anomaly.entry.as_str()), (Some(A), "2-0"));
        assert!(anomaly.detail.contains("settled at A, but B's stream never credited it"));
    }

    #[test]
    fn a_credit_whose_debit_was_lost_creates_money_and_shows_at_the_end() {
        let mut ledger = sharded();
        replay(&mut ledger, &[(B, "7-0", credit(4, 300, 300))]);
        assert!(ledger.anomalies.is_empty(), "A's stream may not be read yet");
        assert_eq!(ledger.flight().total(), 0, "a credit alone is no money in flight");
        let end = ledger.final_anomalies();
        let anomaly = only(&end, AnomalyKind::MissingDebit);
        assert_eq!((anomaly.stream, anomaly.entry.as_str()), (Some(B), "7-0"));
        assert!(
            anomaly.detail.contains("r1-w1-4 from A: credited at B (300 cents)"),
            "{anomaly:?}"
        );
        assert!(anomaly.detail.contains("money created"), "{anomaly:?}");
    }

    #[test]
    fn sequences_are_scoped_by_source_bank() {
        let mut ledger = sharded();
        let back = step(1, Phase::Debited { from_balance_cents: 0 }, "B1", "A1", 300);
        replay(
            &mut ledger,
            &[
                (A, "1-0", debit(1, 300, 700)),
                (B, "1-0", credit(1, 300, 300)),
                (B, "2-0", back),
                (A, "2-0", debit(3, 100, 600)),
                (A, "3-0", debit(3, 100, 500)),
            ],
        );
        assert_eq!(ledger.anomaly_count(AnomalyKind::Gap), 1, "{:?}", ledger.anomalies);
        assert_eq!(only(&ledger.anomalies, AnomalyKind::Duplicate).entry, "3-0");
        assert!(ledger.anomalies[&AnomalyKind::Gap].1[0].detail.contains("jumped from 1 to 3"));
        assert_eq!(ledger.in_flight.len(), 3, "r1-w1-1 from A and from B are two transfers");
        assert_eq!(ledger.balances, vec![600, 500, 0]);
    }

    #[test]
    fn steps_on_the_wrong_stream_or_with_other_terms_are_reported() {
        let mut ledger = sharded();
        let one_step =
            Entry::Transfer(crate::ledger::replay::tests::event(1, "A1", "B1", 300, 700));
        replay(&mut ledger, &[(A, "1-0", one_step), (A, "2-0", credit(1, 300, 300))]);
        assert_eq!(ledger.anomaly_count(AnomalyKind::WrongStream), 2);
        assert_eq!(ledger.balances, vec![1000, 500, 0]);
        replay(&mut ledger, &[(A, "3-0", debit(1, 300, 700)), (B, "1-0", credit(1, 200, 200))]);
        let anomaly = only(&ledger.anomalies, AnomalyKind::StepMismatch);
        assert!(
            anomaly.detail.contains(
                "the credited step says 200 cents from A1 at A to B1 at B, an earlier step said 300 cents"
            ),
            "{anomaly:?}"
        );
    }

    #[test]
    fn closing_twice_or_before_the_debit_is_reported_and_not_applied() {
        let mut ledger = sharded();
        replay(&mut ledger, &[(A, "1-0", void(1, 300, 1300))]);
        assert_eq!(ledger.anomaly_count(AnomalyKind::ClosedUndebited), 1);
        replay(
            &mut ledger,
            &[
                (A, "2-0", debit(1, 300, 700)),
                (B, "1-0", reject(1, 300)),
                (A, "3-0", void(1, 300, 1000)),
                (A, "4-0", void(1, 300, 1300)),
            ],
        );
        assert_eq!(only(&ledger.anomalies, AnomalyKind::ClosedTwice).entry, "4-0");
        assert_eq!(ledger.balances[0], 1000, "one refund only");
    }

    #[test]
    fn recorded_balances_must_follow_each_stream() {
        let mut ledger = sharded();
        replay(&mut ledger, &[(A, "1-0", debit(1, 300, 650)), (B, "1-0", credit(1, 300, 1))]);
        assert_eq!(ledger.anomaly_count(AnomalyKind::OrderMismatch), 2);
        let overdraft = debit(2, 800, -100);
        replay(&mut ledger, &[(A, "2-0", overdraft)]);
        assert_eq!(ledger.anomaly_count(AnomalyKind::Overdraft), 1);
    }

    #[test]
    fn a_restored_sharded_state_continues_where_it_stopped() {
        let entries = [
            (B, "1-0", credit(1, 300, 300)),
            (A, "1-0", debit(1, 300, 700)),
            (A, "2-0", debit(2, 100, 600)),
            (A, "3-0", settle(1, 300)),
            (B, "2-0", reject(2, 100)),
            (A, "4-0", void(2, 100, 700)),
        ];
        let mut straight = sharded();
        replay(&mut straight, &entries);
        let mut first = sharded();
        replay(&mut first, &entries[..3]);
        let json = serde_json::to_string(&first.state()).unwrap();
        let mut resumed = sharded();
        resumed.restore(serde_json::from_str(&json).unwrap()).unwrap();
        assert_eq!(resumed.in_flight, first.in_flight);
        replay(&mut resumed, &entries[3..]);
        assert_eq!(resumed.state(), straight.state());
        assert!(straight.final_anomalies().is_empty(), "{:?}", straight.final_anomalies());
        let err = Ledger::new(&file()).restore(first.state()).unwrap_err();
        assert!(err.contains("the sharded layout, the data set has the single layout"), "{err}");
        let mut broken = first.state();
        broken.in_flight[0].1.terms.to_bank = 9;
        assert!(sharded().restore(broken).unwrap_err().contains("beyond the file's 2 banks"));
    }
}
