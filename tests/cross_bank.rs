//! The three steps of a cross-bank transfer and the recovery pass, each called on its own on a
//! one-node Redis Cluster (which refuses any call whose keys span slots): every step is applied
//! once however often it is sent, a rejection refunds the source, and money in flight is always
//! in the source's outbox and in-flight total. And what a wait for a replica makes of a failover.

mod common;

use common::cluster::RedisCluster;
use interbank::commands::recover::recover_banks;
use interbank::commands::trim::{Trimmed, trim_inboxes};
use interbank::ledger::events::{self, CancelReason, Entry, TransferId, parse_entry};
use interbank::store::connection::Connection;
use interbank::store::cross_bank::{self, Credit, CrossBankScript, Debit, InFlight, Settlement};
use interbank::store::error::{BAD_CALL_CODE, CallError};
use interbank::store::keys::{ANCHOR_FIELD, Keys};
use interbank::store::target::Target;

const A: &str = "ES9121000418450200051332";
const B: &str = "ES0804244907769990166862";
const UNKNOWN: &str = "ES6000491500051234567892";

struct Setup {
    cluster: RedisCluster,
    conn: Connection,
    keys: Keys,
    script: CrossBankScript,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let cluster = RedisCluster::single();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("banks.csv"), "bank\nCaixaBank\nKutxa\n").unwrap();
    let accounts = format!("iban,bank,name,ammount\n{A},CaixaBank,Ana,1000\n{B},Kutxa,Bo,500\n");
    std::fs::write(dir.path().join("accounts.csv"), accounts).unwrap();
    let file = interbank::ledger::accounts::load(&dir.path().join("accounts.csv"), None).unwrap();
    let target = Target::new(&cluster.url());
    let keys = Keys::new("t").unwrap();
    interbank::commands::init::init(
        &target,
        &keys,
        &file,
        interbank::store::keys::KeyLayout::Ours,
        false,
    )
    .await
    .unwrap();
    let conn = Connection::open(&target).await.unwrap();
    assert!(conn.is_cluster());
    Setup { cluster, conn, keys, script: CrossBankScript::default(), _dir: dir }
}

fn transfer(id: &str, to: &str, amount_cents: i64) -> InFlight {
    InFlight {
        from_bank: "CaixaBank".into(),
        to_bank: "Kutxa".into(),
        id: id.into(),
        from: A.into(),
        to: to.into(),
        amount_cents,
    }
}

impl Setup {
    fn get(&self, key: &str) -> String {
        self.cluster.nodes[0].cli(&["GET", key]).trim().to_string()
    }

    fn balances(&self) -> (String, String) {
        (self.get(&self.keys.account("CaixaBank", A)), self.get(&self.keys.account("Kutxa", B)))
    }

    /// A hash's fields and values, one per line, by field, without the anchor `init` wrote
    /// (`about`).
    fn entries(&self, key: &str) -> String {
        let all = self.cluster.nodes[0].cli(&["HGETALL", key]);
        let lines: Vec<&str> = all.trim().lines().collect();
        let mut pairs: Vec<&[&str]> =
            lines.chunks(2).filter(|pair| pair[0] != ANCHOR_FIELD).collect();
        pairs.sort();
        pairs.concat().join("\n")
    }

    fn outbox(&self) -> String {
        self.entries(&self.keys.outbox("CaixaBank"))
    }

    /// The fields of the newest entry of `bank`'s stream.
    async fn newest_entry(&mut self, bank: &str) -> Vec<(String, String)> {
        let newest: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
            .arg(self.keys.events_of(bank))
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.conn)
            .await
            .unwrap();
        newest.into_iter().next().expect("the stream has an entry").1
    }

    fn events(&self, bank: &str) -> String {
        self.cluster.nodes[0].cli(&["XLEN", &self.keys.events_of(bank)]).trim().to_string()
    }
}

