//! `consume --layout seed` against real Redis, on fixtures written by hand in the Go demo's layout
//! and format (its keys, its signs, its JSON events, its order of commands), each cut where its
//! unsafe protocol can be cut, each audited with the exact figures expected. Then a
//! `broker --layout seed` run killed 20 times at random instants is audited clean.

mod common;

use std::time::Duration;

use common::*;
use rand::Rng;
use serde_json::{Value, json};

const P: &str = "banks_transfers";
/// Four accounts in three banks, one of them with a space in its name.
const ACCOUNTS: [(&str, &str, &str, i64); 4] = [
    ("ES0535564532189541575255", "ING", "Martin Collado Fernandez", 1016),
    ("ES0646606933105100402084", "ING", "Saturnino Valcárcel Alonso", 6884),
    ("ES4408457704323356969370", "Deutsche Bank", "Graciela Montserrat Bellido Borrell", 3969),
    ("ES0804244907769990166862", "Kutxa", "Hortensia Salcedo Rivera", 2106),
];
/// `consume --layout seed` on the fixture's files.
const AUDIT: &[&str] = &[
    "consume",
    "--layout",
    "seed",
    "--accounts",
    "accounts.csv",
    "--quiet",
    "--idle-timeout",
    "0.5",
];
const BANKS: [&str; 3] = ["ING", "Deutsche Bank", "Kutxa"];
const ING: usize = 0;
const DB: usize = 1;

/// A Redis loaded as the demo's init loads it (only the account keys), and the files.
struct Fixture {
    server: RedisServer,
    dir: tempfile::TempDir,
    balances: [i64; 4],
}

impl Fixture {
    fn new() -> Fixture {
        let server = RedisServer::start();
        let dir = tempfile::tempdir().unwrap();
        let mut csv = String::from("iban,bank,name,ammount\n");
        for (iban, bank, name, cents) in ACCOUNTS {
            csv.push_str(&format!("{iban},{bank},{name},{cents}\n"));
            server.cli(&["SET", &format!("{P}:accounts:{iban}"), &cents.to_string()]);
        }
        std::fs::write(dir.path().join("accounts.csv"), csv).unwrap();
        std::fs::write(dir.path().join("banks.csv"), format!("bank\n{}\n", BANKS.join("\n")))
            .unwrap();
        Fixture { server, dir, balances: ACCOUNTS.map(|a| a.3) }
    }

    fn incrby(&self, key: &str, delta: i64) {
        self.server.cli(&["INCRBY", &format!("{P}:{key}"), &delta.to_string()]);
    }

    /// The demo's commands for a transfer of `amount` from account `from` to `to`, the first
    /// `steps` of them (6 = all), as its broker sends them.
    fn transfer(&mut self, from: usize, to: usize, amount: i64, steps: usize) {
        let (fb, tb) = (ACCOUNTS[from].1, ACCOUNTS[to].1);
        let mut commands: Vec<(String, i64)> =
            vec![(format!("accounts:{}", ACCOUNTS[from].0), -amount)];
        if fb != tb {
            commands.push((format!("banks:{fb}"), -amount));
            commands.push((format!("banks:{tb}"), amount));
            commands.push((format!("balances:{fb}:{tb}"), amount));
            commands.push((format!("balances:{tb}:{fb}"), -amount));
        }
        commands.push((format!("accounts:{}", ACCOUNTS[to].0), amount));
        let steps = if steps >= 6 { commands.len() } else { steps };
        for (key, delta) in commands.iter().take(steps) {
            self.incrby(key, *delta);
        }
        if steps >= 1 {
            self.balances[from] -= amount;
        }
        if steps == commands.len() {
            self.balances[to] += amount;
        }
    }

    /// The demo's event for that transfer (`from.ammount` the source balance before the debit).
    fn event(&self, from: usize, to: usize, amount: i64, status: u8, err: &str, before: i64) {
        let party = |i: usize, cents: i64| json!({"iban": ACCOUNTS[i].0, "bank": ACCOUNTS[i].1, "person": ACCOUNTS[i].2, "ammount": cents});
        let event = json!({"err": err, "from": party(from, before), "to": party(to, ACCOUNTS[to].3), "ammount": amount, "status": status});
        self.server.cli(&["XADD", &format!("{P}:transactions"), "*", "json", &event.to_string()]);
    }

