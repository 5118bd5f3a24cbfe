//! The transfer script on a real server: idempotent retries, all-or-nothing transfers, and the
//! checks it makes before it writes.

mod common;

use common::*;
use interbank::ledger::events::{CancelReason, Outcome};
use interbank::store::error::{BAD_CALL_CODE, CallError, StopCode};
use interbank::store::keys::Keys;
use interbank::store::script::{BatchReply, Scope, TransferRequest, TransferScript};
use interbank::store::target::Target;

const BANKS: &str = "bank\nCaixaBank\nKutxa\n";
const A: &str = "ES9121000418450200051332";
const B: &str = "ES0804244907769990166862";
const C: &str = "ES7921000813610123456789";

struct Setup {
    redis: RedisServer,
    keys: Keys,
    banks: Vec<String>,
    conn: redis::aio::ConnectionManager,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("banks.csv"), BANKS).unwrap();
    let accounts = format!(
        "iban,bank,name,ammount\n{A},CaixaBank,Ana,1000\n{B},Kutxa,Bo,500\n{C},CaixaBank,Cy,0\n"
    );
    std::fs::write(dir.path().join("accounts.csv"), accounts).unwrap();
    let file = interbank::ledger::accounts::load(&dir.path().join("accounts.csv"), None).unwrap();
    let keys = Keys::new("t").unwrap();
    let ours = interbank::store::keys::KeyLayout::Ours;
    interbank::commands::init::init(&Target::new(&redis.url()), &keys, &file, ours, false)
        .await
        .unwrap();
    let conn = interbank::store::connection::manager(&Target::new(&redis.url())).await.unwrap();
    Setup { redis, keys, banks: file.banks, conn, _dir: dir }
}

fn transfer<'a>(from: &'a str, to: &'a str, amount_cents: i64) -> TransferRequest<'a> {
    let bank = |iban: &str| usize::from(iban == B);
    TransferRequest { from_bank: bank(from), to_bank: bank(to), from, to, amount_cents }
}