#[tokio::test]
async fn outboxes_and_inboxes_stay_hashtables_when_they_empty() {
    let mut s = setup().await;
    let t = transfer("r1-w1-1", B, 300);
    s.script.debit(&mut s.conn, &s.keys, "r1-w1", 1, &t).await.unwrap();
    let credit = s.script.credit(&mut s.conn, &s.keys, 0, &t).await.unwrap();
    s.script.settle(&mut s.conn, &s.keys, &t, credit).await.unwrap();
    // A listpack is searched field by field; the anchor keeps every lookup O(1), and the
    // settled outbox, empty of transfers, keeps its encoding for the next ones.
    for key in [s.keys.outbox("CaixaBank"), s.keys.inbox("Kutxa")] {
        let encoding = s.cluster.nodes[0].cli(&["OBJECT", "ENCODING", &key]);
        assert_eq!(encoding.trim(), "hashtable", "{key}");
    }
    assert_eq!(s.outbox(), "");
}

#[tokio::test]
async fn each_step_is_applied_once_however_often_it_is_sent() {
    let mut s = setup().await;
    let t = transfer("r1-w1-1", B, 300);
    for _ in 0..2 {
        let debit = s.script.debit(&mut s.conn, &s.keys, "r1-w1", 1, &t).await.unwrap();
        assert_eq!(debit, Debit::Debited);
    }
    assert_eq!(s.balances(), ("700".into(), "500".into()));
    assert_eq!(s.get(&s.keys.in_flight("CaixaBank")), "300");
    assert_eq!(s.outbox(), format!("r1-w1-1\nKutxa,{A},{B},300"));
    assert_eq!(
        cross_bank::in_flight(&mut s.conn, &s.keys, "CaixaBank")
            .await
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect::<Vec<_>>(),
        vec![t.clone()]
    );

    for _ in 0..2 {
        assert_eq!(s.script.credit(&mut s.conn, &s.keys, 0, &t).await.unwrap(), Credit::Credited);
    }
    assert_eq!(s.balances(), ("700".into(), "800".into()));
    let settled = s.script.settle(&mut s.conn, &s.keys, &t, Credit::Credited).await.unwrap();
    assert_eq!(settled, Settlement::Settled);
    let again = s.script.settle(&mut s.conn, &s.keys, &t, Credit::Credited).await.unwrap();
    assert_eq!(again, Settlement::AlreadySettled);
    assert_eq!(s.get(&s.keys.in_flight("CaixaBank")), "0");
    assert_eq!(s.outbox(), "");
    assert_eq!(s.get(&s.keys.bank_balance("CaixaBank")), "-300");
    assert_eq!(s.get(&s.keys.bank_balance("Kutxa")), "300");
    // debited and settled on the source's stream, credited on the destination's.
    assert_eq!((s.events("CaixaBank"), s.events("Kutxa")), ("2".into(), "1".into()));
}

#[tokio::test]
async fn a_rejected_credit_is_refunded_and_a_poor_source_moves_nothing() {
    let mut s = setup().await;
    let t = transfer("r1-w1-1", UNKNOWN, 400);
    assert_eq!(s.script.debit(&mut s.conn, &s.keys, "r1-w1", 1, &t).await.unwrap(), Debit::Debited);
    let credit = s.script.credit(&mut s.conn, &s.keys, 0, &t).await.unwrap();
    assert_eq!(credit, Credit::Rejected(CancelReason::UnknownAccount));
    let settled = s.script.settle(&mut s.conn, &s.keys, &t, credit).await.unwrap();
    assert_eq!(settled, Settlement::Voided);
    assert_eq!(s.balances(), ("1000".into(), "500".into()));
    assert_eq!(s.get(&s.keys.bank_balance("CaixaBank")), "0");
    assert_eq!(s.get(&s.keys.in_flight("CaixaBank")), "0");

    let poor = transfer("r1-w1-2", B, 5000);
    let debit = s.script.debit(&mut s.conn, &s.keys, "r1-w1", 2, &poor).await.unwrap();
    assert_eq!(debit, Debit::Cancelled(CancelReason::InsufficientFunds));
    assert_eq!(s.outbox(), "");
    let gap = s.script.debit(&mut s.conn, &s.keys, "r1-w1", 9, &poor).await.unwrap_err();
    assert!(matches!(gap, CallError::SequenceGap(_)), "{gap:?}");
}

