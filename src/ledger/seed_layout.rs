//! Auditing a data set left by the Go seed demo that this project replaces, in that demo's own
//! key layout, so that a run of the old broker can be held to the same standard as ours: no cent
//! lost or created, and every difference explained.
//!
//! Why it is needed: the demo's transfer between banks is seven separate Redis commands, of which
//! only the debit is protected (WATCH/GET/MULTI/INCRBY/EXEC): (1) debit `accounts:<from>` −a,
//! (2) `banks:<From>` −a, (3) `banks:<To>` +a, (4) `balances:<From>:<To>` +a,
//! (5) `balances:<To>:<From>` −a, (6) credit `accounts:<to>` +a, then (7) the event on
//! `transactions` (a field `json`). Within one bank only (1) and (6) exist. The signs of (4) and
//! (5) are those of its code; its README shows them the other way round. A broker killed between
//! two commands leaves some increments without an event, an error event leaves the steps before
//! the failure, and a repeated event makes the replay count a transfer twice. Comparing keys
//! only says *that* something differs; this module also says *which transfer* most likely did it.
//!
//! The pieces: [`parse_entry`] turns a stream entry into a [`SeedEvent`] or a typed
//! [`EntryProblem`] (never a panic); [`SeedReplay`] folds the entries one at a time (no event is
//! held, see the bounds below) over the accounts file; [`SeedReplay::audit`] compares the result
//! with what Redis holds ([`SeedState`], read by the caller) and returns a [`SeedAudit`].
//! Keys are named by [`KeyRef`] (indices into the accounts file), never by Redis key strings:
//! the key schema lives with the store.
//!
//! ## Inferring half-applied transfers
//!
//! The residual r = Redis − replay is taken per key (a missing bank or pair key is 0; an account
//! key that is not an integer is listed as a difference and left out). A step with delta d is
//! *present* when r has d's sign and |r| ≥ |d|; it is then subtracted. Greedily, in this order:
//! 1. each event with status created, running or error, in stream order: its steps present and
//!    missing (an error event is always reported, the others when a step is present);
//! 2. each completed event that repeats an earlier one: the steps that are *absent* (r of the
//!    opposite sign, at least the size) are added back and the event is reported as in the stream
//!    without all its increments in Redis. Only repeats are examined: a completed event is written
//!    after its increments, so being in the stream without them means it was written twice, and
//!    holding every completed event would make memory grow with the stream;
//! 3. each negative account residual −a (in account order) is taken as a debit without an event:
//!    its bank's −a, then the destination bank T whose `banks:T` +a, `From:T` +a and `T:From` −a
//!    fit best, then a credit +a on an account of T (or, with no bank step at all, of the same
//!    bank) are matched and subtracted.
//!
//! What is left is listed as unexplained.
//!
//! ## Bounds
//!
//! Memory is O(accounts + banks²) for the replay, plus, for duplicates, one `u64` hash of each
//! event's content with the id of its first occurrence: 32 bytes a slot, at most
//! [`MAX_TRACKED_EVENTS`] events (about 560 MB at worst; later events are counted in
//! `duplicates_unchecked`, not checked). Events kept for the inference are at most
//! [`MAX_RETAINED`] unfinished ones and [`MAX_RETAINED`] repeats. Lists are cut at
//! [`MAX_LISTED`] items, every item counted. The hash is 64 bits: among ten million events the
//! chance of a false "repeats" is about 3 in a million; both ids are given so it can be checked.
//! Two genuine transfers can also have the same content (same accounts, amount and source
//! balance), so a duplicate is strong evidence, not proof: step 2 shows whether Redis applied it.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

use crate::ledger::accounts::AccountsFile;
use crate::ledger::verify::Value;

/// How many items each list of the audit keeps; the rest are counted.
pub const MAX_LISTED: usize = 20;
/// The most fields a seed entry may have (it has one: `json`).
pub const MAX_ENTRY_FIELDS: usize = 16;
/// The longest `json` value read; a seed event is a few hundred bytes.
pub const MAX_JSON_BYTES: usize = 64 * 1024;
/// The longest `err` text kept with an event retained for the inference.
pub const MAX_ERR_BYTES: usize = 256;
/// The most distinct events whose content hash is kept to find duplicates.
pub const MAX_TRACKED_EVENTS: usize = 14_000_000;
/// The most unfinished events (status 0, 1, 4), and separately repeats, kept for the inference.
pub const MAX_RETAINED: usize = 10_000;
/// Past this many differing keys the inference is skipped (something broader is wrong: another
/// accounts file, another database).
pub const MAX_RESIDUAL_KEYS: usize = 100_000;
/// The most negative account residuals grouped into transfers without an event.
pub const MAX_GROUPED: usize = 1_000;
/// The largest magnitude a replayed value may reach; an event going past it is refused, so the
/// audit's sums (at most 2^26 accounts, 2^20 pairs) stay far inside `i128`.
const REPLAY_LIMIT: u128 = 1 << 96;

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// The seed's `status`, 0 to 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SeedStatus {
    Created,
    Running,
    Completed,
    Cancelled,
    Error,
}

const STATUSES: [SeedStatus; 5] = [
    SeedStatus::Created,
    SeedStatus::Running,
    SeedStatus::Completed,
    SeedStatus::Cancelled,
    SeedStatus::Error,
];

impl SeedStatus {
    /// The status the seed writes as `code`; `None` outside 0..=4.
    pub fn from_code(code: i64) -> Option<SeedStatus> {
        usize::try_from(code).ok().and_then(|i| STATUSES.get(i).copied())
    }

    pub fn code(self) -> u8 {
        match self {
            SeedStatus::Created => 0,
            SeedStatus::Running => 1,
            SeedStatus::Completed => 2,
            SeedStatus::Cancelled => 3,
            SeedStatus::Error => 4,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SeedStatus::Created => "created",
            SeedStatus::Running => "running",
            SeedStatus::Completed => "completed",
            SeedStatus::Cancelled => "cancelled",
            SeedStatus::Error => "error",
        }
    }
}

/// One side of a seed event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct SeedParty {
    pub iban: String,
    pub bank: String,
    pub person: String,
    /// `ammount`: for the source, its balance read before the debit; for the destination, its
    /// balance as loaded from the CSV.
    pub balance_cents: i64,
}

/// One entry of the seed's stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct SeedEvent {
    pub from: SeedParty,
    pub to: SeedParty,
    /// At least 1.
    pub amount_cents: i64,
    pub status: SeedStatus,
    /// Empty unless the status is error.
    pub err: String,
}

/// Why a stream entry is not a seed event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryProblem {
    /// An entry of this tool's own layout (`id`, `status`... and no `json`): the data set is not
    /// the seed's, so it must be verified with the ordinary `consume`.
    OurLayout,
    /// No `json` field.
    NoJson,
    /// The `json` field is not JSON of the expected shape: serde_json's message.
    BadJson(String),
    /// A field has a value no seed event has.
    BadField { field: &'static str, why: String },
}

impl fmt::Display for EntryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryProblem::OurLayout => f.write_str(
                "an event of this tool's own layout (fields id, status...), not of the seed demo",
            ),
            EntryProblem::NoJson => f.write_str("no field `json`: not an event of the seed demo"),
            EntryProblem::BadJson(why) => write!(f, "field `json` is not a seed event: {why}"),
            EntryProblem::BadField { field, why } => write!(f, "{field} {why}"),
        }
    }
}

impl std::error::Error for EntryProblem {}

fn bad(field: &'static str, why: impl Into<String>) -> EntryProblem {
    EntryProblem::BadField { field, why: why.into() }
}

#[derive(Deserialize)]
struct RawParty {
    iban: Option<String>,
    bank: Option<String>,
    person: Option<String>,
    ammount: Option<i64>,
}

#[derive(Deserialize)]
struct RawEvent {
    err: Option<String>,
    from: Option<RawParty>,
    to: Option<RawParty>,
    ammount: Option<i64>,
    status: Option<i64>,
}

/// The field names of one side, as problems name them.
struct Side {
    whole: &'static str,
    iban: &'static str,
    bank: &'static str,
    balance: &'static str,
}

const FROM: Side =
    Side { whole: "from", iban: "from.iban", bank: "from.bank", balance: "from.ammount" };
const TO: Side = Side { whole: "to", iban: "to.iban", bank: "to.bank", balance: "to.ammount" };

/// Builds a seed event from a stream entry's fields: the entry must have one field `json`
/// (others are ignored). Never panics; the error says what is wrong.
pub fn parse_entry<'a>(
    fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
) -> Result<SeedEvent, EntryProblem> {
    let mut json: Option<&[u8]> = None;
    let (mut has_id, mut has_status) = (false, false);
    for (count, (name, value)) in fields.into_iter().enumerate() {
        if count == MAX_ENTRY_FIELDS {
            return Err(bad("the entry", format!("has more than {MAX_ENTRY_FIELDS} fields")));
        }
        match name {
            b"json" if json.replace(value).is_some() => {
                return Err(bad("json", "appears twice"));
            }
            b"id" => has_id = true,
            b"status" => has_status = true,
            _ => {}
        }
    }
    let Some(json) = json else {
        return Err(if has_id && has_status {
            EntryProblem::OurLayout
        } else {
            EntryProblem::NoJson
        });
    };
    if json.len() > MAX_JSON_BYTES {
        return Err(bad("json", format!("is longer than {MAX_JSON_BYTES} bytes")));
    }
    let raw: RawEvent =
        serde_json::from_slice(json).map_err(|e| EntryProblem::BadJson(e.to_string()))?;
    checked_event(raw)
}

fn checked_event(raw: RawEvent) -> Result<SeedEvent, EntryProblem> {
    let code = raw.status.ok_or_else(|| bad("status", "is missing"))?;
    let status = SeedStatus::from_code(code)
        .ok_or_else(|| bad("status", format!("is {code}; the seed's statuses are 0 to 4")))?;
    let amount_cents = raw.ammount.ok_or_else(|| bad("ammount", "is missing"))?;
    if amount_cents < 1 {
        return Err(bad("ammount", format!("is {amount_cents}; a transfer moves at least 1 cent")));
    }
    Ok(SeedEvent {
        from: checked_party(raw.from, &FROM)?,
        to: checked_party(raw.to, &TO)?,
        amount_cents,
        status,
        err: raw.err.unwrap_or_default(),
    })
}

