//! The event streams' entries and their exact fields, in the two layouts a data set can have.
//!
//! Why two ([`Layout`]): on one server every event goes to one stream `P:events` and a transfer is
//! one atomic step, `completed` or `cancelled`. On Redis Cluster a script may only touch the keys
//! of one slot, and each bank's keys share one, so each bank B has its own stream `P:{B}:events`
//! holding only events that change B's keys. A transfer inside a bank is still one step there; a
//! transfer from bank A to bank B takes three, each on one bank's stream: `debited` on A's,
//! `credited` or `rejected` on B's, then `voided` (the refund after a rejection) on A's ([`Step`],
//! [`Phase`]), or, after a credit, a settlement on A's that moves no money and names every
//! transfer one call settled ([`Settlement`]). The debits or the credits of one call share one
//! entry too ([`Batch`]). Transfer ids are then unique per source bank.
//!
//! | field | value |
//! |---|---|
//! | `id` | transfer id `r<run>-w<worker>-<seq>`: run number, worker (producer) number, sequence from 1 |
//! | `status` | `completed` or `cancelled`; sharded layout, between banks: `debited`, `credited`, `rejected`, `voided`, and `settled` |
//! | `from`, `to` | source and destination IBAN |
//! | `from_bank`, `to_bank` | their banks |
//! | `amount` | cents, an integer >= 1 |
//! | `from_balance` | the source balance after the debit (completed, debited) or the refund (voided), or as seen (cancelled); absent when the source is unknown |
//! | `to_balance` | credited only: the destination balance after the credit |
//! | `reason` | cancelled: `insufficient_funds`, `unknown_account`, `same_account`, `bad_amount`, `overflow`; rejected and voided: `unknown_account` or `overflow` |
//!
//! Fields are written in the table's order, `reason` last ([`fields`], [`step_fields`]); the
//! parser takes them in any order but refuses unknown and repeated ones. A settlement has only
//! `status` (`settled`), `from_bank`, `amount` (the sum of its transfers' amounts) and `ids` (their
//! ids, separated by spaces): one entry per call of the settlement step, which costs Redis far
//! less than an entry per transfer. Likewise the debits of one call (`status` `debited`,
//! `from_bank`) and the credits of one call (`status` `credited`, `to_bank`), with `transfers`:
//! one line per transfer (separated by `\n`) of `<id> <from> <to> <amount> <balance> <bank>`,
//! the balance after the step (`from_balance` of a debit, `to_balance` of a credit) and the
//! transfer's other bank (a bank's name, last, may hold spaces, never a control character), at
//! most 128 lines per entry. A call's debits are cut where a cancelled transfer comes between
//! them (a producer's transfers stay in sequence order); its credits follow its rejections. A
//! step in an entry of its own, with the table's fields, reads the same. A source bank's outbox
//! (`P:{A}:outbox`) holds each transfer it debited and has not settled or voided: field the
//! transfer id, value `<to_bank>,<from>,<to>,<amount>` ([`parse_outbound`]).
//!
//! Parsing is a pure function, so `consume` can report a malformed entry instead of crashing.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a data set's events are, chosen by `init` and recorded in `P:meta`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// One server: one stream `P:events`; every transfer is one `completed` or `cancelled` event.
    #[default]
    Single,
    /// Redis Cluster: one stream per bank, `P:{B}:events`; a transfer between banks is three
    /// steps on two streams.
    Sharded,
}

impl Layout {
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Single => "single",
            Layout::Sharded => "sharded",
        }
    }

    /// The layout a name stands for (as `as_str` writes it).
    pub fn parse(text: &str) -> Option<Layout> {
        [Layout::Single, Layout::Sharded].into_iter().find(|l| l.as_str() == text)
    }
}

/// Why a transfer was cancelled; the letter is what the script stores per transfer.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    InsufficientFunds,
    UnknownAccount,
    SameAccount,
    BadAmount,
    Overflow,
}

const REASONS: [(CancelReason, &str, u8); 5] = [
    (CancelReason::InsufficientFunds, "insufficient_funds", b'F'),
    (CancelReason::UnknownAccount, "unknown_account", b'U'),
    (CancelReason::SameAccount, "same_account", b'S'),
    (CancelReason::BadAmount, "bad_amount", b'A'),
    (CancelReason::Overflow, "overflow", b'O'),
];

impl CancelReason {
    pub fn as_str(self) -> &'static str {
        REASONS.iter().find(|r| r.0 == self).map(|r| r.1).expect("every reason is in REASONS")
    }

    pub fn parse(text: &str) -> Option<CancelReason> {
        REASONS.iter().find(|r| r.1 == text).map(|r| r.0)
    }
}

/// The outcome of one transfer, as the script decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Completed,
    Cancelled(CancelReason),
}

impl Outcome {
    /// The outcome for one letter of the script's reply or of a producer key.
    pub fn from_code(code: u8) -> Option<Outcome> {
        if code == b'C' {
            return Some(Outcome::Completed);
        }
        REASONS.iter().find(|r| r.2 == code).map(|r| Outcome::Cancelled(r.0))
    }

    pub fn code(self) -> u8 {
        match self {
            Outcome::Completed => b'C',
            Outcome::Cancelled(reason) => {
                REASONS.iter().find(|r| r.0 == reason).map(|r| r.2).expect("known")
            }
        }
    }
}

/// A transfer id: which broker run, which producer of it, and the producer's sequence number.
/// A producer numbers its transfers 1, 2, 3...: it is a worker, or with `--group-commit` the
/// committer that sent the worker's transfer (`w` in the text stands for either).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TransferId {
    pub run: u64,
    pub producer: u32,
    pub seq: u64,
}