#[tokio::test]
async fn the_recovery_pass_carries_what_a_dead_broker_left_in_flight() {
    let mut s = setup().await;
    let credited = transfer("r1-w1-1", B, 100);
    let debited = transfer("r1-w2-1", B, 200);
    let to_reject = transfer("r1-w3-1", UNKNOWN, 300);
    for (producer, t) in [("r1-w1", &credited), ("r1-w2", &debited), ("r1-w3", &to_reject)] {
        assert_eq!(
            s.script.debit(&mut s.conn, &s.keys, producer, 1, t).await.unwrap(),
            Debit::Debited
        );
    }
    // The first was credited before its broker died; the others only debited.
    s.script.credit(&mut s.conn, &s.keys, 0, &credited).await.unwrap();
    assert_eq!(s.get(&s.keys.in_flight("CaixaBank")), "600");

    let banks = vec!["CaixaBank".to_string(), "Kutxa".to_string()];
    let recovered = recover_banks(&mut s.conn, &s.keys, &banks).await.unwrap();
    assert_eq!((recovered.found, recovered.settled, recovered.voided), (3, 2, 1));
    assert_eq!(s.balances(), ("700".into(), "800".into()));
    assert_eq!(s.get(&s.keys.in_flight("CaixaBank")), "0");
    let again = recover_banks(&mut s.conn, &s.keys, &banks).await.unwrap();
    assert_eq!(again.found, 0);

    // An entry that cannot be finished is named, and does not hold back the others.
    let outbox = s.keys.outbox("CaixaBank");
    s.cluster.nodes[0].cli(&["HSET", &outbox, "r9-w9-9", "Kutxa,ES1,ES2,+5"]);
    let fine = transfer("r1-w4-1", B, 50);
    assert_eq!(
        s.script.debit(&mut s.conn, &s.keys, "r1-w4", 1, &fine).await.unwrap(),
        Debit::Debited
    );
    let recovered = recover_banks(&mut s.conn, &s.keys, &banks);
    let recovered = recovered.await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!((recovered.settled, recovered.failed), (1, 1), "{recovered:?}");
    assert!(recovered.errors[0].contains("r9-w9-9 holds the amount \"+5\""), "{recovered:?}");
}

#[tokio::test]
async fn malformed_calls_are_refused_before_anything_is_written() {
    let mut s = setup().await;
    let before = s.cluster.dump();
    let script = redis::Script::new(CrossBankScript::source());
    let mut call = script.prepare_invoke();
    call.key(s.keys.events_of("CaixaBank")).arg("debit").arg("r1-w1").arg("1");
    let err = call.invoke_async::<String>(&mut s.conn).await.unwrap_err();
    assert_eq!(err.code(), Some(BAD_CALL_CODE), "{err}");
    let mut call = script.prepare_invoke();
    call.key(s.keys.events_of("CaixaBank")).arg("transfer");
    let err = call.invoke_async::<String>(&mut s.conn).await.unwrap_err();
    assert_eq!(err.code(), Some(BAD_CALL_CODE), "{err}");
    assert_eq!(s.cluster.dump(), before);
}