fn checked_party(raw: Option<RawParty>, side: &Side) -> Result<SeedParty, EntryProblem> {
    let raw = raw.ok_or_else(|| bad(side.whole, "is missing"))?;
    let text = |value: Option<String>, field: &'static str| match value {
        Some(text) if !text.is_empty() => Ok(text),
        Some(_) => Err(bad(field, "is empty")),
        None => Err(bad(field, "is missing")),
    };
    Ok(SeedParty {
        iban: text(raw.iban, side.iban)?,
        bank: text(raw.bank, side.bank)?,
        person: raw.person.unwrap_or_default(),
        balance_cents: raw.ammount.ok_or_else(|| bad(side.balance, "is missing"))?,
    })
}

// ---------------------------------------------------------------------------------------------
// Keys, steps and the lists of the audit
// ---------------------------------------------------------------------------------------------

/// A key of the seed's layout, by index; the caller turns it into a Redis key or a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyRef {
    /// `accounts:<IBAN>` of the account at this index of the accounts file.
    Account(usize),
    /// `banks:<Bank>` of the bank at this index of [`AccountsFile::banks`].
    Bank(usize),
    /// `balances:<A>:<B>`.
    Pair(usize, usize),
}

/// The increments of a seed transfer, in the order the demo sends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// (1) the source account −a.
    Debit,
    /// (2) the source bank −a.
    BankFrom,
    /// (3) the destination bank +a.
    BankTo,
    /// (4) `From:To` +a.
    PairFromTo,
    /// (5) `To:From` −a.
    PairToFrom,
    /// (6) the destination account +a.
    Credit,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Debit => "debit",
            Step::BankFrom => "bank from",
            Step::BankTo => "bank to",
            Step::PairFromTo => "pair from→to",
            Step::PairToFrom => "pair to→from",
            Step::Credit => "credit",
        }
    }
}

/// One step of one transfer: its key and the increment it makes there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StepAt {
    pub step: Step,
    pub key: KeyRef,
    pub delta_cents: i128,
}

/// The steps of a transfer of `amount` from account `from` (bank `from_bank`) to account `to`
/// (bank `to_bank`), in the demo's order; within one bank only the debit and the credit.
fn footprint(
    (from, from_bank): (usize, usize),
    (to, to_bank): (usize, usize),
    amount: i128,
) -> impl Iterator<Item = StepAt> + Clone {
    let between = from_bank != to_bank;
    let minus = amount.checked_neg().unwrap_or(i128::MIN);
    let at = |step, key, delta_cents| StepAt { step, key, delta_cents };
    [
        at(Step::Debit, KeyRef::Account(from), minus),
        at(Step::BankFrom, KeyRef::Bank(from_bank), minus),
        at(Step::BankTo, KeyRef::Bank(to_bank), amount),
        at(Step::PairFromTo, KeyRef::Pair(from_bank, to_bank), amount),
        at(Step::PairToFrom, KeyRef::Pair(to_bank, from_bank), minus),
        at(Step::Credit, KeyRef::Account(to), amount),
    ]
    .into_iter()
    .filter(move |s| between || matches!(s.step, Step::Debit | Step::Credit))
}

/// The first [`MAX_LISTED`] items of a kind, and how many there were in all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed<T> {
    pub items: Vec<T>,
    pub total: u64,
}

impl<T> Default for Listed<T> {
    fn default() -> Self {
        Listed { items: Vec::new(), total: 0 }
    }
}

impl<T> Listed<T> {
    fn push(&mut self, item: impl FnOnce() -> T) {
        if self.items.len() < MAX_LISTED {
            self.items.push(item());
        }
        self.total = self.total.saturating_add(1);
    }

    /// How many were counted but not listed.
    pub fn more(&self) -> u64 {
        self.total.saturating_sub(u64::try_from(self.items.len()).unwrap_or(u64::MAX))
    }
}

/// Events per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    pub created: u64,
    pub running: u64,
    pub completed: u64,
    pub cancelled: u64,
    pub error: u64,
}

impl StatusCounts {
    fn add(&mut self, status: SeedStatus) {
        let count = match status {
            SeedStatus::Created => &mut self.created,
            SeedStatus::Running => &mut self.running,
            SeedStatus::Completed => &mut self.completed,
            SeedStatus::Cancelled => &mut self.cancelled,
            SeedStatus::Error => &mut self.error,
        };
        *count = count.saturating_add(1);
    }

    pub fn total(&self) -> u64 {
        [self.created, self.running, self.completed, self.cancelled, self.error]
            .into_iter()
            .fold(0u64, u64::saturating_add)
    }
}

/// An entry that is not a usable seed event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Malformed {
    pub id: String,
    pub problem: EntryProblem,
}

/// "entry `id` repeats entry `first`": the same JSON content twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Duplicate {
    pub id: String,
    /// The first entry with that content: its stream id, or `#n` (its position from 1) when the
    /// id was not a stream id.
    pub first: String,
    pub status: SeedStatus,
}

/// An event as the inference reports it; accounts and banks are indices into the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRef {
    pub id: String,
    pub from: usize,
    pub to: usize,
    pub from_bank: usize,
    pub to_bank: usize,
    pub amount_cents: i64,
    pub status: SeedStatus,
    /// The event's `err`, cut at [`MAX_ERR_BYTES`].
    pub err: String,
}