impl TransferId {
    pub fn parse(text: &str) -> Option<TransferId> {
        let rest = text.strip_prefix('r')?;
        let (run, rest) = rest.split_once("-w")?;
        let (producer, seq) = rest.split_once('-')?;
        let id = TransferId {
            run: canonical(run)?,
            producer: canonical(producer)?,
            seq: canonical(seq)?,
        };
        (id.seq >= 1).then_some(id)
    }
}

/// A number written the one way `Display` writes it: digits only, no leading zero, no sign. So an
/// id parses only if it reads back the same, without formatting it again (this runs per event).
fn canonical<T: std::str::FromStr>(text: &str) -> Option<T> {
    let digits = text.as_bytes();
    let plain = !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits[0] != b'0' || digits.len() == 1);
    if plain { text.parse().ok() } else { None }
}

impl fmt::Display for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", producer_id(self.run, self.producer), self.seq)
    }
}

/// The id of one producer of one run, `r<run>-w<producer>`: the idempotency scope.
pub fn producer_id(run: u64, producer: u32) -> String {
    format!("r{run}-w{producer}")
}

/// One parsed stream entry; its texts borrow from the entry, so parsing allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<'a> {
    pub id: TransferId,
    pub outcome: Outcome,
    pub from: &'a str,
    pub to: &'a str,
    pub from_bank: &'a str,
    pub to_bank: &'a str,
    pub amount_cents: i64,
    pub from_balance_cents: Option<i64>,
}

/// One step of a transfer between banks (sharded layout), with what only that step records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// On the source bank's stream: the source account was debited; its balance after.
    Debited { from_balance_cents: i64 },
    /// On the destination bank's stream: the destination account was credited; its balance after.
    Credited { to_balance_cents: i64 },
    /// On the destination bank's stream: refused there (`unknown_account` or `overflow`).
    Rejected(CancelReason),
    /// On the source bank's stream, after a rejection: the source was refunded; its balance after.
    Voided { reason: CancelReason, from_balance_cents: i64 },
}

impl Phase {
    /// The `status` field of the step.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Debited { .. } => "debited",
            Phase::Credited { .. } => "credited",
            Phase::Rejected(_) => "rejected",
            Phase::Voided { .. } => "voided",
        }
    }
}

/// One parsed step of a transfer between banks; its texts borrow from the entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step<'a> {
    pub id: TransferId,
    pub phase: Phase,
    pub from: &'a str,
    pub to: &'a str,
    pub from_bank: &'a str,
    pub to_bank: &'a str,
    pub amount_cents: i64,
}

/// A settlement on a source bank's stream: the transfers it names, each credited at its
/// destination, are no longer in flight. No money moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement<'a> {
    pub from_bank: &'a str,
    /// The sum of the settled transfers' amounts: what leaves the bank's in-flight total.
    pub amount_cents: i64,
    /// At least one.
    pub ids: Vec<TransferId>,
}

/// The debits one call made on a source bank's stream, or the credits one call made on a
/// destination bank's: steps of one phase, `debited` or `credited`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch<'a> {
    /// At least one, all [`Phase::Debited`] from one bank or all [`Phase::Credited`] to one.
    pub steps: Vec<Step<'a>>,
}

/// Any stream entry of this tool: a transfer decided in one event, a step between banks, a
/// settlement of many, or the debits or credits of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry<'a> {
    Transfer(Event<'a>),
    Step(Step<'a>),
    Settlement(Settlement<'a>),
    Batch(Batch<'a>),
}

impl Entry<'_> {
    /// The runs of the entry's transfers whose steps need their run's strategy; none for a
    /// settlement, which moves no money.
    pub fn runs(&self) -> impl Iterator<Item = u64> + '_ {
        let (one, many): (Option<u64>, &[Step<'_>]) = match self {
            Entry::Transfer(event) => (Some(event.id.run), &[]),
            Entry::Step(step) => (Some(step.id.run), &[]),
            Entry::Settlement(_) => (None, &[]),
            Entry::Batch(batch) => (None, &batch.steps),
        };
        one.into_iter().chain(many.iter().map(|step| step.id.run))
    }
}

/// The names of an entry's fields; [`parse_entry`] keeps each value in the slot of its name.
const NAMES: [&str; 12] = [
    "id",
    "status",
    "from",
    "to",
    "from_bank",
    "to_bank",
    "amount",
    "from_balance",
    "reason",
    "to_balance",
    "ids",
    "transfers",
];
const FROM_BANK: usize = 4;
const TO_BANK: usize = 5;
const AMOUNT: usize = 6;
const FROM_BALANCE: usize = 7;
const REASON: usize = 8;
const TO_BALANCE: usize = 9;
const IDS: usize = 10;
const TRANSFERS: usize = 11;
/// The most transfers one settlement names: the script's largest batch.
const MAX_SETTLED: usize = 8192;
/// The most transfers one entry of debits or credits holds (`LINES_PER_ENTRY` of
/// `cross_bank.lua`, which cuts a call's into entries of this many).
const MAX_BATCH_LINES: usize = 128;

/// An entry's field values, each in the slot of its name in [`NAMES`].
struct Found<'a>([Option<&'a str>; NAMES.len()]);