#[tokio::test]
async fn one_credits_event_and_one_settlement_event_name_every_credited_transfer_of_a_call_and_a_failed_call_undoes_itself()
 {
    let mut s = setup().await;
    let batch = [
        transfer("r1-w1-1", B, 100),
        transfer("r1-w1-2", UNKNOWN, 200),
        transfer("r1-w1-3", B, 300),
    ];
    let debits = s.script.debit_batch(&mut s.conn, &s.keys, "r1-w1", 1, &batch).await.unwrap();
    assert_eq!(debits, vec![Debit::Debited; 3]);
    let credits = s.script.credit_batch(&mut s.conn, &s.keys, 0, &batch).await.unwrap();
    let rejected = Credit::Rejected(CancelReason::UnknownAccount);
    assert_eq!(credits, vec![Credit::Credited, rejected, Credit::Credited]);
    let answered: Vec<(&InFlight, Credit)> = batch.iter().zip(credits).collect();
    // The rejection, and one entry for the two credits.
    assert_eq!(s.events("Kutxa"), "2");
    let newest = s.newest_entry("Kutxa").await;
    let entry = parse_entry(newest.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()))).unwrap();
    let Entry::Batch(credited) = entry else { panic!("{entry:?}") };
    let lines: Vec<(String, &str, i64)> =
        credited.steps.iter().map(|s| (s.id.to_string(), s.from_bank, s.amount_cents)).collect();
    assert_eq!(lines, [("r1-w1-1".into(), "CaixaBank", 100), ("r1-w1-3".into(), "CaixaBank", 300)]);

    // A settlement that cannot finish (the in-flight total is not a number) leaves no trace.
    let in_flight = s.keys.in_flight("CaixaBank");
    s.cluster.nodes[0].cli(&["SET", &in_flight, "x"]);
    let before = s.cluster.dump();
    let err = s.script.settle_batch(&mut s.conn, &s.keys, &answered).await.unwrap_err();
    assert!(
        matches!(&err, CallError::Stopped(stop) if stop.message.contains(&in_flight)),
        "{err:?}"
    );
    assert_eq!(s.cluster.dump(), before);
    s.cluster.nodes[0].cli(&["SET", &in_flight, "600"]);

    let settled = s.script.settle_batch(&mut s.conn, &s.keys, &answered).await.unwrap();
    assert_eq!(settled, vec![Settlement::Settled, Settlement::Voided, Settlement::Settled]);
    assert_eq!(s.balances(), ("600".into(), "900".into()));
    assert_eq!((s.get(&in_flight), s.outbox()), ("0".into(), String::new()));
    // One entry for the three debits, the void, and one settlement for the two credited.
    assert_eq!(s.events("CaixaBank"), "3");
    let fields = s.newest_entry("CaixaBank").await;
    let entry = parse_entry(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()))).unwrap();
    let id = |seq| TransferId { run: 1, producer: 1, seq };
    let expected =
        events::Settlement { from_bank: "CaixaBank", amount_cents: 400, ids: vec![id(1), id(3)] };
    assert_eq!(entry, Entry::Settlement(expected));
}

#[tokio::test]
async fn a_lone_debit_that_cannot_finish_leaves_no_trace() {
    let mut s = setup().await;
    // The lone debit's writes fail at their third, fourth and fifth (a key of the wrong type):
    // each time the writes made are undone and the error names the key.
    let broken =
        [s.keys.in_flight("CaixaBank"), s.keys.interbank("CaixaBank"), s.keys.outbox("CaixaBank")];
    for key in broken {
        // The key as it was is kept aside (same hash tag, so same slot) and put back afterwards.
        let aside = format!("{key}:aside");
        let existed = s.cluster.nodes[0].cli(&["EXISTS", &key]).trim() == "1";
        if existed {
            s.cluster.nodes[0].cli(&["RENAME", &key, &aside]);
        }
        s.cluster.nodes[0].cli(&["SET", &key, "x"]);
        let before = s.cluster.dump();
        let t = transfer("r1-w1-1", B, 300);
        let err = s.script.debit(&mut s.conn, &s.keys, "r1-w1", 1, &t).await.unwrap_err();
        assert!(matches!(&err, CallError::Stopped(stop) if stop.message.contains(&key)), "{err:?}");
        assert_eq!(s.cluster.dump(), before, "{key}");
        s.cluster.nodes[0].cli(&["DEL", &key]);
        if existed {
            s.cluster.nodes[0].cli(&["RENAME", &aside, &key]);
        }
    }
}

#[tokio::test]
async fn a_debit_denied_its_outcome_letters_undoes_everything() {
    // A user who may do all but APPEND: the debit's last write fails after the others were made.
    let mut s = setup().await;
    let rules = ["ACL", "SETUSER", "no_append", "on", ">s3cret", "~*", "&*", "+@all", "-append"];
    assert_eq!(s.cluster.nodes[0].cli(&rules).trim(), "OK");
    let url = format!("redis://no_append:s3cret@127.0.0.1:{}", s.cluster.nodes[0].port);
    let mut limited = Connection::open(&Target::new(&url)).await.unwrap();
    let before = s.cluster.dump();
    let (one, two) = (transfer("r1-w1-1", B, 300), transfer("r1-w1-2", B, 200));
    let lone = s.script.debit(&mut limited, &s.keys, "r1-w1", 1, &one).await.unwrap_err();
    let batch = [one.clone(), two];
    let batched =
        s.script.debit_batch(&mut limited, &s.keys, "r1-w1", 1, &batch).await.unwrap_err();
    for err in [lone, batched] {
        assert!(
            matches!(&err, CallError::Stopped(stop) if stop.message.starts_with("APPEND")),
            "{err:?}"
        );
    }
    assert_eq!(s.cluster.dump(), before);
    // So the same debit sent again by a user who may is applied once.
    let debit = s.script.debit(&mut s.conn, &s.keys, "r1-w1", 1, &one).await.unwrap();
    assert_eq!(debit, Debit::Debited);
    assert_eq!(s.balances(), ("700".into(), "500".into()));
}