impl EventRef {
    fn steps(&self) -> impl Iterator<Item = StepAt> + Clone {
        footprint(
            (self.from, self.from_bank),
            (self.to, self.to_bank),
            i128::from(self.amount_cents),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The replay
// ---------------------------------------------------------------------------------------------

/// Where an entry first appeared, stored compactly.
#[derive(Debug, Clone, Copy)]
enum FirstSeen {
    Stream { ms: u64, seq: u64 },
    Nth(u64),
}

impl FirstSeen {
    fn of(id: &str, ordinal: u64) -> FirstSeen {
        let parsed =
            id.split_once('-').and_then(|(ms, seq)| Some((ms.parse().ok()?, seq.parse().ok()?)));
        match parsed {
            Some((ms, seq)) if format!("{ms}-{seq}") == id => FirstSeen::Stream { ms, seq },
            _ => FirstSeen::Nth(ordinal),
        }
    }

    fn describe(self) -> String {
        match self {
            FirstSeen::Stream { ms, seq } => format!("{ms}-{seq}"),
            FirstSeen::Nth(ordinal) => format!("#{}", ordinal.saturating_add(1)),
        }
    }
}

/// A resolved event: account and bank indices and the amount.
#[derive(Debug, Clone, Copy)]
struct Placed {
    from: (usize, usize),
    to: (usize, usize),
    amount: i128,
}

/// A completed event that repeats an earlier one, kept for step 2 of the inference.
#[derive(Debug, Clone)]
struct Repeat {
    event: EventRef,
    first: String,
}

/// The seed's stream folded over the accounts file, one entry at a time.
#[derive(Debug, Clone)]
pub struct SeedReplay {
    bank_names: Vec<String>,
    account_index: HashMap<Box<str>, usize>,
    account_bank: Vec<usize>,
    loaded: Vec<i64>,
    accounts: Vec<i128>,
    bank_flows: Vec<i128>,
    /// `pairs[a * banks + b]`.
    pairs: Vec<i128>,
    entries: u64,
    statuses: StatusCounts,
    our_layout: u64,
    malformed: Listed<Malformed>,
    seen: HashMap<u64, FirstSeen>,
    duplicates: Listed<Duplicate>,
    duplicates_unchecked: u64,
    unfinished: Vec<EventRef>,
    unfinished_not_kept: u64,
    repeats: Vec<Repeat>,
    repeats_not_kept: u64,
}

impl SeedReplay {
    /// The state before any transfer: the file's balances, bank and pair keys at 0.
    pub fn new(file: &AccountsFile) -> SeedReplay {
        let n = file.banks.len();
        let mut account_index = HashMap::with_capacity(file.accounts.len());
        for (i, account) in file.accounts.iter().enumerate() {
            account_index.entry(account.iban.clone().into_boxed_str()).or_insert(i);
        }
        SeedReplay {
            bank_names: file.banks.clone(),
            account_index,
            account_bank: file.accounts.iter().map(|a| a.bank).collect(),
            loaded: file.accounts.iter().map(|a| a.balance_cents).collect(),
            accounts: file.accounts.iter().map(|a| i128::from(a.balance_cents)).collect(),
            bank_flows: vec![0; n],
            pairs: vec![0; n.saturating_mul(n)],
            entries: 0,
            statuses: StatusCounts::default(),
            our_layout: 0,
            malformed: Listed::default(),
            seen: HashMap::new(),
            duplicates: Listed::default(),
            duplicates_unchecked: 0,
            unfinished: Vec::new(),
            unfinished_not_kept: 0,
            repeats: Vec::new(),
            repeats_not_kept: 0,
        }
    }

    /// Takes the next stream entry, as [`parse_entry`] read it. Every entry counts once: in its
    /// status, as malformed (which includes an unknown account or a bank that is not the
    /// account's), or as one of our own layout.
    pub fn apply(&mut self, id: &str, entry: Result<SeedEvent, EntryProblem>) {
        let ordinal = self.entries;
        self.entries = self.entries.saturating_add(1);
        match entry.and_then(|event| self.take(id, ordinal, &event)) {
            Ok(()) => {}
            Err(EntryProblem::OurLayout) => self.our_layout = self.our_layout.saturating_add(1),
            Err(problem) => self.malformed.push(|| Malformed { id: id.to_string(), problem }),
        }
    }

    fn take(&mut self, id: &str, ordinal: u64, event: &SeedEvent) -> Result<(), EntryProblem> {
        let placed = Placed {
            from: self.locate(&event.from, &FROM)?,
            to: self.locate(&event.to, &TO)?,
            amount: i128::from(event.amount_cents),
        };
        if event.status == SeedStatus::Completed {
            self.replay(placed)?;
        }
        self.statuses.add(event.status);
        let first = self.check_duplicate(id, ordinal, event);
        let retained = || EventRef {
            id: id.to_string(),
            from: placed.from.0,
            to: placed.to.0,
            from_bank: placed.from.1,
            to_bank: placed.to.1,
            amount_cents: event.amount_cents,
            status: event.status,
            err: clip(&event.err, MAX_ERR_BYTES),
        };
        match (event.status, first) {
            (SeedStatus::Completed, Some(first)) if self.repeats.len() < MAX_RETAINED => {
                self.repeats.push(Repeat { event: retained(), first });
            }
            (SeedStatus::Completed, Some(_)) => {
                self.repeats_not_kept = self.repeats_not_kept.saturating_add(1);
            }
            (SeedStatus::Completed | SeedStatus::Cancelled, _) => {}
            _ if self.unfinished.len() < MAX_RETAINED => self.unfinished.push(retained()),
            _ => self.unfinished_not_kept = self.unfinished_not_kept.saturating_add(1),
        }
        Ok(())
    }

    /// The account an event's side names, and its bank, which must be the one the file gives.
    fn locate(&self, party: &SeedParty, side: &Side) -> Result<(usize, usize), EntryProblem> {
        let account = *self.account_index.get(party.iban.as_str()).ok_or_else(|| {
            bad(side.iban, format!("{:?} is not in the accounts file", party.iban))
        })?;
        let bank = self.account_bank.get(account).copied().unwrap_or(usize::MAX);
        match self.bank_names.get(bank) {
            Some(name) if *name == party.bank => Ok((account, bank)),
            Some(name) => Err(bad(
                side.bank,
                format!(
                    "is {:?}, but the accounts file puts {} in {name:?}",
                    party.bank, party.iban
                ),
            )),
            None => Err(bad(side.bank, "names an account the file gives no listed bank")),
        }
    }

    /// Applies a completed transfer's six (or two) steps, all or none.
    fn replay(&mut self, placed: Placed) -> Result<(), EntryProblem> {
        let steps = footprint(placed.from, placed.to, placed.amount);
        for (done, step) in steps.clone().enumerate() {
            if !self.add(step.key, step.delta_cents) {
                for undo in steps.take(done) {
                    self.add(undo.key, undo.delta_cents.checked_neg().unwrap_or(0));
                }
                return Err(bad("ammount", "takes a replayed value past 2^96 cents"));
            }
        }
        Ok(())
    }

    fn slot(&mut self, key: KeyRef) -> Option<&mut i128> {
        match key {
            KeyRef::Account(i) => self.accounts.get_mut(i),
            KeyRef::Bank(i) => self.bank_flows.get_mut(i),
            KeyRef::Pair(a, b) => {
                pair_index(self.bank_names.len(), a, b).and_then(|i| self.pairs.get_mut(i))
            }
        }
    }

    /// Adds `delta` at `key`; false (and nothing changed) past [`REPLAY_LIMIT`] or for no key.
    fn add(&mut self, key: KeyRef, delta: i128) -> bool {
        let Some(slot) = self.slot(key) else { return false };
        match slot.checked_add(delta) {
            Some(value) if value.unsigned_abs() <= REPLAY_LIMIT => {
                *slot = value;
                true
            }
            _ => false,
        }
    }

    /// Remembers the event's content; the first entry it repeats, if any.
    fn check_duplicate(&mut self, id: &str, ordinal: u64, event: &SeedEvent) -> Option<String> {
        let mut hasher = DefaultHasher::new();
        event.hash(&mut hasher);
        let hash = hasher.finish();
        if let Some(first) = self.seen.get(&hash) {
            let first = first.describe();
            self.duplicates.push(|| Duplicate {
                id: id.to_string(),
                first: first.clone(),
                status: event.status,
            });
            return Some(first);
        }
        if self.seen.len() < MAX_TRACKED_EVENTS {
            self.seen.insert(hash, FirstSeen::of(id, ordinal));
        } else {
            self.duplicates_unchecked = self.duplicates_unchecked.saturating_add(1);
        }
        None
    }

    fn expected(&self, key: KeyRef) -> i128 {
        let value = match key {
            KeyRef::Account(i) => self.accounts.get(i),
            KeyRef::Bank(i) => self.bank_flows.get(i),
            KeyRef::Pair(a, b) => {
                pair_index(self.bank_names.len(), a, b).and_then(|i| self.pairs.get(i))
            }
        };
        value.copied().unwrap_or(0)
    }
}

fn pair_index(n: usize, a: usize, b: usize) -> Option<usize> {
    if a >= n || b >= n {
        return None;
    }
    a.checked_mul(n)?.checked_add(b)
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn clip(text: &str, max: usize) -> String {
    text[..text.floor_char_boundary(max)].to_string()
}

// ---------------------------------------------------------------------------------------------
// The audit
// ---------------------------------------------------------------------------------------------

/// What Redis holds in the seed's layout, read by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedState {
    /// `accounts:<IBAN>`, in the file's account order.
    pub accounts: Vec<Value>,
    /// `banks:<Bank>`, in [`AccountsFile::banks`] order; missing counts as 0.
    pub banks: Vec<Value>,
    /// `balances:<A>:<B>` at `a * banks + b`; missing counts as 0; the diagonal is ignored.
    pub pairs: Vec<Value>,
}

/// A key whose value in Redis is not the replay's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyDiff {
    pub key: KeyRef,
    pub redis: Value,
    pub expected_cents: i128,
    /// Redis − replay; `None` when Redis's value is not an integer (a missing account key).
    pub difference_cents: Option<i128>,
}

/// Money held in accounts: in Redis, as loaded, and as the replay has it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MoneyLine {
    /// The sum of the accounts Redis holds as integers (the others count as 0).
    pub redis_cents: i128,
    pub loaded_cents: i128,
    pub replay_cents: i128,
    /// Redis − loaded: positive is money created, negative money missing.
    pub surplus_vs_loaded_cents: i128,
    /// Redis − replay: positive is money created, negative money missing.
    pub surplus_vs_replay_cents: i128,
    /// Accounts whose key is missing or not an integer.
    pub uncounted_accounts: u64,
}

impl MoneyLine {
    fn add(&mut self, redis: Option<i128>, loaded: i128, replay: i128) {
        match redis {
            Some(value) => self.redis_cents = self.redis_cents.saturating_add(value),
            None => self.uncounted_accounts = self.uncounted_accounts.saturating_add(1),
        }
        self.loaded_cents = self.loaded_cents.saturating_add(loaded);
        self.replay_cents = self.replay_cents.saturating_add(replay);
        self.surplus_vs_loaded_cents = self.redis_cents.saturating_sub(self.loaded_cents);
        self.surplus_vs_replay_cents = self.redis_cents.saturating_sub(self.replay_cents);
    }

    /// The money missing (0 if none): −surplus vs loaded when negative.
    pub fn missing_cents(&self) -> i128 {
        self.surplus_vs_loaded_cents.min(0).saturating_neg()
    }

    /// The money created (0 if none): the surplus vs loaded when positive.
    pub fn created_cents(&self) -> i128 {
        self.surplus_vs_loaded_cents.max(0)
    }
}

/// The money of one bank's accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BankMoney {
    pub bank: usize,
    pub money: MoneyLine,
}

/// The net flow between banks `a` and `b` (a < b) as Redis's pair keys and the replay have it,
/// listed when either key differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PairMoney {
    pub a: usize,
    pub b: usize,
    /// `None`: not an integer.
    pub redis_ab_cents: Option<i128>,
    pub redis_ba_cents: Option<i128>,
    pub replay_ab_cents: i128,
    pub replay_ba_cents: i128,
}

/// Money in accounts, in all, per bank and per pair of banks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Money {
    pub total: MoneyLine,
    /// Every bank, in the file's order.
    pub banks: Vec<BankMoney>,
    pub pairs: Listed<PairMoney>,
}

/// A pair whose two keys do not cancel out in Redis: `A:B + B:A != 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UnbalancedPair {
    pub a: usize,
    pub b: usize,
    pub ab_cents: i128,
    pub ba_cents: i128,
    pub sum_cents: i128,
}

/// Redis's own sums, whatever the replay says: each should be 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RedisSums {
    /// The sum of the bank keys that are integers (missing = 0).
    pub banks_cents: i128,
    pub banks_not_integer: u64,
    /// The sum of the pair keys off the diagonal that are integers (missing = 0).
    pub pairs_cents: i128,
    pub pairs_not_integer: u64,
    pub unbalanced_pairs: Listed<UnbalancedPair>,
}

/// An event whose steps were looked for in the residual.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartialEvent {
    pub event: EventRef,
    /// Step 2: the entry this completed event repeats.
    pub repeats: Option<String>,
    pub present: Vec<StepAt>,
    pub missing: Vec<StepAt>,
}

/// Increments without an event: a transfer inferred from a debit the stream does not explain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrphanTransfer {
    pub from_account: usize,
    pub from_bank: usize,
    /// The destination bank; `None` when no step after the source bank's shows it.
    pub to_bank: Option<usize>,
    /// The account credited, when its credit is present.
    pub to_account: Option<usize>,
    pub amount_cents: i128,
    pub present: Vec<StepAt>,
    /// The steps missing for the shape inferred (with the destination bank unknown and the
    /// source bank's step absent: only the credit).
    pub missing: Vec<Step>,
}

/// What is left of the residual at a key once the inference is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Residue {
    pub key: KeyRef,
    pub residual_cents: i128,
}

/// Half-applied transfers, as inferred from the residual (module doc: the procedure).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Inference {
    /// Step 1: events with status created, running or error, and what they left in Redis.
    pub unfinished: Listed<PartialEvent>,
    /// Step 2: completed events in the stream without all their increments in Redis.
    pub completed_missing: Listed<PartialEvent>,
    /// Step 3: increments without an event.
    pub without_event: Listed<OrphanTransfer>,
    pub unexplained: Listed<Residue>,
    /// Where a bound kept the inference from seeing everything.
    pub limits: Vec<String>,
}

/// Everything the audit found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeedAudit {
    /// Entries applied, of every kind.
    pub entries: u64,
    pub statuses: StatusCounts,
    /// Entries of this tool's own layout: the caller should refuse the data set.
    pub our_layout: u64,
    pub malformed: Listed<Malformed>,
    pub duplicates: Listed<Duplicate>,
    /// Events past [`MAX_TRACKED_EVENTS`], not checked for duplicates.
    pub duplicates_unchecked: u64,
    pub diffs: Listed<KeyDiff>,
    pub money: Money,
    pub sums: RedisSums,
    pub inference: Inference,
    /// A state whose vectors do not have the file's sizes.
    pub state_problems: Vec<String>,
}

