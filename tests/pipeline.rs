//! End to end against a real redis-server: gen -> init -> broker -> consume, for each strategy,
//! and consume catching what it must catch.

mod common;

use common::*;

fn accounts_arg(n: u64) -> String {
    format!("data/accounts_{n}.csv")
}

#[test]
fn atomic_run_verifies_and_reports_every_check() {
    let redis = RedisServer::start();
    let url = redis.url();
    let dir = workdir_with_accounts(&url, 200);
    let accounts = accounts_arg(200);
    ok(&url, dir.path(), &["init", "--accounts", &accounts]);
    let summary =
        broker(&url, dir.path(), &["--workers", "8", "--transfers", "300", "--seed", "3"]);
    assert!(summary.contains("2400 planned"), "{summary}");
    let report = verified(&url, dir.path(), &accounts);
    assert!(report.starts_with("consume: VERIFIED: 2400 events"), "{report}");
    assert!(!report.contains("FAIL"), "{report}");
    assert!(report.contains("ok   stream order is the order transfers were applied"), "{report}");
    assert!(report.contains("events from the stream in"), "{report}");
}

#[test]
fn consume_started_before_the_broker_follows_it_live() {
    let redis = RedisServer::start();
    let url = redis.url();
    let dir = workdir_with_accounts(&url, 100);
    ok(&url, dir.path(), &["init"]);
    let consumer = interbank(&url, dir.path())
        .args(["consume", "--quiet", "--idle-timeout", "20", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    broker(&url, dir.path(), &["--workers", "10", "--transfers", "400"]);
    let out = consumer.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verified"], true);
    assert_eq!(report["events"], 4000);
    assert_eq!(report["events_read"], 4000);
    assert!(report["read_s"].as_f64().unwrap() > 0.0, "{report}");
}

#[test]
fn group_commit_run_verifies_with_one_producer_per_connection() {
    let redis = RedisServer::start();
    let url = redis.url();
    let dir = workdir_with_accounts(&url, 100);
    ok(&url, dir.path(), &["init"]);
    let flags = ["--workers", "40", "--transfers", "250", "--group-commit", "--connections", "3"];
    let out = run(&url, dir.path(), &[&["broker", "--quiet", "--json"][..], &flags[..]].concat());
    assert!(out.status.success(), "{}", text(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["group_commit"], true);
    assert_eq!(
        summary["completed"].as_u64().unwrap() + summary["cancelled"].as_u64().unwrap(),
        10_000
    );
    assert!(summary["redis_calls"].as_u64().unwrap() <= 10_000, "{summary}");
    // The committers are the producers: three outcome strings, which together hold every transfer.
    let lengths: u64 = (1..=3)
        .map(|c| redis.cli(&["STRLEN", &format!("banks_transfers:producer:r1-w{c}")]))
        .map(|n| n.trim().parse::<u64>().unwrap())
        .sum();
    assert_eq!(lengths, 10_000);
    assert_eq!(redis.cli(&["EXISTS", "banks_transfers:producer:r1-w4"]).trim(), "0");
    let report = verified(&url, dir.path(), "data/accounts_100.csv");
    assert!(report.starts_with("consume: VERIFIED: 10000 events"), "{report}");
}

#[test]
fn a_paced_run_keeps_its_schedule_and_verifies() {
    let redis = RedisServer::start();
    let url = redis.url();
    let dir = workdir_with_accounts(&url, 100);
    ok(&url, dir.path(), &["init"]);
    for batch in ["1", "16"] {
        let flags = ["--workers", "4", "--transfers", "160", "--batch", batch, "--rate", "2000"];
        let out =
            run(&url, dir.path(), &[&["broker", "--quiet", "--json"][..], &flags[..]].concat());
        assert!(out.status.success(), "{}", text(&out));
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["rate_per_s"], 2000, "{summary}");
        let decided =
            summary["completed"].as_u64().unwrap() + summary["cancelled"].as_u64().unwrap();
        assert_eq!(decided, 640, "{summary}");
        // The schedule is a floor: the last call of 640 transfers is due at 0.312 s or later.
        assert!(summary["elapsed_s"].as_f64().unwrap() >= 0.31, "{summary}");
    }
    let report = verified(&url, dir.path(), "data/accounts_100.csv");
    assert!(report.starts_with("consume: VERIFIED: 1280 events"), "{report}");
}

#[test]
fn watch_strategy_without_crashes_verifies() {
    let redis = RedisServer::start();
    let url = redis.url();
    let dir = workdir_with_accounts(&url, 20);
    let accounts = accounts_arg(20);
    ok(&url, dir.path(), &["init", "--accounts", &accounts]);
    let summary =
        broker(&url, dir.path(), &["--strategy", "watch", "--workers", "10", "--transfers", "100"]);
    assert!(summary.contains("watch, 10 workers"), "{summary}");
    let report = verified(&url, dir.path(), &accounts);
    assert!(report.starts_with("consume: VERIFIED: 1000 events"), "{report}");
}

#[test]
fn naive_strategy_races_are_caught() {
    let redis = RedisServer::start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::copy(seed_fixture("banks.csv"), dir.path().join("data/banks.csv")).unwrap();
    std::fs::write(
        dir.path().join("data/two.csv"),
        "iban,bank,name,ammount\nES9121000418450200051332,CaixaBank,Ana,5000\nES0804244907769990166862,Kutxa,Bo,5000\n",
    )
    .unwrap();
    ok(&url, dir.path(), &["init", "--accounts", "data/two.csv"]);
    ok(
        &url,
        dir.path(),
        &[
            "broker",
            "--strategy",
            "naive",
            "--workers",
            "50",
            "--transfers",
            "40",
            "--min-amount",
            "1000",
            "--quiet",
        ],
    );
    let out = run(
        &url,
        dir.path(),
        &["consume", "--accounts", "data/two.csv", "--quiet", "--idle-timeout", "2"],
    );
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.starts_with("consume: FAILED"), "{report}");
    assert!(report.contains("FAIL no balance is negative"), "{report}");
    assert!(report.contains("debits that left an account negative (race)"), "{report}");
}

fn verified_setup(redis: &RedisServer) -> tempfile::TempDir {
    let url = redis.url();
    let dir = workdir_with_accounts(&url, 100);
    ok(&url, dir.path(), &["init"]);
    broker(&url, dir.path(), &["--workers", "4", "--transfers", "200"]);
    verified(&url, dir.path(), "data/accounts_100.csv");
    dir
}

fn consume_fails_naming(redis: &RedisServer, dir: &std::path::Path, check: &str, key: &str) {
    let out = run(&redis.url(), dir, &["consume", "--quiet", "--idle-timeout", "1"]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains(&format!("FAIL {check}")), "{report}");
    assert!(report.contains(key), "expected {key} in:\n{report}");
}

#[test]
fn a_changed_account_is_named() {
    let redis = RedisServer::start();
    let dir = verified_setup(&redis);
    let key = redis
        .cli(&["--scan", "--pattern", "banks_transfers:{*}:account:*"])
        .lines()
        .next()
        .unwrap()
        .to_string();
    redis.cli(&["INCRBY", &key, "1"]);
    consume_fails_naming(
        &redis,
        dir.path(),
        "accounts match the replay",
        &format!("{key}: expected"),
    );
    let report =
        text(&run(&redis.url(), dir.path(), &["consume", "--quiet", "--idle-timeout", "1"]));
    assert!(report.contains("FAIL money is conserved"), "{report}");
}

#[test]
fn a_changed_bank_balance_is_named() {
    let redis = RedisServer::start();
    let dir = verified_setup(&redis);
    redis.cli(&["INCRBY", "banks_transfers:{ING}:balance", "-7"]);
    consume_fails_naming(
        &redis,
        dir.path(),
        "bank balances match the replay",
        "banks_transfers:{ING}:balance: expected",
    );
}

#[test]
fn a_changed_interbank_balance_is_named() {
    let redis = RedisServer::start();
    let dir = verified_setup(&redis);
    redis.cli(&["HINCRBY", "banks_transfers:{BBVA}:interbank", "Santander", "9"]);
    consume_fails_naming(
        &redis,
        dir.path(),
        "interbank balances match the replay",
        "banks_transfers:{BBVA}:interbank field Santander: expected",
    );
}

#[test]
fn a_malformed_stream_entry_is_reported_not_a_crash() {
    let redis = RedisServer::start();
    let dir = verified_setup(&redis);
    let id =
        redis.cli(&["XADD", "banks_transfers:events", "*", "hello", "world"]).trim().to_string();
    consume_fails_naming(
        &redis,
        dir.path(),
        "every stream entry is an event of a recorded run",
        &format!("stream entry {id}: unknown field"),
    );
}

#[test]
fn a_broker_killed_mid_run_leaves_a_state_that_verifies() {
    let redis = RedisServer::start();
    let url = redis.url();
    let dir = workdir_with_accounts(&url, 100);
    ok(&url, dir.path(), &["init"]);
    let mut killed_broker = interbank(&url, dir.path())
        .args(["broker", "--workers", "20", "--transfers", "1000000", "--quiet"])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while redis.cli(&["XLEN", "banks_transfers:events"]).trim().parse::<u64>().unwrap_or(0) < 2000 {
        assert!(std::time::Instant::now() < deadline, "the broker wrote too little");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    killed_broker.kill().unwrap();
    killed_broker.wait().unwrap();
    let out = run(&url, dir.path(), &["consume", "--quiet", "--idle-timeout", "1"]);
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("run 1 atomic running"), "{report}");
    // A new broker after the kill goes on from there.
    broker(&url, dir.path(), &["--workers", "4", "--transfers", "100"]);
    let report = verified(&url, dir.path(), "data/accounts_100.csv");
    assert!(report.contains("run 2 atomic ended: 400 events seen, 400 expected"), "{report}");
}

#[test]
fn the_seeds_own_files_load_unchanged() {
    let redis = RedisServer::start();
    let url = redis.url();
    for name in ["accounts_100.csv", "accounts_1000.csv"] {
        let dir = tempfile::tempdir().unwrap();
        let path = seed_fixture(name);
        let out = ok(&url, dir.path(), &["init", "--accounts", path.to_str().unwrap()]);
        let count = name.trim_start_matches("accounts_").trim_end_matches(".csv");
        assert!(out.starts_with(&format!("loaded {count} accounts of 13 banks")), "{out}");
        assert!(out.contains("\n0 of the IBANs carry their bank's entity code"), "{out}");
    }
    // The seed's first account, its bank taken from the bank column (its entity code says otherwise).
    let key = "banks_transfers:{BancaMarch}:account:ES8199630539001295023938";
    assert_eq!(redis.cli(&["GET", key]).trim(), "2220");
    let dir = tempfile::tempdir().unwrap();
    let path = seed_fixture("accounts_1000.csv");
    let accounts = path.to_str().unwrap();
    broker(&url, dir.path(), &["--workers", "4", "--transfers", "100"]);
    verified(&url, dir.path(), accounts);
}

#[test]
fn init_removes_only_its_own_keys() {
    let redis = RedisServer::start();
    let url = redis.url();
    redis.cli(&["SET", "someone_else:key", "keep"]);
    redis.cli(&["SET", "banks_transfers_other", "keep"]);
    redis.cli(&["SET", "banks_transfers:stale", "old"]);
    let dir = workdir_with_accounts(&url, 50);
    let out = ok(&url, dir.path(), &["init", "--accounts", "data/accounts_50.csv"]);
    assert!(out.contains("removed 1 old keys"), "{out}");
    assert!(out.contains("\n50 of the IBANs carry their bank's entity code"), "{out}");
    assert_eq!(redis.cli(&["GET", "someone_else:key"]).trim(), "keep");
    assert_eq!(redis.cli(&["GET", "banks_transfers_other"]).trim(), "keep");
    assert_eq!(redis.cli(&["EXISTS", "banks_transfers:stale"]).trim(), "0");
    assert_eq!(redis.cli(&["HGET", "banks_transfers:meta", "status"]).trim(), "ready");
    // 50 accounts + 13 balances + 13 interbank + 13 directories (those that have accounts) + meta + banks + 2 foreign
    assert!(redis.dbsize() > 50 + 26 + 2, "{}", redis.dbsize());
}

#[test]
fn a_key_of_the_wrong_type_is_named() {
    let redis = RedisServer::start();
    let dir = verified_setup(&redis);
    redis.cli(&["DEL", "banks_transfers:{ING}:balance"]);
    redis.cli(&["HSET", "banks_transfers:{ING}:balance", "x", "1"]);
    consume_fails_naming(
        &redis,
        dir.path(),
        "bank balances match the replay",
        "banks_transfers:{ING}:balance: expected",
    );
    let (_, report) = consume(&redis.url(), dir.path(), "data/accounts_100.csv");
    assert!(report.contains("WRONGTYPE"), "{report}");
}

#[test]
fn large_batches_over_many_accounts_verify() {
    let redis = RedisServer::start();
    let url = redis.url();
    let dir = workdir_with_accounts(&url, 5000);
    ok(&url, dir.path(), &["init", "--accounts", "data/accounts_5000.csv"]);
    // 4096 transfers per call touch thousands of accounts, each read once and written once.
    broker(&url, dir.path(), &["--workers", "2", "--transfers", "8192", "--batch", "4096"]);
    let report = verified(&url, dir.path(), "data/accounts_5000.csv");
    assert!(report.starts_with("consume: VERIFIED: 16384 events"), "{report}");
}

/// The banks of each transfer in the stream from entry `after` on: `(from bank, to bank)`.
fn transfer_banks(redis: &RedisServer, after: usize) -> Vec<(String, String)> {
    let all = redis.cli(&["XRANGE", "banks_transfers:events", "-", "+"]);
    let lines: Vec<&str> = all.lines().collect();
    let value_of = |field: &str| -> Vec<String> {
        let at = lines.iter().enumerate().filter(|(_, line)| **line == field);
        at.map(|(i, _)| lines[i + 1].to_string()).collect()
    };
    let pairs: Vec<_> = value_of("from_bank").into_iter().zip(value_of("to_bank")).collect();
    pairs[after..].to_vec()
}

#[test]
fn pairs_inside_or_between_banks_are_what_the_flag_says() {
    let redis = RedisServer::start();
    let url = redis.url();
    let dir = workdir_with_accounts(&url, 100);
    ok(&url, dir.path(), &["init", "--accounts", &accounts_arg(100)]);
    let mut seen = 0;
    for pairs in ["same-bank", "cross-bank", "any"] {
        let flags = ["--workers", "4", "--transfers", "100", "--seed", "3", "--pairs", pairs];
        let summary = broker(&url, dir.path(), &flags);
        let banks = transfer_banks(&redis, seen);
        assert_eq!(banks.len(), 400, "{summary}");
        seen += banks.len();
        let crossing = banks.iter().filter(|(from, to)| from != to).count();
        match pairs {
            "same-bank" => assert_eq!(crossing, 0, "{summary}"),
            "cross-bank" => assert_eq!(crossing, 400, "{summary}"),
            _ => assert!((300..400).contains(&crossing), "{crossing} of 400 crossed: {summary}"),
        }
        assert_eq!(summary.contains(&format!("{pairs} pairs")), pairs != "any", "{summary}");
    }
    verified(&url, dir.path(), &accounts_arg(100));
}