#[tokio::test]
async fn a_balance_that_incrby_would_refuse_is_refused_untouched() {
    let mut s = setup().await;
    let source = s.keys.account("CaixaBank", A);
    // Lua's tonumber reads each of these as a number; INCRBY, and so this tool, does not.
    for text in ["1e3", " 1000", "0x3e8", "inf", "01000", "1000.0"] {
        s.cluster.nodes[0].cli(&["SET", &source, text]);
        let before = s.cluster.dump();
        let t = transfer("r1-w1-1", B, 300);
        let err = s.script.debit(&mut s.conn, &s.keys, "r1-w1", 1, &t).await.unwrap_err();
        assert!(
            matches!(&err, CallError::Stopped(stop) if stop.message.contains(&source)),
            "{text}: {err:?}"
        );
        assert_eq!(s.cluster.dump(), before, "{text}");
    }
}

#[tokio::test]
async fn settled_answers_are_forgotten_and_a_late_credit_for_one_moves_nothing() {
    let mut s = setup().await;
    let settled = transfer("r1-w1-1", B, 100);
    let in_flight = transfer("r1-w2-1", B, 200);
    for (producer, t) in [("r1-w1", &settled), ("r1-w2", &in_flight)] {
        assert_eq!(
            s.script.debit(&mut s.conn, &s.keys, producer, 1, t).await.unwrap(),
            Debit::Debited
        );
        assert_eq!(s.script.credit(&mut s.conn, &s.keys, 0, t).await.unwrap(), Credit::Credited);
    }
    s.script.settle(&mut s.conn, &s.keys, &settled, Credit::Credited).await.unwrap();
    let inbox = s.keys.inbox("Kutxa");
    let banks = vec!["CaixaBank".to_string(), "Kutxa".to_string()];
    let trimmed = trim_inboxes(&mut s.conn, &s.keys, &banks).await.unwrap();
    let expected = Trimmed { forgotten: 1, in_flight: 1, ..Trimmed::default() };
    assert_eq!(trimmed, expected);
    assert_eq!(s.entries(&inbox), "CaixaBank|r1-w2-1\nC\nepoch\n1");

    // A sender that made sure of the first debit before it was settled sends its credit late:
    // refused whole, nothing moves (its answer is gone, so a credit would be a second one).
    let before = s.cluster.dump();
    let late = s.script.credit(&mut s.conn, &s.keys, 0, &settled).await.unwrap_err();
    assert!(matches!(late, CallError::StaleEpoch { current: 1, .. }), "{late:?}");
    assert_eq!(s.cluster.dump(), before);
    // With the new epoch, the transfer still in flight is answered from the inbox, once.
    assert_eq!(
        s.script.credit(&mut s.conn, &s.keys, 1, &in_flight).await.unwrap(),
        Credit::Credited
    );
    assert_eq!(s.balances(), ("700".into(), "800".into()));

    // The recovery pass settles the other, then forgets it: the inbox keeps only its epoch.
    let recovered = recover_banks(&mut s.conn, &s.keys, &banks).await.unwrap();
    assert_eq!((recovered.found, recovered.settled, recovered.trimmed.forgotten), (1, 1, 1));
    assert_eq!(s.entries(&inbox), "epoch\n2");
    assert_eq!(s.balances(), ("700".into(), "800".into()));
    assert_eq!(s.get(&s.keys.in_flight("CaixaBank")), "0");
}