impl SeedAudit {
    /// No difference, no malformed entry or entry of our layout, and Redis's own sums all zero.
    /// Repeated events are listed but do not decide it: two genuine transfers can write the same
    /// JSON (a round trip of one amount), and a repeat Redis did not apply shows as differences.
    pub fn clean(&self) -> bool {
        self.diffs.total == 0
            && self.malformed.total == 0
            && self.our_layout == 0
            && self.sums.banks_cents == 0
            && self.sums.banks_not_integer == 0
            && self.sums.pairs_cents == 0
            && self.sums.pairs_not_integer == 0
            && self.sums.unbalanced_pairs.total == 0
            && self.state_problems.is_empty()
    }
}

static MISSING: Value = Value::Missing;

/// The value at `i`, missing past the end.
fn at(values: &[Value], i: usize) -> &Value {
    values.get(i).unwrap_or(&MISSING)
}

/// The value as an integer, a missing key as 0 when `missing_is_zero`.
fn int_of(value: &Value, missing_is_zero: bool) -> Option<i128> {
    match value {
        Value::Int(v) => Some(i128::from(*v)),
        Value::Missing if missing_is_zero => Some(0),
        _ => None,
    }
}

/// Redis − replay per key, without the zeros.
#[derive(Debug, Default)]
struct Residual {
    map: BTreeMap<KeyRef, i128>,
    overflowed: bool,
}

/// Whether `r` has the sign of `delta` and at least its size.
fn covers(r: i128, delta: i128) -> bool {
    (delta > 0 && r >= delta) || (delta < 0 && r <= delta)
}

impl Residual {
    fn record(&mut self, key: KeyRef, r: i128) {
        if r == 0 {
            return;
        }
        if self.map.len() < MAX_RESIDUAL_KEYS {
            self.map.insert(key, r);
        } else {
            self.overflowed = true;
        }
    }

    fn get(&self, key: KeyRef) -> i128 {
        self.map.get(&key).copied().unwrap_or(0)
    }

    fn set(&mut self, key: KeyRef, r: i128) {
        if r == 0 {
            self.map.remove(&key);
        } else {
            self.map.insert(key, r);
        }
    }

    /// The step is present: subtract it.
    fn take_present(&mut self, step: StepAt) -> bool {
        let r = self.get(step.key);
        match r.checked_sub(step.delta_cents) {
            Some(left) if covers(r, step.delta_cents) => {
                self.set(step.key, left);
                true
            }
            _ => false,
        }
    }

    /// The step is absent (the residual is its opposite): add it back.
    fn take_absent(&mut self, step: StepAt) -> bool {
        let r = self.get(step.key);
        let opposite = step.delta_cents.checked_neg().unwrap_or(0);
        match r.checked_add(step.delta_cents) {
            Some(left) if covers(r, opposite) => {
                self.set(step.key, left);
                true
            }
            _ => false,
        }
    }
}

impl SeedReplay {
    /// Compares the replay with what Redis holds and explains the differences.
    pub fn audit(self, state: &SeedState) -> SeedAudit {
        let mut diffs = Listed::default();
        let mut residual = Residual::default();
        self.compare(state, &mut diffs, &mut residual);
        let money = self.money(state);
        let sums = self.redis_sums(state);
        let state_problems = self.shape_problems(state);
        let inference = self.infer(residual);
        SeedAudit {
            entries: self.entries,
            statuses: self.statuses,
            our_layout: self.our_layout,
            state_problems,
            malformed: self.malformed,
            duplicates: self.duplicates,
            duplicates_unchecked: self.duplicates_unchecked,
            diffs,
            money,
            sums,
            inference,
        }
    }

    fn shape_problems(&self, state: &SeedState) -> Vec<String> {
        let n = self.bank_names.len();
        let wanted = [
            ("accounts", state.accounts.len(), self.accounts.len()),
            ("banks", state.banks.len(), n),
            ("pairs", state.pairs.len(), n.saturating_mul(n)),
        ];
        wanted
            .into_iter()
            .filter(|(_, got, want)| got != want)
            .map(|(what, got, want)| {
                format!("{got} {what} values were read, not {want}: absent ones count as missing")
            })
            .collect()
    }

    /// Every key, in order: accounts, banks, pairs off the diagonal.
    fn keys(&self) -> impl Iterator<Item = (KeyRef, usize)> + '_ {
        let n = self.bank_names.len();
        let accounts = (0..self.accounts.len()).map(|i| (KeyRef::Account(i), i));
        let banks = (0..n).map(|i| (KeyRef::Bank(i), i));
        let pairs = (0..n)
            .flat_map(move |a| (0..n).map(move |b| (a, b)))
            .filter(|(a, b)| a != b)
            .filter_map(move |(a, b)| Some((KeyRef::Pair(a, b), pair_index(n, a, b)?)));
        accounts.chain(banks).chain(pairs)
    }

    fn compare(&self, state: &SeedState, diffs: &mut Listed<KeyDiff>, residual: &mut Residual) {
        for (key, index) in self.keys() {
            let (values, missing_is_zero) = match key {
                KeyRef::Account(_) => (&state.accounts, false),
                KeyRef::Bank(_) => (&state.banks, true),
                KeyRef::Pair(..) => (&state.pairs, true),
            };
            let value = at(values, index);
            let expected_cents = self.expected(key);
            let difference_cents =
                int_of(value, missing_is_zero).map(|v| v.saturating_sub(expected_cents));
            if difference_cents == Some(0) {
                continue;
            }
            residual.record(key, difference_cents.unwrap_or(0));
            diffs.push(|| KeyDiff { key, redis: value.clone(), expected_cents, difference_cents });
        }
    }

    fn money(&self, state: &SeedState) -> Money {
        let mut total = MoneyLine::default();
        let mut banks = vec![MoneyLine::default(); self.bank_names.len()];
        for (i, (&loaded, &replay)) in self.loaded.iter().zip(&self.accounts).enumerate() {
            let redis = int_of(at(&state.accounts, i), false);
            total.add(redis, i128::from(loaded), replay);
            if let Some(line) = self.account_bank.get(i).and_then(|&b| banks.get_mut(b)) {
                line.add(redis, i128::from(loaded), replay);
            }
        }
        let banks = banks.into_iter().enumerate().map(|(bank, money)| BankMoney { bank, money });
        Money { total, banks: banks.collect(), pairs: self.pair_money(state) }
    }

    fn pair_money(&self, state: &SeedState) -> Listed<PairMoney> {
        let n = self.bank_names.len();
        let mut listed = Listed::default();
        for (a, b) in (0..n).flat_map(|a| (a + 1..n).map(move |b| (a, b))) {
            let read = |x, y| pair_index(n, x, y).and_then(|i| int_of(at(&state.pairs, i), true));
            let pair = PairMoney {
                a,
                b,
                redis_ab_cents: read(a, b),
                redis_ba_cents: read(b, a),
                replay_ab_cents: self.expected(KeyRef::Pair(a, b)),
                replay_ba_cents: self.expected(KeyRef::Pair(b, a)),
            };
            if pair.redis_ab_cents != Some(pair.replay_ab_cents)
                || pair.redis_ba_cents != Some(pair.replay_ba_cents)
            {
                listed.push(|| pair);
            }
        }
        listed
    }

    fn redis_sums(&self, state: &SeedState) -> RedisSums {
        let n = self.bank_names.len();
        let mut sums = RedisSums {
            banks_cents: 0,
            banks_not_integer: 0,
            pairs_cents: 0,
            pairs_not_integer: 0,
            unbalanced_pairs: Listed::default(),
        };
        for i in 0..n {
            match int_of(at(&state.banks, i), true) {
                Some(v) => sums.banks_cents = sums.banks_cents.saturating_add(v),
                None => sums.banks_not_integer = sums.banks_not_integer.saturating_add(1),
            }
        }
        for (a, b) in (0..n).flat_map(|a| (a + 1..n).map(move |b| (a, b))) {
            let read = |x, y| pair_index(n, x, y).and_then(|i| int_of(at(&state.pairs, i), true));
            let (ab, ba) = (read(a, b), read(b, a));
            let not_integer = u64::from(ab.is_none()) + u64::from(ba.is_none());
            sums.pairs_not_integer = sums.pairs_not_integer.saturating_add(not_integer);
            let (ab_cents, ba_cents) = (ab.unwrap_or(0), ba.unwrap_or(0));
            let sum_cents = ab_cents.saturating_add(ba_cents);
            sums.pairs_cents = sums.pairs_cents.saturating_add(sum_cents);
            if ab.is_some() && ba.is_some() && sum_cents != 0 {
                sums.unbalanced_pairs.push(|| UnbalancedPair {
                    a,
                    b,
                    ab_cents,
                    ba_cents,
                    sum_cents,
                });
            }
        }
        sums
    }

    // -----------------------------------------------------------------------------------------
    // The inference
    // -----------------------------------------------------------------------------------------

    fn infer(&self, mut residual: Residual) -> Inference {
        let mut inference = Inference::default();
        if residual.overflowed {
            inference.limits.push(format!(
                "more than {MAX_RESIDUAL_KEYS} keys differ: no transfer is inferred (is it the \
                 right accounts file and database?)"
            ));
            return inference;
        }
        self.note_limits(&mut inference.limits);
        for event in &self.unfinished {
            let (present, missing) =
                partition(&mut residual, event.steps(), Residual::take_present);
            if event.status == SeedStatus::Error || !present.is_empty() {
                let event = event.clone();
                inference.unfinished.push(|| PartialEvent {
                    event,
                    repeats: None,
                    present,
                    missing,
                });
            }
        }
        for repeat in &self.repeats {
            let (missing, present) =
                partition(&mut residual, repeat.event.steps(), Residual::take_absent);
            if !missing.is_empty() {
                let (event, repeats) = (repeat.event.clone(), Some(repeat.first.clone()));
                inference.completed_missing.push(|| PartialEvent {
                    event,
                    repeats,
                    present,
                    missing,
                });
            }
        }
        self.group_orphans(&mut residual, &mut inference);
        for (&key, &residual_cents) in &residual.map {
            inference.unexplained.push(|| Residue { key, residual_cents });
        }
        inference
    }

    fn note_limits(&self, limits: &mut Vec<String>) {
        if self.unfinished_not_kept > 0 {
            limits.push(format!(
                "{} events with status created, running or error past the first {MAX_RETAINED} \
                 were not examined",
                self.unfinished_not_kept
            ));
        }
        if self.repeats_not_kept > 0 {
            limits.push(format!(
                "{} repeated completed events past the first {MAX_RETAINED} were not examined",
                self.repeats_not_kept
            ));
        }
    }

    /// Step 3: negative account residuals grouped into transfers without an event.
    fn group_orphans(&self, residual: &mut Residual, inference: &mut Inference) {
        let debits: Vec<(usize, i128)> = residual
            .map
            .range(KeyRef::Account(0)..KeyRef::Bank(0))
            .filter_map(|(key, &r)| match key {
                KeyRef::Account(i) if r < 0 => Some((*i, r)),
                _ => None,
            })
            .collect();
        if debits.len() > MAX_GROUPED {
            inference.limits.push(format!(
                "{} accounts lost money without an event; the first {MAX_GROUPED} were grouped",
                debits.len()
            ));
        }
        for (account, r) in debits.into_iter().take(MAX_GROUPED) {
            let Some(amount) = r.checked_neg() else { continue };
            let orphan = self.orphan(residual, account, amount);
            inference.without_event.push(|| orphan);
        }
    }

    /// The transfer that best explains a debit of `amount` from `from` without an event.
    fn orphan(&self, residual: &mut Residual, from: usize, amount: i128) -> OrphanTransfer {
        let from_bank = self.account_bank.get(from).copied().unwrap_or(usize::MAX);
        let to_bank = self.best_destination(residual, from_bank, amount);
        let minus = amount.checked_neg().unwrap_or(0);
        let mut orphan = OrphanTransfer {
            from_account: from,
            from_bank,
            to_bank,
            to_account: None,
            amount_cents: amount,
            present: Vec::new(),
            missing: Vec::new(),
        };
        let debit = StepAt { step: Step::Debit, key: KeyRef::Account(from), delta_cents: minus };
        residual.take_present(debit);
        orphan.present.push(debit);
        let bank_from =
            StepAt { step: Step::BankFrom, key: KeyRef::Bank(from_bank), delta_cents: minus };
        let bank_from_present = residual.take_present(bank_from);
        if bank_from_present {
            orphan.present.push(bank_from);
        } else if to_bank.is_some() {
            orphan.missing.push(Step::BankFrom);
        }
        let credit_bank = match to_bank {
            Some(to) => {
                let between = footprint((from, from_bank), (from, to), amount).filter(|s| {
                    matches!(s.step, Step::BankTo | Step::PairFromTo | Step::PairToFrom)
                });
                for step in between {
                    if residual.take_present(step) {
                        orphan.present.push(step);
                    } else {
                        orphan.missing.push(step.step);
                    }
                }
                Some(to)
            }
            None if bank_from_present => {
                orphan.missing.extend([Step::BankTo, Step::PairFromTo, Step::PairToFrom]);
                None
            }
            None => Some(from_bank),
        };
        self.credit(residual, &mut orphan, credit_bank);
        orphan
    }

    /// The credit of an inferred transfer: an account of `bank` with a residual of at least the
    /// amount (an exact one first).
    fn credit(&self, residual: &mut Residual, orphan: &mut OrphanTransfer, bank: Option<usize>) {
        let amount = orphan.amount_cents;
        let Some(bank) = bank else {
            orphan.missing.push(Step::Credit);
            return;
        };
        let candidates: Vec<(usize, i128)> = residual
            .map
            .range(KeyRef::Account(0)..KeyRef::Bank(0))
            .filter_map(|(key, &r)| match key {
                KeyRef::Account(i) if r >= amount && self.account_bank.get(*i) == Some(&bank) => {
                    Some((*i, r))
                }
                _ => None,
            })
            .collect();
        match candidates.iter().find(|(_, r)| *r == amount).or(candidates.first()) {
            Some(&(to, _)) => {
                let step =
                    StepAt { step: Step::Credit, key: KeyRef::Account(to), delta_cents: amount };
                residual.take_present(step);
                orphan.present.push(step);
                orphan.to_account = Some(to);
                orphan.to_bank = Some(bank);
            }
            None => orphan.missing.push(Step::Credit),
        }
    }

    /// The bank (other than `from_bank`) whose bank and pair residuals best fit a transfer of
    /// `amount` from `from_bank`: the most of its three steps present, the lowest index on a tie.
    fn best_destination(
        &self,
        residual: &Residual,
        from_bank: usize,
        amount: i128,
    ) -> Option<usize> {
        let minus = amount.checked_neg()?;
        let mut best: Option<(usize, usize)> = None;
        for to in (0..self.bank_names.len()).filter(|&t| t != from_bank) {
            let fits = [
                (KeyRef::Bank(to), amount),
                (KeyRef::Pair(from_bank, to), amount),
                (KeyRef::Pair(to, from_bank), minus),
            ]
            .into_iter()
            .filter(|&(key, delta)| covers(residual.get(key), delta))
            .count();
            if fits > 0 && best.is_none_or(|(_, most)| fits > most) {
                best = Some((to, fits));
            }
        }
        best.map(|(to, _)| to)
    }
}

