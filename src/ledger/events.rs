//! The event stream's entries: one per transfer, completed or cancelled, and their exact fields.
//!
//! | field | value |
//! |---|---|
//! | `id` | transfer id `r<run>-w<worker>-<seq>`: run number, worker (producer) number, sequence from 1 |
//! | `status` | `completed` or `cancelled` |
//! | `from`, `to` | source and destination IBAN |
//! | `from_bank`, `to_bank` | their banks |
//! | `amount` | cents, an integer >= 1 |
//! | `from_balance` | the source balance after the debit (completed) or as seen (cancelled); absent when the source is unknown |
//! | `reason` | cancelled only: `insufficient_funds`, `unknown_account`, `same_account`, `bad_amount`, `overflow` |
//!
//! Parsing is a pure function, so `consume` can report a malformed entry instead of crashing.

use std::fmt;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

/// The names of an entry's fields; [`parse`] keeps each value in the slot of its name.
const NAMES: [&str; 9] =
    ["id", "status", "from", "to", "from_bank", "to_bank", "amount", "from_balance", "reason"];

/// Builds an event from a stream entry's fields; the error names what is wrong.
pub fn parse<'a>(
    fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
) -> Result<Event<'a>, String> {
    const MAX_FIELDS: usize = 16;
    let mut found: [Option<&str>; 9] = [None; 9];
    for (count, (name, value)) in fields.into_iter().enumerate() {
        if count == MAX_FIELDS {
            return Err(format!("more than {MAX_FIELDS} fields"));
        }
        let slot = NAMES
            .iter()
            .position(|n| n.as_bytes() == name)
            .ok_or_else(|| format!("unknown field {:?}", String::from_utf8_lossy(name)))?;
        let name = NAMES[slot];
        let value = std::str::from_utf8(value).map_err(|_| format!("field {name} is not UTF-8"))?;
        if found[slot].replace(value).is_some() {
            return Err(format!("field {name} appears twice"));
        }
    }
    let get = |i: usize| found[i].ok_or_else(|| format!("field {} is missing", NAMES[i]));
    let id = TransferId::parse(get(0)?).ok_or_else(|| {
        format!("id {:?} is not r<run>-w<worker>-<seq>", found[0].unwrap_or_default())
    })?;
    let outcome = match (get(1)?, found[8]) {
        ("completed", None) => Outcome::Completed,
        ("cancelled", Some(reason)) => Outcome::Cancelled(
            CancelReason::parse(reason)
                .ok_or_else(|| format!("unknown cancel reason {reason:?}"))?,
        ),
        ("completed", Some(_)) => return Err("a completed transfer has a reason".to_string()),
        ("cancelled", None) => return Err("a cancelled transfer has no reason".to_string()),
        (other, _) => {
            return Err(format!("status {other:?} is neither completed nor cancelled"));
        }
    };
    let amount_cents: i64 = get(6)?
        .parse()
        .map_err(|_| format!("amount {:?} is not an integer", found[6].unwrap_or_default()))?;
    if amount_cents < 1 && outcome == Outcome::Completed {
        return Err(format!("completed transfer of {amount_cents} cents"));
    }
    let from_balance_cents = match found[7] {
        None => None,
        Some(text) => {
            Some(text.parse().map_err(|_| format!("from_balance {text:?} is not an integer"))?)
        }
    };
    if outcome == Outcome::Completed && from_balance_cents.is_none() {
        return Err("field from_balance is missing".to_string());
    }
    Ok(Event {
        id,
        outcome,
        from: get(2)?,
        to: get(3)?,
        from_bank: get(4)?,
        to_bank: get(5)?,
        amount_cents,
        from_balance_cents,
    })
}

/// The fields of an event, in stream order, for the strategies that write events from Rust.
pub fn fields(event: &Event<'_>) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("id", event.id.to_string()),
        (
            "status",
            if event.outcome == Outcome::Completed { "completed" } else { "cancelled" }.to_string(),
        ),
        ("from", event.from.to_string()),
        ("to", event.to.to_string()),
        ("from_bank", event.from_bank.to_string()),
        ("to_bank", event.to_bank.to_string()),
        ("amount", event.amount_cents.to_string()),
    ];
    if let Some(balance) = event.from_balance_cents {
        fields.push(("from_balance", balance.to_string()));
    }
    if let Outcome::Cancelled(reason) = event.outcome {
        fields.push(("reason", reason.as_str().to_string()));
    }
    fields
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