impl<'a> Found<'a> {
    fn collect(fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Result<Self, String> {
        const MAX_FIELDS: usize = 16;
        let mut found = [None; NAMES.len()];
        for (count, (name, value)) in fields.into_iter().enumerate() {
            if count == MAX_FIELDS {
                return Err(format!("more than {MAX_FIELDS} fields"));
            }
            let slot = NAMES
                .iter()
                .position(|n| n.as_bytes() == name)
                .ok_or_else(|| format!("unknown field {:?}", String::from_utf8_lossy(name)))?;
            let name = NAMES[slot];
            let value =
                std::str::from_utf8(value).map_err(|_| format!("field {name} is not UTF-8"))?;
            if found[slot].replace(value).is_some() {
                return Err(format!("field {name} appears twice"));
            }
        }
        Ok(Found(found))
    }

    fn get(&self, slot: usize) -> Result<&'a str, String> {
        self.0[slot].ok_or_else(|| format!("field {} is missing", NAMES[slot]))
    }

    fn int(&self, slot: usize) -> Result<i64, String> {
        let text = self.get(slot)?;
        text.parse().map_err(|_| format!("{} {text:?} is not an integer", NAMES[slot]))
    }
}

/// Builds an event of the single layout (`completed` or `cancelled`) from a stream entry's
/// fields; the error names what is wrong.
pub fn parse<'a>(
    fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
) -> Result<Event<'a>, String> {
    let status = match parse_entry(fields)? {
        Entry::Transfer(event) => return Ok(event),
        Entry::Step(step) => step.phase.as_str(),
        Entry::Settlement(_) => "settled",
        Entry::Batch(batch) => batch.steps[0].phase.as_str(),
    };
    Err(format!("status {status:?} is a step between banks, which only the sharded layout has"))
}

/// Builds any entry of either layout from a stream entry's fields; the error names what is wrong.
pub fn parse_entry<'a>(
    fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
) -> Result<Entry<'a>, String> {
    let found = Found::collect(fields)?;
    if found.0[1] == Some("settled") {
        return settlement(&found).map(Entry::Settlement);
    }
    if found.0[TRANSFERS].is_some() {
        return batch(&found).map(Entry::Batch);
    }
    let id = TransferId::parse(found.get(0)?).ok_or_else(|| {
        format!("id {:?} is not r<run>-w<worker>-<seq>", found.0[0].unwrap_or_default())
    })?;
    if found.0[IDS].is_some() {
        return Err(format!("a {} entry has ids: only a settlement has", found.get(1)?));
    }
    match found.get(1)? {
        "completed" | "cancelled" => transfer(&found, id).map(Entry::Transfer),
        status => step(&found, id, status).map(Entry::Step),
    }
}

fn transfer<'a>(found: &Found<'a>, id: TransferId) -> Result<Event<'a>, String> {
    let status = found.get(1)?;
    let outcome = match (status, found.0[REASON]) {
        ("completed", None) => Outcome::Completed,
        ("cancelled", Some(reason)) => Outcome::Cancelled(
            CancelReason::parse(reason)
                .ok_or_else(|| format!("unknown cancel reason {reason:?}"))?,
        ),
        ("completed", Some(_)) => return Err("a completed transfer has a reason".to_string()),
        _ => return Err("a cancelled transfer has no reason".to_string()),
    };
    if found.0[TO_BALANCE].is_some() {
        return Err(format!("a {status} transfer has a to_balance"));
    }
    let amount_cents = found.int(6)?;
    if amount_cents < 1 && outcome == Outcome::Completed {
        return Err(format!("completed transfer of {amount_cents} cents"));
    }
    let from_balance_cents = match found.0[FROM_BALANCE] {
        None => None,
        Some(_) => Some(found.int(FROM_BALANCE)?),
    };
    if outcome == Outcome::Completed && from_balance_cents.is_none() {
        return Err("field from_balance is missing".to_string());
    }
    Ok(Event {
        id,
        outcome,
        from: found.get(2)?,
        to: found.get(3)?,
        from_bank: found.get(4)?,
        to_bank: found.get(5)?,
        amount_cents,
        from_balance_cents,
    })
}