    /// A whole transfer and its completed event, as the demo makes it when nothing goes wrong.
    fn completed(&mut self, from: usize, to: usize, amount: i64) {
        let before = self.balances[from];
        self.transfer(from, to, amount, 6);
        self.event(from, to, amount, 2, "", before);
    }

    /// `consume --layout seed --json`: its exit code and its audit.
    fn audit(&self) -> (Option<i32>, Value) {
        let out = run(&self.server.url(), self.dir.path(), &[AUDIT, &["--json"][..]].concat());
        let audit =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|_| json!({"error": text(&out)}));
        (out.status.code(), audit)
    }
}

fn total_surplus(audit: &Value) -> i64 {
    audit["audit"]["money"]["total"]["surplus_vs_loaded_cents"].as_i64().unwrap()
}

#[test]
fn a_clean_run_of_the_demo_is_clean() {
    let mut f = Fixture::new();
    f.completed(0, 2, 400);
    f.completed(2, 3, 300);
    f.completed(0, 1, 100);
    let before = f.balances[3];
    f.event(3, 0, 9_999, 3, "", before);
    f.event(1, 3, 50, 0, "", f.balances[1]);
    f.event(1, 3, 50, 1, "", f.balances[1]);
    let (code, a) = f.audit();
    assert_eq!(code, Some(0), "{a:#}");
    let statuses = &a["audit"]["statuses"];
    assert_eq!(
        (statuses["completed"].as_u64(), statuses["cancelled"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!((statuses["created"].as_u64(), statuses["running"].as_u64()), (Some(1), Some(1)));
    assert_eq!(a["audit"]["diffs"]["total"], 0);
    assert_eq!(total_surplus(&a), 0);
}

#[test]
fn a_run_cut_between_the_debit_and_the_credit_is_money_missing_without_an_event() {
    let mut f = Fixture::new();
    f.completed(1, 3, 500);
    f.transfer(0, 2, 400, 5);
    let (code, a) = f.audit();
    assert_eq!(code, Some(1), "{a:#}");
    assert_eq!(total_surplus(&a), -400);
    assert_eq!(a["audit"]["diffs"]["total"], 5, "{:#}", a["audit"]["diffs"]);
    let orphans = &a["audit"]["inference"]["without_event"];
    assert_eq!(orphans["total"], 1);
    assert_eq!(orphans["items"][0]["amount_cents"], 400);
    assert_eq!(orphans["items"][0]["from_account"], 0);
    assert_eq!(orphans["items"][0]["to_bank"], DB);
    assert_eq!(orphans["items"][0]["missing"], json!(["credit"]));
    let text = ok_or_fail_text(&f);
    assert!(text.contains("MISSING 4.00 in all"), "{text}");
    assert!(text.contains("increments without an event"), "{text}");
    assert!(text.contains(&format!("{P}:accounts:{}", ACCOUNTS[0].0)), "{text}");
}

#[test]
fn a_run_cut_between_the_bank_increments_leaves_the_banks_unbalanced() {
    let mut f = Fixture::new();
    f.transfer(0, 2, 250, 2);
    let (code, a) = f.audit();
    assert_eq!(code, Some(1));
    assert_eq!(total_surplus(&a), -250);
    assert_eq!(a["audit"]["sums"]["banks_cents"], -250);
    let orphan = &a["audit"]["inference"]["without_event"]["items"][0];
    assert_eq!(orphan["amount_cents"], 250);
    assert_eq!(orphan["from_bank"], ING);
    assert_eq!(orphan["to_bank"], Value::Null);
}

#[test]
fn a_duplicate_event_is_named_with_what_it_would_have_moved() {
    let mut f = Fixture::new();
    let before = f.balances[0];
    f.completed(0, 2, 400);
    f.event(0, 2, 400, 2, "", before);
    let (code, a) = f.audit();
    assert_eq!(code, Some(1));
    assert_eq!(a["audit"]["duplicates"]["total"], 1);
    assert_eq!(a["audit"]["inference"]["completed_missing"]["total"], 1);
    assert_eq!(total_surplus(&a), 0, "Redis moved the money once");
    assert_eq!(
        a["audit"]["money"]["total"]["surplus_vs_replay_cents"], 0,
        "both accounts are off by 400, in opposite ways"
    );
    assert_eq!(a["audit"]["diffs"]["total"], 6);
}

#[test]
fn an_error_event_shows_what_it_left_behind() {
    let mut f = Fixture::new();
    let before = f.balances[0];
    f.transfer(0, 2, 400, 3);
    f.event(0, 2, 400, 4, "INCRBY failed", before);
    let (code, a) = f.audit();
    assert_eq!(code, Some(1));
    assert_eq!(a["audit"]["statuses"]["error"], 1);
    let unfinished = &a["audit"]["inference"]["unfinished"];
    assert_eq!(unfinished["total"], 1);
    assert_eq!(unfinished["items"][0]["event"]["err"], "INCRBY failed");
    assert_eq!(unfinished["items"][0]["present"].as_array().unwrap().len(), 3);
    assert_eq!(unfinished["items"][0]["missing"].as_array().unwrap().len(), 3);
    assert_eq!(total_surplus(&a), -400);
}

#[test]
fn a_missing_pair_key_is_named() {
    let mut f = Fixture::new();
    f.completed(0, 2, 400);
    f.server.cli(&["DEL", &format!("{P}:balances:ING:Deutsche Bank")]);
    let (code, a) = f.audit();
    assert_eq!(code, Some(1));
    assert_eq!(a["audit"]["diffs"]["total"], 1);
    let diff = &a["audit"]["diffs"]["items"][0];
    assert_eq!(diff["key"], json!({"pair": [ING, DB]}));
    assert_eq!(diff["expected_cents"], 400);
    assert_eq!(a["audit"]["sums"]["pairs_cents"], -400);
    let text = ok_or_fail_text(&f);
    assert!(
        text.contains(&format!(
            "{P}:balances:ING:Deutsche Bank: Redis nothing (missing), events say 400"
        )),
        "{text}"
    );
}

#[test]
fn a_stream_of_this_tools_own_layout_is_refused_clearly() {
    let f = Fixture::new();
    f.server.cli(&[
        "XADD",
        &format!("{P}:transactions"),
        "*",
        "id",
        "r1-w1-1",
        "status",
        "completed",
    ]);
    let (code, a) = f.audit();
    assert_eq!(code, Some(2));
    assert!(a["error"].as_str().unwrap().contains("this tool's own layout"), "{a}");
}

/// The audit as text (exit code ignored).
fn ok_or_fail_text(f: &Fixture) -> String {
    text(&run(&f.server.url(), f.dir.path(), AUDIT))
}

#[test]
fn broker_layout_seed_killed_20_times_audits_clean() {
    let server = RedisServer::start();
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let accounts = seed_fixture("accounts_1000.csv");
    let accounts = accounts.to_str().unwrap();
    ok(&url, dir.path(), &["init", "--layout", "seed", "--accounts", accounts]);
    let (_, mut rng) = fault_rng("broker_layout_seed_killed_20_times");
    for _ in 0..20 {
        let batch = ["1", "8"][rng.random_range(0..2)];
        let mut child = spawn_broker(
            &url,
            dir.path(),
            &["--layout", "seed", "--workers", "4", "--transfers", "100000", "--batch", batch],
        );
        std::thread::sleep(Duration::from_millis(rng.random_range(50..400)));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let out = run(
        &url,
        dir.path(),
        &[
            "consume",
            "--layout",
            "seed",
            "--accounts",
            accounts,
            "--quiet",
            "--idle-timeout",
            "0.5",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("CLEAN"), "{}", text(&out));
    assert!(text(&out).contains("ok events = transfers applied"), "{}", text(&out));
}

#[test]
fn init_refuses_to_remove_the_demos_events_before_they_are_audited() {
    let mut f = Fixture::new();
    f.completed(0, 2, 400);
    let url = f.server.url();
    let args = ["init", "--layout", "seed", "--accounts", "accounts.csv"];
    let out = run(&url, f.dir.path(), &args);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("audit them first"), "{}", text(&out));
    let length = f.server.cli(&["XLEN", &format!("{P}:transactions")]);
    assert_eq!(length.trim(), "1", "the demo's events were removed");
    ok(&url, f.dir.path(), &[&args[..], &["--replace"]].concat());
    assert_eq!(f.server.cli(&["XLEN", &format!("{P}:transactions")]).trim(), "0");
}