/// Splits steps by `take` (which subtracts those it takes): (taken, not taken).
fn partition(
    residual: &mut Residual,
    steps: impl Iterator<Item = StepAt>,
    take: fn(&mut Residual, StepAt) -> bool,
) -> (Vec<StepAt>, Vec<StepAt>) {
    let mut taken = Vec::new();
    let mut left = Vec::new();
    for step in steps {
        if take(residual, step) { taken.push(step) } else { left.push(step) }
    }
    (taken, left)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;
    use crate::ledger::accounts::Account;

    const ING: usize = 0;
    const DB: usize = 1;
    const KUTXA: usize = 2;
    const ANA: usize = 0;
    const BRUNO: usize = 1;
    const CARLA: usize = 2;
    const DARIO: usize = 3;
    const LOADED: [i64; 4] = [10_000, 5_000, 2_500, 700];
    const IBANS: [&str; 4] = [
        "ES7620770024003102575766",
        "ES9121000418450200051332",
        "ES6000491500051234567892",
        "ES1720852066623456789011",
    ];

    /// Four accounts in three banks: Ana and Dario at ING, Bruno at Deutsche Bank, Carla at Kutxa.
    fn file() -> AccountsFile {
        let banks = ["ING", "Deutsche Bank", "Kutxa"];
        let homes = [(ING, "Ana"), (DB, "Bruno"), (KUTXA, "Carla"), (ING, "Dario")];
        let accounts = (0..4)
            .map(|i| Account {
                iban: IBANS[i].to_string(),
                bank: homes[i].0,
                name: homes[i].1.to_string(),
                balance_cents: LOADED[i],
            })
            .collect();
        AccountsFile {
            path: PathBuf::from("accounts.csv"),
            sha256: String::new(),
            banks: banks.map(String::from).to_vec(),
            accounts,
            total_cents: 18_200,
        }
    }

    fn party(i: usize, balance_cents: i64) -> SeedParty {
        let file = file();
        let account = &file.accounts[i];
        SeedParty {
            iban: account.iban.clone(),
            bank: file.banks[account.bank].clone(),
            person: account.name.clone(),
            balance_cents,
        }
    }

    /// An event as the seed writes it: the source's balance before the debit, the destination's
    /// as loaded.
    fn event(from: usize, to: usize, amount: i64, status: SeedStatus, before: i64) -> SeedEvent {
        SeedEvent {
            from: party(from, before),
            to: party(to, LOADED[to]),
            amount_cents: amount,
            status,
            err: String::new(),
        }
    }

    fn json_of(event: &SeedEvent) -> String {
        let party = |p: &SeedParty| {
            serde_json::json!({
                "iban": p.iban, "bank": p.bank, "person": p.person, "ammount": p.balance_cents,
            })
        };
        serde_json::json!({
            "err": event.err,
            "from": party(&event.from),
            "to": party(&event.to),
            "ammount": event.amount_cents,
            "status": event.status.code(),
        })
        .to_string()
    }

    fn parse_json(json: &str) -> Result<SeedEvent, EntryProblem> {
        parse_entry([(&b"json"[..], json.as_bytes())])
    }

    /// Redis's keys: the four accounts, the three bank keys (`None`: missing) and the pair keys
    /// given (the others missing).
    fn state(
        accounts: [i64; 4],
        banks: [Option<i64>; 3],
        pairs: &[(usize, usize, i64)],
    ) -> SeedState {
        let mut values = vec![Value::Missing; 9];
        for &(a, b, v) in pairs {
            values[a * 3 + b] = Value::Int(v);
        }
        SeedState {
            accounts: accounts.map(Value::Int).to_vec(),
            banks: banks.map(|b| b.map_or(Value::Missing, Value::Int)).to_vec(),
            pairs: values,
        }
    }

    fn audit(
        entries: Vec<(&str, Result<SeedEvent, EntryProblem>)>,
        state: &SeedState,
    ) -> SeedAudit {
        let mut replay = SeedReplay::new(&file());
        for (id, entry) in entries {
            replay.apply(id, entry);
        }
        replay.audit(state)
    }

    fn at(step: Step, key: KeyRef, delta_cents: i128) -> StepAt {
        StepAt { step, key, delta_cents }
    }

    fn diff(key: KeyRef, redis: i64, expected_cents: i128) -> KeyDiff {
        let difference_cents = Some(i128::from(redis) - expected_cents);
        KeyDiff { key, redis: Value::Int(redis), expected_cents, difference_cents }
    }

    fn line(redis: i128, loaded: i128, replay: i128) -> MoneyLine {
        MoneyLine {
            redis_cents: redis,
            loaded_cents: loaded,
            replay_cents: replay,
            surplus_vs_loaded_cents: redis - loaded,
            surplus_vs_replay_cents: redis - replay,
            uncounted_accounts: 0,
        }
    }

    fn bank_lines(audit: &SeedAudit) -> Vec<MoneyLine> {
        audit.money.banks.iter().map(|b| b.money).collect()
    }

    /// The six steps of a transfer of 400 from Ana (ING) to Carla (Kutxa).
    fn ana_to_carla(amount: i128) -> [StepAt; 6] {
        [
            at(Step::Debit, KeyRef::Account(ANA), -amount),
            at(Step::BankFrom, KeyRef::Bank(ING), -amount),
            at(Step::BankTo, KeyRef::Bank(KUTXA), amount),
            at(Step::PairFromTo, KeyRef::Pair(ING, KUTXA), amount),
            at(Step::PairToFrom, KeyRef::Pair(KUTXA, ING), -amount),
            at(Step::Credit, KeyRef::Account(CARLA), amount),
        ]
    }

    #[test]
    fn a_clean_run_is_clean() {
        let events = [
            ("1-0", event(ANA, BRUNO, 1_000, SeedStatus::Completed, 10_000)),
            ("2-0", event(BRUNO, CARLA, 300, SeedStatus::Completed, 6_000)),
            ("3-0", event(ANA, DARIO, 200, SeedStatus::Completed, 9_000)),
            ("4-0", event(CARLA, ANA, 99_999, SeedStatus::Cancelled, 2_800)),
        ];
        let entries = events.iter().map(|(id, e)| (*id, parse_json(&json_of(e)))).collect();
        let redis = state(
            [8_800, 5_700, 2_800, 900],
            [Some(-1_000), Some(700), Some(300)],
            &[(ING, DB, 1_000), (DB, ING, -1_000), (DB, KUTXA, 300), (KUTXA, DB, -300)],
        );
        let audit = audit(entries, &redis);
        assert!(audit.clean(), "{audit:#?}");
        assert_eq!(audit.entries, 4);
        let statuses = StatusCounts { completed: 3, cancelled: 1, ..StatusCounts::default() };
        assert_eq!(audit.statuses, statuses);
        assert_eq!(audit.diffs, Listed::default());
        assert_eq!(audit.money.total, line(18_200, 18_200, 18_200));
        let banks =
            [line(9_700, 10_700, 9_700), line(5_700, 5_000, 5_700), line(2_800, 2_500, 2_800)];
        assert_eq!(bank_lines(&audit), banks);
        assert_eq!(audit.money.pairs, Listed::default());
        assert_eq!((audit.sums.banks_cents, audit.sums.pairs_cents), (0, 0));
        assert_eq!(audit.inference, Inference::default());
    }

    #[test]
    fn a_run_cut_before_the_credit_is_increments_without_an_event() {
        // Ana → Carla 400: steps 1 to 5 applied, no credit, no event.
        let redis = state(
            [9_600, 5_000, 2_500, 700],
            [Some(-400), None, Some(400)],
            &[(ING, KUTXA, 400), (KUTXA, ING, -400)],
        );
        let audit = audit(Vec::new(), &redis);
        assert!(!audit.clean());
        let diffs = vec![
            diff(KeyRef::Account(ANA), 9_600, 10_000),
            diff(KeyRef::Bank(ING), -400, 0),
            diff(KeyRef::Bank(KUTXA), 400, 0),
            diff(KeyRef::Pair(ING, KUTXA), 400, 0),
            diff(KeyRef::Pair(KUTXA, ING), -400, 0),
        ];
        assert_eq!(audit.diffs, Listed { items: diffs, total: 5 });
        assert_eq!(audit.money.total, line(17_800, 18_200, 18_200));
        assert_eq!(
            (audit.money.total.missing_cents(), audit.money.total.created_cents()),
            (400, 0)
        );
        let banks =
            [line(10_300, 10_700, 10_700), line(5_000, 5_000, 5_000), line(2_500, 2_500, 2_500)];
        assert_eq!(bank_lines(&audit), banks);
        let pair = PairMoney {
            a: ING,
            b: KUTXA,
            redis_ab_cents: Some(400),
            redis_ba_cents: Some(-400),
            replay_ab_cents: 0,
            replay_ba_cents: 0,
        };
        assert_eq!(audit.money.pairs, Listed { items: vec![pair], total: 1 });
        assert_eq!((audit.sums.banks_cents, audit.sums.pairs_cents), (0, 0));
        assert_eq!(audit.sums.unbalanced_pairs.total, 0);
        let [debit, bank_from, bank_to, ab, ba, _] = ana_to_carla(400);
        let orphan = OrphanTransfer {
            from_account: ANA,
            from_bank: ING,
            to_bank: Some(KUTXA),
            to_account: None,
            amount_cents: 400,
            present: vec![debit, bank_from, bank_to, ab, ba],
            missing: vec![Step::Credit],
        };
        assert_eq!(audit.inference.without_event, Listed { items: vec![orphan], total: 1 });
        assert_eq!(audit.inference.unexplained.total, 0);
        assert_eq!(audit.inference.unfinished.total + audit.inference.completed_missing.total, 0);
    }

    #[test]
    fn a_run_cut_between_the_bank_increments_leaves_the_destination_unknown() {
        // Ana → Bruno 250: only the debit and the source bank's decrement.
        let redis = state([9_750, 5_000, 2_500, 700], [Some(-250), None, None], &[]);
        let audit = audit(Vec::new(), &redis);
        let diffs =
            vec![diff(KeyRef::Account(ANA), 9_750, 10_000), diff(KeyRef::Bank(ING), -250, 0)];
        assert_eq!(audit.diffs, Listed { items: diffs, total: 2 });
        assert_eq!(audit.money.total, line(17_950, 18_200, 18_200));
        assert_eq!(audit.money.total.missing_cents(), 250);
        assert_eq!((audit.sums.banks_cents, audit.sums.pairs_cents), (-250, 0));
        assert_eq!(audit.money.pairs.total, 0);
        let orphan = OrphanTransfer {
            from_account: ANA,
            from_bank: ING,
            to_bank: None,
            to_account: None,
            amount_cents: 250,
            present: vec![
                at(Step::Debit, KeyRef::Account(ANA), -250),
                at(Step::BankFrom, KeyRef::Bank(ING), -250),
            ],
            missing: vec![Step::BankTo, Step::PairFromTo, Step::PairToFrom, Step::Credit],
        };
        assert_eq!(audit.inference.without_event, Listed { items: vec![orphan], total: 1 });
        assert_eq!(audit.inference.unexplained.total, 0);
        assert!(!audit.clean());
    }

    #[test]
    fn a_transfer_inside_a_bank_without_its_event_pairs_the_debit_with_the_credit() {
        // Ana → Dario 200 at ING, both steps applied, the event lost.
        let redis = state([9_800, 5_000, 2_500, 900], [None; 3], &[]);
        let audit = audit(Vec::new(), &redis);
        assert_eq!(audit.diffs.total, 2);
        assert_eq!(audit.money.total, line(18_200, 18_200, 18_200));
        let orphan = OrphanTransfer {
            from_account: ANA,
            from_bank: ING,
            to_bank: Some(ING),
            to_account: Some(DARIO),
            amount_cents: 200,
            present: vec![
                at(Step::Debit, KeyRef::Account(ANA), -200),
                at(Step::Credit, KeyRef::Account(DARIO), 200),
            ],
            missing: Vec::new(),
        };
        assert_eq!(audit.inference.without_event.items, vec![orphan]);
        assert_eq!(audit.inference.unexplained.total, 0);
    }

    #[test]
    fn a_duplicate_event_is_reported_with_the_differences_it_causes() {
        let twice = event(ANA, BRUNO, 1_000, SeedStatus::Completed, 10_000);
        let entries = vec![("1-0", Ok(twice.clone())), ("2-0", Ok(twice))];
        let redis = state(
            [9_000, 6_000, 2_500, 700],
            [Some(-1_000), Some(1_000), None],
            &[(ING, DB, 1_000), (DB, ING, -1_000)],
        );
        let audit = audit(entries, &redis);
        assert!(!audit.clean());
        let duplicate =
            Duplicate { id: "2-0".into(), first: "1-0".into(), status: SeedStatus::Completed };
        assert_eq!(audit.duplicates, Listed { items: vec![duplicate], total: 1 });
        let diffs = vec![
            diff(KeyRef::Account(ANA), 9_000, 8_000),
            diff(KeyRef::Account(BRUNO), 6_000, 7_000),
            diff(KeyRef::Bank(ING), -1_000, -2_000),
            diff(KeyRef::Bank(DB), 1_000, 2_000),
            diff(KeyRef::Pair(ING, DB), 1_000, 2_000),
            diff(KeyRef::Pair(DB, ING), -1_000, -2_000),
        ];
        assert_eq!(audit.diffs, Listed { items: diffs, total: 6 });
        assert_eq!(audit.money.total, line(18_200, 18_200, 18_200));
        let banks =
            [line(9_700, 10_700, 8_700), line(6_000, 5_000, 7_000), line(2_500, 2_500, 2_500)];
        assert_eq!(bank_lines(&audit), banks);
        assert_eq!((audit.sums.banks_cents, audit.sums.pairs_cents), (0, 0));
        let repeat = EventRef {
            id: "2-0".into(),
            from: ANA,
            to: BRUNO,
            from_bank: ING,
            to_bank: DB,
            amount_cents: 1_000,
            status: SeedStatus::Completed,
            err: String::new(),
        };
        let missing = vec![
            at(Step::Debit, KeyRef::Account(ANA), -1_000),
            at(Step::BankFrom, KeyRef::Bank(ING), -1_000),
            at(Step::BankTo, KeyRef::Bank(DB), 1_000),
            at(Step::PairFromTo, KeyRef::Pair(ING, DB), 1_000),
            at(Step::PairToFrom, KeyRef::Pair(DB, ING), -1_000),
            at(Step::Credit, KeyRef::Account(BRUNO), 1_000),
        ];
        let found =
            PartialEvent { event: repeat, repeats: Some("1-0".into()), present: vec![], missing };
        assert_eq!(audit.inference.completed_missing, Listed { items: vec![found], total: 1 });
        assert_eq!(audit.inference.without_event.total + audit.inference.unexplained.total, 0);
    }

    #[test]
    fn an_error_event_shows_what_it_left_behind() {
        let mut failed = event(ANA, CARLA, 400, SeedStatus::Error, 10_000);
        failed.err = "INCRBY failed".into();
        let redis = state([9_600, 5_000, 2_500, 700], [Some(-400), None, Some(400)], &[]);
        let audit = audit(vec![("7-0", parse_json(&json_of(&failed)))], &redis);
        assert_eq!(audit.statuses, StatusCounts { error: 1, ..StatusCounts::default() });
        let diffs = vec![
            diff(KeyRef::Account(ANA), 9_600, 10_000),
            diff(KeyRef::Bank(ING), -400, 0),
            diff(KeyRef::Bank(KUTXA), 400, 0),
        ];
        assert_eq!(audit.diffs, Listed { items: diffs, total: 3 });
        assert_eq!(audit.money.total.missing_cents(), 400);
        assert_eq!((audit.sums.banks_cents, audit.sums.pairs_cents), (0, 0));
        let [debit, bank_from, bank_to, ab, ba, credit] = ana_to_carla(400);
        let event = EventRef {
            id: "7-0".into(),
            from: ANA,
            to: CARLA,
            from_bank: ING,
            to_bank: KUTXA,
            amount_cents: 400,
            status: SeedStatus::Error,
            err: "INCRBY failed".into(),
        };
        let found = PartialEvent {
            event,
            repeats: None,
            present: vec![debit, bank_from, bank_to],
            missing: vec![ab, ba, credit],
        };
        assert_eq!(audit.inference.unfinished, Listed { items: vec![found], total: 1 });
        assert_eq!(audit.inference.without_event.total + audit.inference.unexplained.total, 0);
    }

    #[test]
    fn an_error_event_that_applied_nothing_is_reported_and_the_run_is_clean() {
        let mut failed = event(ANA, CARLA, 400, SeedStatus::Error, 10_000);
        failed.err = "too many retries".into();
        let redis = state(LOADED, [None; 3], &[]);
        let audit = audit(vec![("7-0", Ok(failed))], &redis);
        assert!(audit.clean());
        let found = &audit.inference.unfinished.items;
        assert_eq!((found.len(), found[0].present.len(), found[0].missing.len()), (1, 0, 6));
    }

    #[test]
    fn a_missing_pair_key_is_zero() {
        // Ana → Bruno 1000 completed; Redis has every key right but `ING:Deutsche Bank`.
        let entries = vec![("1-0", Ok(event(ANA, BRUNO, 1_000, SeedStatus::Completed, 10_000)))];
        let redis = state(
            [9_000, 6_000, 2_500, 700],
            [Some(-1_000), Some(1_000), None],
            &[(DB, ING, -1_000)],
        );
        let audit = audit(entries, &redis);
        let missing = KeyDiff {
            key: KeyRef::Pair(ING, DB),
            redis: Value::Missing,
            expected_cents: 1_000,
            difference_cents: Some(-1_000),
        };
        // The other missing pairs are expected at 0: no difference.
        assert_eq!(audit.diffs, Listed { items: vec![missing], total: 1 });
        assert_eq!(audit.money.total, line(18_200, 18_200, 18_200));
        assert_eq!((audit.sums.banks_cents, audit.sums.pairs_cents), (0, -1_000));
        let unbalanced =
            UnbalancedPair { a: ING, b: DB, ab_cents: 0, ba_cents: -1_000, sum_cents: -1_000 };
        assert_eq!(audit.sums.unbalanced_pairs, Listed { items: vec![unbalanced], total: 1 });
        let residue = Residue { key: KeyRef::Pair(ING, DB), residual_cents: -1_000 };
        assert_eq!(audit.inference.unexplained, Listed { items: vec![residue], total: 1 });
        assert!(!audit.clean());
    }

    #[test]
    fn a_missing_account_key_is_a_difference() {
        let mut redis = state(LOADED, [None; 3], &[]);
        redis.accounts[DARIO] = Value::Missing;
        let audit = audit(Vec::new(), &redis);
        let missing = KeyDiff {
            key: KeyRef::Account(DARIO),
            redis: Value::Missing,
            expected_cents: 700,
            difference_cents: None,
        };
        assert_eq!(audit.diffs, Listed { items: vec![missing], total: 1 });
        let total = MoneyLine { uncounted_accounts: 1, ..line(17_500, 18_200, 18_200) };
        assert_eq!(audit.money.total, total);
        assert_eq!(audit.inference, Inference::default());
    }

    #[test]
    fn a_bank_name_with_a_space_flows_through_unchanged() {
        let bruno_to_dario = event(BRUNO, DARIO, 1_200, SeedStatus::Completed, 5_000);
        let parsed = parse_json(&json_of(&bruno_to_dario)).unwrap();
        assert_eq!(parsed.from.bank, "Deutsche Bank");
        assert_eq!(parsed, bruno_to_dario);
        let redis = state(
            [10_000, 3_800, 2_500, 1_900],
            [Some(1_200), Some(-1_200), None],
            &[(DB, ING, 1_200), (ING, DB, -1_200)],
        );
        let clean = audit(vec![("1-0", Ok(parsed.clone()))], &redis);
        assert!(clean.clean(), "{clean:#?}");
        let mut wrong = redis.clone();
        wrong.banks[DB] = Value::Missing;
        let audit_wrong = audit(vec![("1-0", Ok(parsed.clone()))], &wrong);
        assert_eq!(
            audit_wrong.diffs.items,
            vec![KeyDiff {
                key: KeyRef::Bank(DB),
                redis: Value::Missing,
                expected_cents: -1_200,
                difference_cents: Some(1_200),
            }]
        );
        assert_eq!(file().banks[DB], "Deutsche Bank");
        let mut misnamed = parsed;
        misnamed.from.bank = "DeutscheBank".into();
        let audit = audit(vec![("2-0", Ok(misnamed))], &redis);
        let problem = &audit.malformed.items[0].problem;
        assert!(
            matches!(problem, EntryProblem::BadField { field: "from.bank", why }
            if why.contains("\"Deutsche Bank\"")),
            "{problem}"
        );
    }

    #[test]
    fn our_own_layout_and_malformed_json_are_counted_apart() {
        let ours: [(&str, &str); 7] = [
            ("id", "r1-w1-1"),
            ("status", "completed"),
            ("from", IBANS[0]),
            ("to", IBANS[1]),
            ("from_bank", "ING"),
            ("to_bank", "Deutsche Bank"),
            ("amount", "5"),
        ];
        let ours = parse_entry(ours.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
        assert_eq!(ours, Err(EntryProblem::OurLayout));
        let broken = parse_json("{\"err\": ");
        assert!(matches!(&broken, Err(EntryProblem::BadJson(_))), "{broken:?}");
        let audit =
            audit(vec![("1-0", ours), ("2-0", broken.clone())], &state(LOADED, [None; 3], &[]));
        assert_eq!((audit.entries, audit.our_layout, audit.statuses.total()), (2, 1, 0));
        let malformed = Malformed { id: "2-0".into(), problem: broken.unwrap_err() };
        assert_eq!(audit.malformed, Listed { items: vec![malformed], total: 1 });
        assert!(!audit.clean());
    }

    #[test]
    fn bad_fields_are_named() {
        let valid = json_of(&event(ANA, BRUNO, 10, SeedStatus::Completed, 10_000));
        let field = |json: String| match parse_json(&json) {
            Err(EntryProblem::BadField { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(valid.replace("\"ammount\":10,", "\"ammount\":0,")), "ammount");
        assert_eq!(field(valid.replace("\"status\":2", "\"status\":5")), "status");
        let value: serde_json::Value = serde_json::from_str(&valid).unwrap();
        let without = |path: &str| {
            let mut value = value.clone();
            let (object, key) = match path.split_once('.') {
                Some((side, key)) => (&mut value[side], key),
                None => (&mut value, path),
            };
            object.as_object_mut().unwrap().remove(key);
            value.to_string()
        };
        assert_eq!(field(without("to")), "to");
        assert_eq!(field(without("from.iban")), "from.iban");
        assert_eq!(field(without("to.ammount")), "to.ammount");
        assert_eq!(parse_entry([(&b"other"[..], &b"1"[..])]), Err(EntryProblem::NoJson));
        let twice = [(&b"json"[..], valid.as_bytes()), (&b"json"[..], valid.as_bytes())];
        assert!(matches!(parse_entry(twice), Err(EntryProblem::BadField { field: "json", .. })));
    }

    #[test]
    fn created_and_running_events_that_applied_nothing_are_counted() {
        let entries = vec![
            ("1-0", Ok(event(ANA, BRUNO, 1_000, SeedStatus::Created, 10_000))),
            ("1-1", Ok(event(ANA, BRUNO, 1_000, SeedStatus::Running, 10_000))),
        ];
        let audit = audit(entries, &state(LOADED, [None; 3], &[]));
        let statuses = StatusCounts { created: 1, running: 1, ..StatusCounts::default() };
        assert_eq!(audit.statuses, statuses);
        assert_eq!(audit.diffs.total, 0);
        assert_eq!(audit.inference, Inference::default());
        assert!(audit.clean());
    }

    #[test]
    fn ids_that_are_not_stream_ids_are_numbered() {
        let same = event(ANA, BRUNO, 5, SeedStatus::Cancelled, 1);
        let audit =
            audit(vec![("x", Ok(same.clone())), ("y", Ok(same))], &state(LOADED, [None; 3], &[]));
        assert_eq!(audit.duplicates.items[0].first, "#1");
        assert_eq!(audit.duplicates.items[0].id, "y");
    }

    #[test]
    fn a_completed_event_past_the_replay_limit_is_refused_whole() {
        let mut replay = SeedReplay::new(&file());
        replay.accounts[CARLA] = i128::try_from(REPLAY_LIMIT).unwrap() - 5;
        let amount = 10;
        let before = (replay.accounts.clone(), replay.bank_flows.clone(), replay.pairs.clone());
        replay.apply("1-0", Ok(event(ANA, CARLA, amount, SeedStatus::Completed, 10_000)));
        assert_eq!(
            (replay.accounts.clone(), replay.bank_flows.clone(), replay.pairs.clone()),
            before
        );
        let audit = replay.audit(&state(LOADED, [None; 3], &[]));
        assert_eq!(audit.statuses.total(), 0);
        let problem = &audit.malformed.items[0].problem;
        assert!(matches!(problem, EntryProblem::BadField { field: "ammount", .. }), "{problem}");
    }

    // --- properties -------------------------------------------------------------------------

    /// The model: each key's value after applying steps, by hand.
    #[derive(Clone)]
    struct Model {
        accounts: [i64; 4],
        banks: [i64; 3],
        pairs: [i64; 9],
    }

    impl Model {
        fn new() -> Model {
            Model { accounts: LOADED, banks: [0; 3], pairs: [0; 9] }
        }

        /// The steps of a transfer, as (key, delta), in the seed's order.
        fn steps(from: usize, to: usize, amount: i64) -> Vec<(KeyRef, i64)> {
            let (f, t) = (file().accounts[from].bank, file().accounts[to].bank);
            if f == t {
                return vec![(KeyRef::Account(from), -amount), (KeyRef::Account(to), amount)];
            }
            vec![
                (KeyRef::Account(from), -amount),
                (KeyRef::Bank(f), -amount),
                (KeyRef::Bank(t), amount),
                (KeyRef::Pair(f, t), amount),
                (KeyRef::Pair(t, f), -amount),
                (KeyRef::Account(to), amount),
            ]
        }

        fn apply(&mut self, (key, delta): (KeyRef, i64)) {
            let slot = match key {
                KeyRef::Account(i) => &mut self.accounts[i],
                KeyRef::Bank(i) => &mut self.banks[i],
                KeyRef::Pair(a, b) => &mut self.pairs[a * 3 + b],
            };
            *slot += delta;
        }

        fn state(&self) -> SeedState {
            let int = |v: i64| if v == 0 { Value::Missing } else { Value::Int(v) };
            SeedState {
                accounts: self.accounts.map(Value::Int).to_vec(),
                banks: self.banks.map(int).to_vec(),
                pairs: self.pairs.map(int).to_vec(),
            }
        }
    }

    /// Transfers the seed would make: completed when the balance allows, else cancelled.
    fn run(transfers: &[(usize, usize, i64)]) -> (Model, Vec<(String, SeedEvent)>) {
        let mut model = Model::new();
        let mut events = Vec::new();
        for (n, &(from, to, amount)) in transfers.iter().enumerate() {
            let before = model.accounts[from];
            let status =
                if before >= amount { SeedStatus::Completed } else { SeedStatus::Cancelled };
            if status == SeedStatus::Completed {
                Model::steps(from, to, amount).into_iter().for_each(|s| model.apply(s));
            }
            events.push((format!("{}-0", n + 1), event(from, to, amount, status, before)));
        }
        (model, events)
    }

    /// Transfers between distinct accounts, each amount unique (`* 32 + n`): identical content
    /// would be a duplicate, which is reported even when genuine.
    fn transfers() -> impl Strategy<Value = Vec<(usize, usize, i64)>> {
        vec((0..4usize, 0..4usize, 1..200i64), 0..30).prop_map(|t| {
            (0i64..)
                .zip(t)
                .filter(|(_, (from, to, _))| from != to)
                .map(|(n, (from, to, amount))| (from, to, amount * 32 + n))
                .collect()
        })
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Missing),
            any::<i64>().prop_map(Value::Int),
            (-3_000i64..3_000).prop_map(Value::Int),
            "[a-z0-9]{0,4}".prop_map(Value::Invalid),
            Just(Value::Error("WRONGTYPE".into())),
        ]
    }

    /// Leaf values a JSON mutation may put anywhere.
    fn json_leaf() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            Just(serde_json::Value::Null),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            (-2.0e20f64..2.0e20).prop_map(serde_json::Value::from),
            "[ -~]{0,8}".prop_map(serde_json::Value::from),
            Just(serde_json::json!([])),
            Just(serde_json::json!({})),
            any::<bool>().prop_map(serde_json::Value::from),
        ]
    }

    const PATHS: [&str; 13] = [
        "err",
        "from",
        "to",
        "ammount",
        "status",
        "from.iban",
        "from.bank",
        "from.person",
        "from.ammount",
        "to.iban",
        "to.bank",
        "to.person",
        "to.ammount",
    ];

    /// A valid event's JSON with one value replaced or removed, then some bytes changed.
    fn mutated_json() -> impl Strategy<Value = Vec<u8>> {
        let valid = (0..4usize, 1..4usize, any::<i64>(), 0..5i64, any::<i64>());
        let edit = (prop::sample::select(PATHS.to_vec()), proptest::option::of(json_leaf()));
        let bytes = vec((any::<prop::sample::Index>(), 0..3u8, any::<u8>()), 0..3);
        (valid, proptest::option::of(edit), bytes).prop_map(
            |((from, step, amount, code, before), edit, bytes)| {
                let status = SeedStatus::from_code(code).unwrap_or(SeedStatus::Completed);
                let to = (from + step) % 4;
                let mut value: serde_json::Value =
                    serde_json::from_str(&json_of(&event(from, to, amount, status, before)))
                        .unwrap();
                if let Some((path, leaf)) = edit {
                    let (object, key) = match path.split_once('.') {
                        Some((side, key)) => (&mut value[side], key),
                        None => (&mut value, path),
                    };
                    if let Some(object) = object.as_object_mut() {
                        match leaf {
                            Some(leaf) => object.insert(key.to_string(), leaf),
                            None => object.remove(key),
                        };
                    }
                }
                let mut text = value.to_string().into_bytes();
                for (at, kind, byte) in bytes {
                    let i = at.index(text.len() + 1);
                    match kind {
                        0 if i < text.len() => text[i] = byte,
                        1 if i < text.len() => drop(text.remove(i)),
                        _ => text.insert(i, byte),
                    }
                }
                text
            },
        )
    }

    fn field_name() -> impl Strategy<Value = Vec<u8>> {
        let real = prop::sample::select(vec!["json", "id", "status", "from", "amount"]);
        prop_oneof![3 => real.prop_map(|n| n.as_bytes().to_vec()), 1 => vec(any::<u8>(), 0..8)]
    }

    fn check_parsed(parsed: &Result<SeedEvent, EntryProblem>) -> Result<(), TestCaseError> {
        if let Ok(event) = parsed {
            prop_assert!(event.amount_cents >= 1);
            prop_assert!(!event.from.iban.is_empty() && !event.to.bank.is_empty());
            prop_assert_eq!(
                SeedStatus::from_code(i64::from(event.status.code())),
                Some(event.status)
            );
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_fields_give_an_event_or_a_problem(
            fields in vec((field_name(), vec(any::<u8>(), 0..80)), 0..20),
        ) {
            let parsed = parse_entry(fields.iter().map(|(n, v)| (&n[..], &v[..])));
            check_parsed(&parsed)?;
        }

        #[test]
        fn mutated_json_gives_an_event_or_a_problem(json in mutated_json()) {
            let parsed = parse_entry([(&b"json"[..], &json[..])]);
            check_parsed(&parsed)?;
            if let Ok(event) = parsed {
                prop_assert_eq!(parse_json(&json_of(&event)), Ok(event));
            }
        }

        #[test]
        fn valid_events_round_trip(
            (from, step, amount) in (0..4usize, 1..4usize, 1..i64::MAX),
            (code, before) in (0..5i64, any::<i64>()),
            err in "[ -~]{0,20}",
        ) {
            let status = SeedStatus::from_code(code).unwrap_or(SeedStatus::Completed);
            let mut event = event(from, (from + step) % 4, amount, status, before);
            event.err = err;
            prop_assert_eq!(parse_json(&json_of(&event)), Ok(event));
        }

        #[test]
        fn any_entries_and_state_audit_without_panic_and_every_entry_counts(
            entries in vec((0..6usize, 0..6usize, any::<i64>(), -1..6i64, any::<bool>()), 0..40),
            accounts in vec(value(), 0..6),
            banks in vec(value(), 0..5),
            pairs in vec(value(), 0..12),
        ) {
            let mut replay = SeedReplay::new(&file());
            for (n, &(from, to, amount, code, ours)) in entries.iter().enumerate() {
                let entry = match SeedStatus::from_code(code) {
                    _ if ours => Err(EntryProblem::OurLayout),
                    None => Err(bad("status", "unknown")),
                    Some(status) => {
                        let mut event = event(from % 4, to % 4, amount, status, amount);
                        if from >= 4 { event.from.iban = "XX00".into(); }
                        if to == 5 { event.to.bank = "Nowhere".into(); }
                        Ok(event)
                    }
                };
                replay.apply(&format!("{n}-0"), entry);
            }
            let audit = replay.audit(&SeedState { accounts, banks, pairs });
            let counted = audit.statuses.total() + audit.malformed.total + audit.our_layout;
            prop_assert_eq!(counted, u64::try_from(entries.len()).unwrap());
            prop_assert!(audit.diffs.items.len() <= MAX_LISTED);
            prop_assert!(audit.malformed.items.len() <= MAX_LISTED);
            prop_assert_eq!(audit.money.banks.len(), 3);
        }

        #[test]
        fn a_consistent_run_audits_clean(transfers in transfers()) {
            let (model, events) = run(&transfers);
            let mut replay = SeedReplay::new(&file());
            for (id, event) in &events {
                replay.apply(id, parse_json(&json_of(event)));
            }
            let audit = replay.audit(&model.state());
            prop_assert!(audit.clean(), "{:#?}", audit);
            prop_assert_eq!(audit.money.total, line(18_200, 18_200, 18_200));
            prop_assert_eq!(audit.inference, Inference::default());
        }

        #[test]
        fn a_transfer_cut_after_any_step_is_found_without_its_event(
            transfers in transfers(),
            (from, step, amount) in (0..4usize, 1..4usize, 1..500i64),
            cut in 1..=6usize,
        ) {
            let (mut model, events) = run(&transfers);
            let to = (from + step) % 4;
            let steps = Model::steps(from, to, amount);
            let (applied, complete) = (cut.min(steps.len()), cut >= steps.len());
            steps.into_iter().take(applied).for_each(|s| model.apply(s));
            let mut replay = SeedReplay::new(&file());
            for (id, event) in &events {
                replay.apply(id, Ok(event.clone()));
            }
            let audit = replay.audit(&model.state());
            let found = &audit.inference.without_event.items;
            prop_assert_eq!(found.len(), 1, "{:#?}", audit);
            prop_assert_eq!(found[0].from_account, from);
            prop_assert_eq!(found[0].amount_cents, i128::from(amount));
            prop_assert_eq!(found[0].present.len(), applied);
            let lost = if complete { 0 } else { -amount };
            prop_assert_eq!(audit.money.total.surplus_vs_loaded_cents, i128::from(lost));
            prop_assert_eq!(audit.inference.unexplained.total, 0);
        }
    }
}