/// A settlement: `status`, `from_bank`, `amount` and `ids`, nothing else.
fn settlement<'a>(found: &Found<'a>) -> Result<Settlement<'a>, String> {
    let allowed = [1, FROM_BANK, AMOUNT, IDS];
    if let Some(slot) = (0..NAMES.len()).find(|s| !allowed.contains(s) && found.0[*s].is_some()) {
        return Err(format!(
            "a settlement has the field {}: it names its transfers in ids",
            NAMES[slot]
        ));
    }
    let amount_cents = found.int(AMOUNT)?;
    if amount_cents < 1 {
        return Err(format!("a settlement of {amount_cents} cents"));
    }
    let ids = found
        .get(IDS)?
        .split(' ')
        .take(MAX_SETTLED + 1)
        .map(|text| {
            TransferId::parse(text)
                .ok_or_else(|| format!("ids: {text:?} is not r<run>-w<worker>-<seq>"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ids.len() > MAX_SETTLED {
        return Err(format!("a settlement names more than {MAX_SETTLED} transfers"));
    }
    Ok(Settlement { from_bank: found.get(FROM_BANK)?, amount_cents, ids })
}

/// The debits or credits of one call: `status` (`debited` or `credited`), the stream's bank
/// (`from_bank` or `to_bank`) and `transfers`, nothing else.
fn batch<'a>(found: &Found<'a>) -> Result<Batch<'a>, String> {
    let status = found.get(1)?;
    let bank_slot = match status {
        "debited" => FROM_BANK,
        "credited" => TO_BANK,
        _ => return Err(format!("a {status} entry has transfers: only debited and credited have")),
    };
    let allowed = [1, bank_slot, TRANSFERS];
    if let Some(slot) = (0..NAMES.len()).find(|s| !allowed.contains(s) && found.0[*s].is_some()) {
        return Err(format!(
            "a {status} entry with transfers has the field {}: it holds them in its lines",
            NAMES[slot]
        ));
    }
    let bank = found.get(bank_slot)?;
    let steps = found
        .get(TRANSFERS)?
        .split('\n')
        .take(MAX_BATCH_LINES + 1)
        .map(|line| batch_line(line, status, bank))
        .collect::<Result<Vec<_>, _>>()?;
    if steps.len() > MAX_BATCH_LINES {
        return Err(format!("a {status} entry names more than {MAX_BATCH_LINES} transfers"));
    }
    Ok(Batch { steps })
}

/// One line of a batch, `<id> <from> <to> <amount> <balance> <other bank>`, as a step of
/// `status` at `bank`.
fn batch_line<'a>(line: &'a str, status: &str, bank: &'a str) -> Result<Step<'a>, String> {
    let mut parts = line.splitn(6, ' ');
    let mut next = |what: &str| {
        parts.next().filter(|part| !part.is_empty()).ok_or_else(|| {
            format!("transfers: {line:?} has no {what} (id from to amount balance bank)")
        })
    };
    let id = next("id")?;
    let id = TransferId::parse(id)
        .ok_or_else(|| format!("transfers: {id:?} is not r<run>-w<worker>-<seq>"))?;
    let (from, to) = (next("from")?, next("to")?);
    let int = |text: &str, what: &str| {
        text.parse::<i64>()
            .map_err(|_| format!("transfers: {id}'s {what} {text:?} is not an integer"))
    };
    let amount_cents = int(next("amount")?, "amount")?;
    let balance_cents = int(next("balance")?, "balance")?;
    let other = next("bank")?;
    if amount_cents < 1 {
        return Err(format!("transfers: {id} moves {amount_cents} cents"));
    }
    if other == bank {
        return Err(format!("transfers: {id} is inside bank {bank:?}: a batch is between banks"));
    }
    let (phase, from_bank, to_bank) = if status == "debited" {
        (Phase::Debited { from_balance_cents: balance_cents }, bank, other)
    } else {
        (Phase::Credited { to_balance_cents: balance_cents }, other, bank)
    };
    Ok(Step { id, phase, from, to, from_bank, to_bank, amount_cents })
}

fn step<'a>(found: &Found<'a>, id: TransferId, status: &str) -> Result<Step<'a>, String> {
    let step = Step {
        id,
        phase: phase(found, status)?,
        from: found.get(2)?,
        to: found.get(3)?,
        from_bank: found.get(4)?,
        to_bank: found.get(5)?,
        amount_cents: found.int(6)?,
    };
    if step.amount_cents < 1 {
        return Err(format!("{status} step of {} cents", step.amount_cents));
    }
    if step.from_bank == step.to_bank {
        return Err(format!(
            "{status} step inside bank {:?}: steps are for transfers between banks",
            step.from_bank
        ));
    }
    Ok(step)
}

/// The step a status names, with the optional fields it must have (and no others).
fn phase(found: &Found<'_>, status: &str) -> Result<Phase, String> {
    let carries = |from_balance: bool, reason: bool, to_balance: bool| {
        let wanted = [(FROM_BALANCE, from_balance), (REASON, reason), (TO_BALANCE, to_balance)];
        match wanted.into_iter().find(|&(slot, want)| found.0[slot].is_some() != want) {
            Some((slot, true)) => Err(format!("a {status} step has no {}", NAMES[slot])),
            Some((slot, false)) => Err(format!("a {status} step has a {}", NAMES[slot])),
            None => Ok(()),
        }
    };
    match status {
        "debited" => carries(true, false, false)
            .and_then(|()| Ok(Phase::Debited { from_balance_cents: found.int(FROM_BALANCE)? })),
        "credited" => carries(false, false, true)
            .and_then(|()| Ok(Phase::Credited { to_balance_cents: found.int(TO_BALANCE)? })),
        "rejected" => {
            carries(false, true, false).and_then(|()| rejection(found).map(Phase::Rejected))
        }
        "voided" => carries(true, true, false).and_then(|()| {
            Ok(Phase::Voided {
                reason: rejection(found)?,
                from_balance_cents: found.int(FROM_BALANCE)?,
            })
        }),
        other => Err(format!(
            "status {other:?} is neither completed nor cancelled nor a step between banks \
             (debited, credited, rejected, voided, settled)"
        )),
    }
}

/// Why the destination's bank refused a credit: only an unknown account or an overflow.
fn rejection(found: &Found<'_>) -> Result<CancelReason, String> {
    let text = found.get(REASON)?;
    match CancelReason::parse(text) {
        Some(reason @ (CancelReason::UnknownAccount | CancelReason::Overflow)) => Ok(reason),
        _ => Err(format!("a rejection's reason is unknown_account or overflow, not {text:?}")),
    }
}

/// The fields every entry starts with, in stream order.
fn head(
    id: TransferId,
    status: &str,
    [from, to, from_bank, to_bank]: [&str; 4],
    amount_cents: i64,
) -> Vec<(&'static str, String)> {
    vec![
        ("id", id.to_string()),
        ("status", status.to_string()),
        ("from", from.to_string()),
        ("to", to.to_string()),
        ("from_bank", from_bank.to_string()),
        ("to_bank", to_bank.to_string()),
        ("amount", amount_cents.to_string()),
    ]
}