/// A master turned into a replica while a `WAIT` of ours blocks on it (what a failover does)
/// answers `UNBLOCKED` inside the pipeline: worth another attempt, not the end of a broker or a
/// consumer. (It once stopped `consume` following a run through a `CLUSTER FAILOVER`.)
#[tokio::test]
async fn a_wait_cut_short_by_a_demotion_is_worth_another_attempt() {
    let master = common::RedisServer::start();
    let other = common::RedisServer::start();
    let mut conn = Connection::open(&Target::new(&master.url())).await.unwrap();
    let mut pipe = redis::pipe();
    pipe.cmd("INCR").arg("t:mark").ignore();
    pipe.cmd("WAIT").arg(1).arg(0);
    let waiting = tokio::spawn(async move { pipe.query_async::<(i64,)>(&mut conn).await });
    let mut polls = 0;
    while !master.cli(&["CLIENT", "LIST"]).contains("cmd=wait") {
        polls += 1;
        assert!(polls < 500, "the WAIT never blocked");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    master.cli(&["REPLICAOF", "127.0.0.1", &other.port.to_string()]);
    let answer = tokio::time::timeout(std::time::Duration::from_secs(10), waiting).await;
    let err = answer.expect("the WAIT was not cut short").unwrap().unwrap_err();
    assert!(err.to_string().contains("UNBLOCKED"), "{err}");
    assert!(matches!(CallError::from(err), CallError::Transient(_)));
}

/// The debits of a call share one entry, but a refused one in their midst splits them, so that
/// the source's stream holds the producer's transfers in sequence order.
#[tokio::test]
async fn a_refused_debit_splits_the_entry_of_its_calls_debits_in_sequence_order() {
    let mut s = setup().await;
    let batch = [
        transfer("r1-w1-1", B, 100),
        transfer("r1-w1-2", B, 5_000),
        transfer("r1-w1-3", B, 200),
        transfer("r1-w1-4", B, 300),
    ];
    let debits = s.script.debit_batch(&mut s.conn, &s.keys, "r1-w1", 1, &batch).await.unwrap();
    let poor = Debit::Cancelled(CancelReason::InsufficientFunds);
    assert_eq!(debits, vec![Debit::Debited, poor, Debit::Debited, Debit::Debited]);
    let all: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(s.keys.events_of("CaixaBank"))
        .arg("-")
        .arg("+")
        .query_async(&mut s.conn)
        .await
        .unwrap();
    let seqs: Vec<Vec<u64>> = all
        .iter()
        .map(|(_, fields)| {
            match parse_entry(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()))).unwrap() {
                Entry::Batch(batch) => batch.steps.iter().map(|step| step.id.seq).collect(),
                Entry::Transfer(event) => vec![event.id.seq],
                other => panic!("{other:?}"),
            }
        })
        .collect();
    assert_eq!(seqs, [vec![1], vec![2], vec![3, 4]]);
}

/// A call's credits are cut into entries of at most 128 transfers, so that no entry grows with
/// the batch and a reader asking for thousands of entries gets a reply of a bounded size.
#[tokio::test]
async fn a_calls_credits_are_cut_into_entries_of_128() {
    let mut s = setup().await;
    let batch: Vec<InFlight> =
        (1..=130).map(|seq| transfer(&format!("r1-w1-{seq}"), B, 1)).collect();
    let debits = s.script.debit_batch(&mut s.conn, &s.keys, "r1-w1", 1, &batch).await.unwrap();
    assert_eq!(debits, vec![Debit::Debited; 130]);
    let credits = s.script.credit_batch(&mut s.conn, &s.keys, 0, &batch).await.unwrap();
    assert_eq!(credits, vec![Credit::Credited; 130]);
    for bank in ["CaixaBank", "Kutxa"] {
        let all: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(s.keys.events_of(bank))
            .arg("-")
            .arg("+")
            .query_async(&mut s.conn)
            .await
            .unwrap();
        let lines: Vec<usize> = all
            .iter()
            .map(|(_, fields)| {
                let pairs = fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()));
                match parse_entry(pairs).unwrap() {
                    Entry::Batch(batch) => batch.steps.len(),
                    other => panic!("{other:?}"),
                }
            })
            .collect();
        assert_eq!(lines, [128, 2], "{bank}");
    }
}