impl Setup {
    /// Submits transfers of producer `r1-w1` from sequence `first_seq`.
    async fn submit(
        &mut self,
        first_seq: u64,
        batch: &[TransferRequest<'_>],
    ) -> Result<BatchReply, CallError> {
        let script = TransferScript::default();
        let scope = Scope::Global;
        script
            .submit(&mut self.conn, &self.keys, &self.banks, scope, "r1-w1", first_seq, batch)
            .await
    }

    fn get(&self, key: &str) -> String {
        self.redis.cli(&["GET", key]).trim().to_string()
    }

    fn balance(&self, iban: &str) -> String {
        let bank = if iban == B { "Kutxa" } else { "CaixaBank" };
        self.get(&self.keys.account(bank, iban))
    }

    fn events(&self) -> u64 {
        self.redis.cli(&["XLEN", "t:events"]).trim().parse().unwrap()
    }
}

#[tokio::test]
async fn a_retried_transfer_is_applied_once_and_answered_with_its_first_outcome() {
    let mut s = setup().await;
    let batch = [transfer(A, B, 300)];
    let first = s.submit(1, &batch).await.unwrap();
    assert_eq!(first.outcomes, vec![Outcome::Completed]);
    // The same id again, even with other contents: answered from the record, not applied.
    let again = s.submit(1, &[transfer(A, B, 999_999)]).await.unwrap();
    assert_eq!(again, first);
    assert_eq!((s.balance(A), s.balance(B)), ("700".to_string(), "800".to_string()));
    assert_eq!(s.get("t:{CaixaBank}:balance"), "-300");
    assert_eq!(s.get("t:{Kutxa}:balance"), "300");
    assert_eq!(s.redis.cli(&["HGET", "t:{CaixaBank}:interbank", "Kutxa"]).trim(), "-300");
    assert_eq!(s.redis.cli(&["HGET", "t:{Kutxa}:interbank", "CaixaBank"]).trim(), "300");
    assert_eq!(s.events(), 1);

    // A cancelled transfer's first outcome is kept too, even once funds would be there.
    let short = s.submit(2, &[transfer(C, A, 50)]).await.unwrap();
    assert_eq!(short.outcomes, vec![Outcome::Cancelled(CancelReason::InsufficientFunds)]);
    s.redis.cli(&["SET", &s.keys.account("CaixaBank", C), "100"]);
    let retried = s.submit(2, &[transfer(C, A, 50)]).await.unwrap();
    assert_eq!(retried, short);
    assert_eq!(s.events(), 2);

    // A batch that overlaps what was applied: the applied part is answered, the rest applied.
    let overlap = [transfer(A, B, 300), transfer(C, A, 50), transfer(B, A, 10)];
    let reply = s.submit(1, &overlap).await.unwrap();
    assert_eq!(
        reply.outcomes,
        vec![
            Outcome::Completed,
            Outcome::Cancelled(CancelReason::InsufficientFunds),
            Outcome::Completed
        ]
    );
    assert_eq!(s.events(), 3);
    assert_eq!(s.get("t:producer:r1-w1"), "CFC");
}

#[tokio::test]
async fn a_sequence_gap_is_refused_before_anything_is_written() {
    let mut s = setup().await;
    let err = s.submit(2, &[transfer(A, B, 1)]).await.unwrap_err();
    assert!(matches!(err, CallError::SequenceGap(_)), "{err:?}");
    assert!(
        err.to_string().contains("sequence gap for producer r1-w1: expected at most 1, got 2"),
        "{err}"
    );
    assert_eq!(s.events(), 0);
    assert_eq!(s.balance(A), "1000");
}

#[tokio::test]
async fn every_cancel_reason_changes_no_balance_and_is_evented() {
    let mut s = setup().await;
    let before = (s.balance(A), s.balance(B), s.balance(C));
    let unknown = "ES6000491500051234567892";
    let cases = [
        (transfer(C, A, 1), CancelReason::InsufficientFunds),
        (transfer(A, A, 1), CancelReason::SameAccount),
        (transfer(A, unknown, 1), CancelReason::UnknownAccount),
        (transfer(A, B, 0), CancelReason::BadAmount),
    ];
    for (seq, (request, reason)) in (1..).zip(cases) {
        let reply = s.submit(seq, &[request]).await.unwrap();
        assert_eq!(reply.outcomes, vec![Outcome::Cancelled(reason)]);
    }
    // A destination that would pass 2^53 - 1 cents is refused, not rounded.
    s.redis.cli(&["SET", &s.keys.account("Kutxa", B), "9007199254740991"]);
    let reply = s.submit(5, &[transfer(A, B, 1)]).await.unwrap();
    assert_eq!(reply.outcomes, vec![Outcome::Cancelled(CancelReason::Overflow)]);
    s.redis.cli(&["SET", &s.keys.account("Kutxa", B), &before.1]);
    assert_eq!((s.balance(A), s.balance(B), s.balance(C)), before);
    assert_eq!(s.events(), 5);
    let last = s.redis.cli(&["XREVRANGE", "t:events", "+", "-", "COUNT", "1"]);
    assert!(last.contains("overflow") && last.contains("r1-w1-5"), "{last}");
}

#[tokio::test]
async fn a_write_that_fails_midway_is_undone_whole() {
    let mut s = setup().await;
    // The destination bank's interbank key has the wrong type: the third write of the transfer fails.
    s.redis.cli(&["DEL", "t:{Kutxa}:interbank"]);
    s.redis.cli(&["RPUSH", "t:{Kutxa}:interbank", "oops"]);
    let before = s.redis.dump();
    let reply = s.submit(1, &[transfer(A, B, 100)]).await.unwrap();
    assert!(reply.outcomes.is_empty());
    let stop = reply.stop.unwrap();
    assert_eq!(stop.code, StopCode::Failed);
    let error = stop.message;
    assert!(error.contains("t:{Kutxa}:interbank") && error.contains("WRONGTYPE"), "{error}");
    assert_eq!(s.redis.dump(), before, "nothing may be left of a failed transfer");

    // A batch whose writes fail is undone whole, the transfers before the failing one included.
    let batch = [transfer(A, C, 100), transfer(A, B, 100)];
    let reply = s.submit(1, &batch).await.unwrap();
    assert!(reply.outcomes.is_empty());
    let stop = reply.stop.unwrap();
    assert_eq!(stop.code, StopCode::Failed);
    assert!(stop.message.contains("HINCRBY t:{Kutxa}:interbank"), "{}", stop.message);
    assert_eq!(s.redis.dump(), before, "nothing may be left of a failed batch");

    // A source that cannot be read stops the batch there: the transfers before it are applied.
    s.redis.cli(&["DEL", "t:{Kutxa}:interbank"]);
    s.redis.cli(&["SET", &s.keys.account("CaixaBank", C), "12.5"]);
    let batch = [transfer(A, B, 100), transfer(C, A, 1), transfer(A, B, 1)];
    let reply = s.submit(1, &batch).await.unwrap();
    assert_eq!(reply.outcomes, vec![Outcome::Completed]);
    let stop = reply.stop.unwrap();
    assert_eq!(stop.code, StopCode::NotABalance);
    assert!(stop.message.contains("holds 12.5, not an integer balance"), "{}", stop.message);
    assert_eq!(s.get("t:producer:r1-w1"), "C");
    assert_eq!((s.balance(A), s.balance(B)), ("900".to_string(), "600".to_string()));
    assert_eq!(s.events(), 1);
}

#[tokio::test]
async fn a_batch_sees_the_balances_its_earlier_transfers_left() {
    let mut s = setup().await;
    // C starts empty: it can pay on only once A has paid it, and only what it received.
    let batch = [transfer(C, B, 50), transfer(A, C, 300), transfer(C, B, 200), transfer(C, B, 200)];
    let reply = s.submit(1, &batch).await.unwrap();
    let insufficient = Outcome::Cancelled(CancelReason::InsufficientFunds);
    assert_eq!(
        reply.outcomes,
        vec![insufficient, Outcome::Completed, Outcome::Completed, insufficient]
    );
    assert_eq!(
        (s.balance(A), s.balance(B), s.balance(C)),
        ("700".into(), "700".into(), "100".into())
    );
    assert_eq!(s.get("t:{CaixaBank}:balance"), "-200");
    assert_eq!(s.get("t:{Kutxa}:balance"), "200");
    assert_eq!(s.events(), 4);
}

#[tokio::test]
async fn a_flushed_script_cache_is_reloaded_transparently() {
    let mut s = setup().await;
    s.submit(1, &[transfer(A, B, 1)]).await.unwrap();
    s.redis.cli(&["SCRIPT", "FLUSH"]);
    let reply = s.submit(2, &[transfer(A, B, 1)]).await.unwrap();
    assert_eq!(reply.outcomes, vec![Outcome::Completed]);
}

#[tokio::test]
async fn malformed_calls_are_refused_before_anything_is_written() {
    let mut s = setup().await;
    let script = redis::Script::new(TransferScript::source());
    let k = &s.keys;
    let banks = [
        k.bank_balance("CaixaBank"),
        k.interbank("CaixaBank"),
        k.bank_balance("Kutxa"),
        k.interbank("Kutxa"),
    ];
    let accounts = [k.account("CaixaBank", A), k.account("Kutxa", B)];
    let keys: Vec<String> = [k.events(), k.producer("r1-w1")]
        .into_iter()
        .chain(banks.iter().cloned())
        .chain(accounts.iter().cloned())
        .collect();
    let args = |seq: &str, bank_count: &str, n: &str, from_bank: &str, to_bank: &str| {
        vec![seq, bank_count, "CaixaBank", "Kutxa", n, from_bank, to_bank, A, B, "100"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<String>>()
    };
    let single: Vec<String> =
        ["1", "CaixaBank", "Kutxa", A, B, "100"].into_iter().map(String::from).collect();
    let before = s.redis.dump();
    let cases: Vec<(Vec<String>, Vec<String>, &str)> = vec![
        (keys.clone(), args("01", "2", "1", "1", "2"), "bad sequence"),
        (keys.clone(), args("0", "2", "1", "1", "2"), "bad sequence"),
        (keys.clone(), args("1", "two", "1", "1", "2"), "bad bank count"),
        (keys.clone(), args("1", "2", "2", "1", "2"), "does not match the batch"),
        (keys.clone(), args("1", "2", "1", "1", "3"), "bank index out of range in transfer 1"),
        (keys.clone(), args("1", "2", "1", "0", "2"), "bank index out of range in transfer 1"),
        (keys[..7].to_vec(), args("1", "2", "1", "1", "2"), "does not match the batch"),
        (
            keys.clone(),
            [args("1", "2", "1", "1", "2"), vec!["extra".to_string()]].concat(),
            "does not match the batch",
        ),
        // One transfer: seven arguments and exactly eight keys.
        (keys[..7].to_vec(), single.clone(), "one transfer takes 8 keys"),
        (
            [keys.clone(), vec!["t:extra".to_string()]].concat(),
            single.clone(),
            "one transfer takes 8 keys",
        ),
        (keys.clone(), [&["02".to_string()], &single[1..]].concat(), "bad sequence"),
    ];
    for (call_keys, call_args, expected) in cases {
        let mut call = script.prepare_invoke();
        for key in &call_keys {
            call.key(key);
        }
        call.arg("r1-w1");
        for arg in &call_args {
            call.arg(arg);
        }
        let err = call.invoke_async::<Vec<String>>(&mut s.conn).await.unwrap_err();
        assert_eq!(err.code(), Some(BAD_CALL_CODE), "{call_args:?}: {err}");
        assert!(err.to_string().contains(expected), "{call_args:?}: {err}");
        assert_eq!(s.redis.dump(), before, "{call_args:?} wrote something");
    }

    // A call that names two banks but moves money inside the first takes the general path.
    let mut call = script.prepare_invoke();
    for key in &keys {
        call.key(key);
    }
    call.arg("r1-w1");
    for arg in args("1", "2", "1", "1", "1") {
        call.arg(arg);
    }
    let reply = call.invoke_async::<String>(&mut s.conn).await.unwrap();
    assert_eq!(reply, "C");
    assert_eq!((s.balance(A), s.balance(B)), ("900".to_string(), "600".to_string()));
    assert_eq!(s.get("t:{CaixaBank}:balance"), "0", "a move inside one bank leaves its balance");
}