/// The fields of an event, in stream order, for the strategies that write events from Rust.
pub fn fields(event: &Event<'_>) -> Vec<(&'static str, String)> {
    let status = if event.outcome == Outcome::Completed { "completed" } else { "cancelled" };
    let texts = [event.from, event.to, event.from_bank, event.to_bank];
    let mut fields = head(event.id, status, texts, event.amount_cents);
    if let Some(balance) = event.from_balance_cents {
        fields.push(("from_balance", balance.to_string()));
    }
    if let Outcome::Cancelled(reason) = event.outcome {
        fields.push(("reason", reason.as_str().to_string()));
    }
    fields
}

/// The fields of the debits or the credits of one call, in the order the cross-bank script
/// writes them.
pub fn batch_fields(batch: &Batch<'_>) -> Vec<(&'static str, String)> {
    let first = &batch.steps[0];
    let debits = matches!(first.phase, Phase::Debited { .. });
    let (bank_field, bank) =
        if debits { ("from_bank", first.from_bank) } else { ("to_bank", first.to_bank) };
    let lines: Vec<String> = batch
        .steps
        .iter()
        .map(|step| {
            let (balance, other) = match step.phase {
                Phase::Debited { from_balance_cents } => (from_balance_cents, step.to_bank),
                Phase::Credited { to_balance_cents } => (to_balance_cents, step.from_bank),
                _ => panic!("a batch holds debits or credits only, not {step:?}"),
            };
            let (id, from, to, amount) = (step.id, step.from, step.to, step.amount_cents);
            format!("{id} {from} {to} {amount} {balance} {other}")
        })
        .collect();
    vec![
        ("status", first.phase.as_str().to_string()),
        (bank_field, bank.to_string()),
        ("transfers", lines.join("\n")),
    ]
}

/// The fields of a step between banks, in the order the cross-bank script writes them (a debit
/// or credit as an entry of its own, as a lone debit is: the script writes the debits or
/// credits of a batch in one, [`batch_fields`]).
pub fn step_fields(step: &Step<'_>) -> Vec<(&'static str, String)> {
    let texts = [step.from, step.to, step.from_bank, step.to_bank];
    let mut fields = head(step.id, step.phase.as_str(), texts, step.amount_cents);
    match step.phase {
        Phase::Debited { from_balance_cents } => {
            fields.push(("from_balance", from_balance_cents.to_string()));
        }
        Phase::Credited { to_balance_cents } => {
            fields.push(("to_balance", to_balance_cents.to_string()));
        }
        Phase::Rejected(reason) => fields.push(("reason", reason.as_str().to_string())),
        Phase::Voided { reason, from_balance_cents } => {
            fields.push(("from_balance", from_balance_cents.to_string()));
            fields.push(("reason", reason.as_str().to_string()));
        }
    }
    fields
}

/// One transfer in a source bank's outbox, as its value says: `<to_bank>,<from>,<to>,<amount>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outbound<'a> {
    pub to_bank: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub amount_cents: i64,
}

/// Reads an outbox value. IBANs and amounts hold no comma; a bank name may, so it is what is
/// left before the last three commas.
pub fn parse_outbound(value: &str) -> Result<Outbound<'_>, String> {
    let mut parts = value.rsplitn(4, ',');
    let (Some(amount), Some(to), Some(from), Some(to_bank)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("{value:?} is not <to_bank>,<from>,<to>,<amount>"));
    };
    let amount_cents = canonical(amount).filter(|&a: &i64| a >= 1).ok_or_else(|| {
        format!("{value:?} has the amount {amount:?}, not a whole number of cents")
    })?;
    Ok(Outbound { to_bank, from, to, amount_cents })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn sample() -> Event<'static> {
        Event {
            id: TransferId { run: 2, producer: 7, seq: 42 },
            outcome: Outcome::Completed,
            from: "ES1",
            to: "ES2",
            from_bank: "ING",
            to_bank: "Deutsche Bank",
            amount_cents: 150,
            from_balance_cents: Some(50),
        }
    }

    fn assert_round_trips(event: &Event<'_>) {
        let owned = fields(event);
        let back = parse(owned.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()))).unwrap();
        assert_eq!(&back, event);
    }

    #[test]
    fn events_round_trip() {
        let event = sample();
        assert_round_trips(&event);
        let cancelled =
            Event { outcome: Outcome::Cancelled(CancelReason::InsufficientFunds), ..sample() };
        assert_round_trips(&cancelled);
        assert_eq!(event.id.to_string(), "r2-w7-42");
    }

    #[test]
    fn malformed_entries_say_what_is_wrong() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("hello", "world")], "unknown field \"hello\""),
            (&[("id", "x")], "is not r<run>-w<worker>-<seq>"),
            (&[("id", "r1-w1-1"), ("id", "r1-w1-1")], "appears twice"),
            (&[("id", "r1-w1-1"), ("status", "done")], "status \"done\" is neither"),
        ];
        for (entry, expected) in cases {
            let all: Vec<(&str, &str)> = entry.to_vec();
            let err = parse(all.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()))).unwrap_err();
            assert!(err.contains(expected), "{entry:?}: {err}");
        }
        let mut bad = fields(&sample());
        bad[6].1 = "12.5".into();
        let err = parse(bad.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()))).unwrap_err();
        assert!(err.contains("amount \"12.5\""), "{err}");
    }

    #[test]
    fn ids_and_codes_parse_strictly() {
        assert_eq!(TransferId::parse("r1-w2-3"), Some(TransferId { run: 1, producer: 2, seq: 3 }));
        let bad_ids = [
            "r1-w2-0",
            "r01-w2-3",
            "1-w2-3",
            "r1-w2",
            "r1-w2-3-4",
            "r-1-w2-3",
            "r1-w+2-3",
            "r1-w2-03",
            "r1-w2-+3",
            "r1-w2-99999999999999999999",
        ];
        for bad in bad_ids {
            assert_eq!(TransferId::parse(bad), None, "{bad}");
        }
        for code in *b"CFUSAO" {
            assert_eq!(Outcome::from_code(code).unwrap().code(), code);
        }
        assert_eq!(Outcome::from_code(b'Z'), None);
    }

    fn step(phase: Phase) -> Step<'static> {
        Step {
            id: TransferId { run: 1, producer: 3, seq: 17 },
            phase,
            from: "ES1",
            to: "ES2",
            from_bank: "ING",
            to_bank: "Deutsche Bank",
            amount_cents: 300,
        }
    }

    /// `fields` with field `name` set to `value` (added when missing).
    fn with_field(
        fields: &[(&'static str, String)],
        name: &'static str,
        value: &str,
    ) -> Vec<(&'static str, String)> {
        let mut fields = fields.to_vec();
        match fields.iter_mut().find(|(n, _)| *n == name) {
            Some(field) => field.1 = value.to_string(),
            None => fields.push((name, value.to_string())),
        }
        fields
    }

    fn parse_pairs<'a>(pairs: &'a [(&str, String)]) -> Result<Entry<'a>, String> {
        parse_entry(pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    #[test]
    fn steps_are_written_in_the_scripts_field_order_and_read_back() {
        let head = ["id", "status", "from", "to", "from_bank", "to_bank", "amount"];
        let unknown = CancelReason::UnknownAccount;
        let cases = [
            (Phase::Debited { from_balance_cents: 700 }, &["from_balance"][..]),
            (Phase::Credited { to_balance_cents: 300 }, &["to_balance"]),
            (Phase::Rejected(CancelReason::Overflow), &["reason"]),
            (
                Phase::Voided { reason: unknown, from_balance_cents: 1000 },
                &["from_balance", "reason"],
            ),
        ];
        for (phase, tail) in cases {
            let written = step_fields(&step(phase));
            let names: Vec<&str> = written.iter().map(|(n, _)| *n).collect();
            assert_eq!(names, [&head[..], tail].concat(), "{phase:?}");
            assert_eq!(written[1].1, phase.as_str());
            assert_eq!(parse_pairs(&written), Ok(Entry::Step(step(phase))));
            let err = parse(written.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()))).unwrap_err();
            assert!(err.contains("only the sharded layout has"), "{err}");
        }
        assert_eq!(Layout::parse("sharded"), Some(Layout::Sharded));
        assert_eq!(Layout::parse(Layout::Single.as_str()), Some(Layout::Single));
        assert_eq!(Layout::parse("cluster"), None);
    }

    #[test]
    fn malformed_steps_say_what_is_wrong() {
        let debited = step_fields(&step(Phase::Debited { from_balance_cents: 700 }));
        let with = |name, value: &str| with_field(&debited, name, value);
        let without = |name: &str| debited.iter().filter(|(n, _)| *n != name).cloned().collect();
        let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
            (without("from_balance"), "a debited step has no from_balance"),
            (with("to_balance", "5"), "a debited step has a to_balance"),
            (with("status", "credited"), "a credited step has a from_balance"),
            (with("to_bank", "ING"), "debited step inside bank \"ING\""),
            (with("amount", "0"), "debited step of 0 cents"),
            (with("status", "settled"), "a settlement has the field id"),
            (with("ids", "r1-w3-17"), "a debited entry has ids: only a settlement has"),
            (
                with("status", "completed")
                    .into_iter()
                    .chain([("to_balance", "1".into())])
                    .collect(),
                "a completed transfer has a to_balance",
            ),
        ];
        for (fields, expected) in cases {
            let err = parse_pairs(&fields).unwrap_err();
            assert!(err.contains(expected), "{fields:?}: {err}");
        }
        let mut rejected = step_fields(&step(Phase::Rejected(CancelReason::Overflow)));
        rejected[7].1 = "insufficient_funds".into();
        let err = parse_pairs(&rejected).unwrap_err();
        assert!(
            err.contains(
                "a rejection's reason is unknown_account or overflow, not \"insufficient_funds\""
            ),
            "{err}"
        );
    }

    #[test]
    fn the_debits_or_credits_of_a_call_read_back_as_steps_and_bad_ones_say_why() {
        let at = |seq, phase, from_bank, to_bank| Step {
            id: TransferId { run: 2, producer: 1, seq },
            phase,
            from_bank,
            to_bank,
            ..step(phase)
        };
        let credited = |seq, from_bank, to_balance_cents| {
            at(seq, Phase::Credited { to_balance_cents }, from_bank, "Deutsche Bank")
        };
        let credits = Batch { steps: vec![credited(4, "ING", 300), credited(5, "Banco Sol", 600)] };
        let written = batch_fields(&credits);
        let names: Vec<&str> = written.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["status", "to_bank", "transfers"]);
        assert_eq!(written[2].1, "r2-w1-4 ES1 ES2 300 300 ING\nr2-w1-5 ES1 ES2 300 600 Banco Sol");
        let parsed = parse_pairs(&written).unwrap();
        assert_eq!(parsed.runs().collect::<Vec<_>>(), [2, 2]);
        assert_eq!(parsed, Entry::Batch(credits));

        let debited =
            |seq, to_bank| at(seq, Phase::Debited { from_balance_cents: 700 }, "ING", to_bank);
        let debits = Batch { steps: vec![debited(6, "Deutsche Bank"), debited(7, "Banco Sol")] };
        let written = batch_fields(&debits);
        assert_eq!((written[0].1.as_str(), written[1].0), ("debited", "from_bank"));
        assert_eq!(parse_pairs(&written), Ok(Entry::Batch(debits)));

        let one = batch_fields(&Batch { steps: vec![credited(4, "ING", 300)] });
        let with = |name, value: &str| with_field(&one, name, value);
        let cases = [
            (with("transfers", "r2-w1-4 ES1 ES2 300 300"), "has no bank"),
            (with("transfers", "r2-w1-4 ES1 ES2 0 300 ING"), "r2-w1-4 moves 0 cents"),
            (with("transfers", "r2-w1-4 ES1 ES2 1e3 300 ING"), "amount \"1e3\" is not an integer"),
            (with("transfers", "r2-w1-4 ES1 ES2 300 300 Deutsche Bank"), "inside bank"),
            (with("transfers", "w1-4 ES1 ES2 300 300 ING"), "\"w1-4\" is not r<run>"),
            (with("transfers", "r2-w1-4 ES1 ES2 300 300 ING\n"), "\"\" has no id"),
            (with("status", "rejected"), "a rejected entry has transfers"),
            (with("status", "debited"), "a debited entry with transfers has the field to_bank"),
            (with("amount", "300"), "a credited entry with transfers has the field amount"),
            (
                with("transfers", &vec!["r2-w1-4 ES1 ES2 300 300 ING"; 129].join("\n")),
                "a credited entry names more than 128 transfers",
            ),
        ];
        for (fields, expected) in cases {
            let err = parse_pairs(&fields).unwrap_err();
            assert!(err.contains(expected), "{fields:?}: {err}");
        }
    }

    #[test]
    fn settlements_name_their_transfers_and_nothing_else() {
        let fields = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, String)> {
            let base = [("status", "settled"), ("from_bank", "ING"), ("amount", "450")];
            base.iter().chain(extra).map(|(n, v)| (*n, v.to_string())).collect()
        };
        let two = fields(&[("ids", "r1-w3-17 r2-w1-4")]);
        let ids = vec![
            TransferId { run: 1, producer: 3, seq: 17 },
            TransferId { run: 2, producer: 1, seq: 4 },
        ];
        let settlement = Settlement { from_bank: "ING", amount_cents: 450, ids };
        assert_eq!(parse_pairs(&two), Ok(Entry::Settlement(settlement)));
        assert_eq!(parse_pairs(&two).unwrap().runs().count(), 0);
        let err = parse(two.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()))).unwrap_err();
        assert!(err.contains("status \"settled\" is a step between banks"), "{err}");
        let cases: [(&[(&str, &str)], &str); 5] = [
            (&[("ids", "r1-w3-17,r1-w3-18")], "ids: \"r1-w3-17,r1-w3-18\" is not"),
            (&[("ids", "r1-w3-17  r1-w3-18")], "ids: \"\" is not"),
            (&[("ids", "r1-w3-17"), ("to_bank", "BBVA")], "a settlement has the field to_bank"),
            (&[("ids", "r1-w3-17"), ("from_balance", "5")], "has the field from_balance"),
            (&[], "field ids is missing"),
        ];
        for (extra, expected) in cases {
            let err = parse_pairs(&fields(extra)).unwrap_err();
            assert!(err.contains(expected), "{extra:?}: {err}");
        }
        let mut zero = fields(&[("ids", "r1-w3-17")]);
        zero[2].1 = "0".into();
        assert!(parse_pairs(&zero).unwrap_err().contains("a settlement of 0 cents"));
    }

    #[test]
    fn outbox_values_read_back_even_with_a_comma_in_the_bank_name() {
        let read = parse_outbound("Deutsche, Bank,ES1,ES2,300").unwrap();
        assert_eq!(
            read,
            Outbound { to_bank: "Deutsche, Bank", from: "ES1", to: "ES2", amount_cents: 300 }
        );
        for bad in
            ["ING,ES1,300", "ING,ES1,ES2,0", "ING,ES1,ES2,03", "ING,ES1,ES2,-5", "ING,ES1,ES2,"]
        {
            let err = parse_outbound(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
    }

    /// Valid steps: an amount of at least a cent, between two different banks.
    fn steps() -> impl Strategy<Value = (TransferId, Phase, [String; 4], i64)> {
        let reason =
            prop::sample::select(vec![CancelReason::UnknownAccount, CancelReason::Overflow]);
        let phase = prop_oneof![
            any::<i64>().prop_map(|b| Phase::Debited { from_balance_cents: b }),
            any::<i64>().prop_map(|b| Phase::Credited { to_balance_cents: b }),
            reason.clone().prop_map(Phase::Rejected),
            (reason, any::<i64>())
                .prop_map(|(reason, b)| Phase::Voided { reason, from_balance_cents: b }),
        ];
        let texts = [any::<String>(), any::<String>(), "[A-Z]{1,8}", "[a-z]{1,8}"];
        (transfer_id(), phase, texts, 1..=i64::MAX)
    }

    /// The owned parts of an event; [`Parts::event`] borrows its texts.
    #[derive(Debug, Clone)]
    struct Parts {
        id: TransferId,
        outcome: Outcome,
        texts: [String; 4],
        amount_cents: i64,
        from_balance_cents: Option<i64>,
    }

    impl Parts {
        fn event(&self) -> Event<'_> {
            let [from, to, from_bank, to_bank] = &self.texts;
            Event {
                id: self.id,
                outcome: self.outcome,
                from,
                to,
                from_bank,
                to_bank,
                amount_cents: self.amount_cents,
                from_balance_cents: self.from_balance_cents,
            }
        }
    }

    fn transfer_id() -> impl Strategy<Value = TransferId> {
        (any::<u64>(), any::<u32>(), 1..=u64::MAX).prop_map(|(run, producer, seq)| TransferId {
            run,
            producer,
            seq,
        })
    }

    /// Valid events: a completed transfer moves at least a cent and reports the source balance.
    fn parts() -> impl Strategy<Value = Parts> {
        let reason = prop::sample::select(REASONS.map(|r| r.0).to_vec());
        let completed = (1..=i64::MAX, any::<i64>().prop_map(Some))
            .prop_map(|(amount, balance)| (Outcome::Completed, amount, balance));
        let cancelled = (reason, any::<i64>(), any::<Option<i64>>())
            .prop_map(|(reason, amount, balance)| (Outcome::Cancelled(reason), amount, balance));
        let texts = [any::<String>(), any::<String>(), any::<String>(), any::<String>()];
        (transfer_id(), prop_oneof![completed, cancelled], texts).prop_map(
            |(id, (outcome, amount_cents, from_balance_cents), texts)| Parts {
                id,
                outcome,
                texts,
                amount_cents,
                from_balance_cents,
            },
        )
    }

    /// Field names: mostly the real ones, so that parsing gets past the name check.
    fn name() -> impl Strategy<Value = Vec<u8>> {
        let real = prop::sample::select(NAMES.to_vec()).prop_map(|n| n.as_bytes().to_vec());
        prop_oneof![4 => real, 1 => vec(any::<u8>(), 0..12)]
    }

    /// Field values: bytes, or texts that some field accepts, numbers and ids in particular.
    fn value() -> impl Strategy<Value = Vec<u8>> {
        let words = ["completed", "cancelled", "overflow", "same_account", "r1-w2-3", "0", "-1"];
        prop_oneof![
            vec(any::<u8>(), 0..24),
            prop::sample::select(words.to_vec()).prop_map(|w| w.as_bytes().to_vec()),
            any::<i64>().prop_map(|n| n.to_string().into_bytes()),
            transfer_id().prop_map(|id| id.to_string().into_bytes()),
            "[r0-9w+-]{0,24}".prop_map(String::into_bytes),
        ]
    }

    /// The fields of a valid event with some values replaced, one field dropped or one added:
    /// entries close enough to valid ones to reach every check of `parse`.
    fn perturbed() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
        let replacements = vec(proptest::option::weighted(0.15, value()), NAMES.len());
        let dropped = proptest::option::weighted(0.2, any::<prop::sample::Index>());
        let added = proptest::option::weighted(0.2, (name(), value()));
        (parts(), replacements, dropped, added).prop_map(|(parts, replacements, dropped, added)| {
            let mut entry: Vec<(Vec<u8>, Vec<u8>)> = fields(&parts.event())
                .into_iter()
                .zip(replacements)
                .map(|((n, v), new)| (n.as_bytes().to_vec(), new.unwrap_or(v.into_bytes())))
                .collect();
            if let Some(at) = dropped {
                entry.remove(at.index(entry.len()));
            }
            entry.extend(added);
            entry
        })
    }

    proptest! {
        #[test]
        fn arbitrary_fields_give_an_event_or_an_error(
            entry in prop_oneof![vec((name(), value()), 0..20), perturbed()],
        ) {
            let parsed = parse(entry.iter().map(|(n, v)| (&n[..], &v[..])));
            if let Ok(event) = parsed {
                assert_round_trips(&event);
            }
        }

        #[test]
        fn valid_events_round_trip_through_their_fields(parts in parts()) {
            assert_round_trips(&parts.event());
        }

        #[test]
        fn valid_steps_round_trip_and_perturbed_ones_give_a_step_or_an_error(
            (id, phase, [from, to, from_bank, to_bank], amount_cents) in steps(),
            replaced in (any::<prop::sample::Index>(), value()),
        ) {
            let step = Step { id, phase, from: &from, to: &to, from_bank: &from_bank, to_bank: &to_bank, amount_cents };
            let mut written = step_fields(&step);
            prop_assert_eq!(parse_pairs(&written), Ok(Entry::Step(step)));
            let slot = replaced.0.index(written.len());
            written[slot].1 = String::from_utf8_lossy(&replaced.1).into_owned();
            if let Ok(Entry::Step(back)) = parse_pairs(&written) {
                let again = step_fields(&back);
                prop_assert_eq!(parse_pairs(&again), Ok(Entry::Step(back)));
            }
        }

        #[test]
        fn transfer_ids_round_trip_through_display(id in transfer_id()) {
            prop_assert_eq!(TransferId::parse(&id.to_string()), Some(id));
        }

        #[test]
        fn any_text_that_parses_as_an_id_is_written_the_same_way(
            text in prop_oneof![any::<String>(), "r[0-9]{0,21}-w[0-9]{0,11}-[+0-9]{0,21}"],
        ) {
            if let Some(id) = TransferId::parse(&text) {
                prop_assert_eq!(id.to_string(), text);
            }
        }
    }
}
