//! The Go demo's key layout (`--layout seed`) against a real Redis: `init` loads the seed's own
//! files in it, clearing only our prefix; `broker --layout seed` writes exactly the demo's keys,
//! signs and events, each transfer at once; this tool's other commands refuse such a set with the
//! flag to pass.

mod common;

use common::*;

/// Every key of the demo's layout and their sums, read with redis-cli.
struct SeedKeys {
    accounts_cents: i64,
    banks_sum: i64,
    pairs: Vec<(String, i64)>,
}

fn read_seed_keys(server: &RedisServer) -> SeedKeys {
    let number = |key: &str| -> i64 { server.cli(&["GET", key]).trim().parse().unwrap_or(0) };
    let scan = |pattern: &str| -> Vec<String> {
        server.cli(&["--scan", "--pattern", pattern]).lines().map(str::to_string).collect()
    };
    let accounts_cents = scan("banks_transfers:accounts:*").iter().map(|k| number(k)).sum();
    let banks_sum = scan("banks_transfers:banks:*").iter().map(|k| number(k)).sum();
    let pairs = scan("banks_transfers:balances:*").iter().map(|k| (k.clone(), number(k))).collect();
    SeedKeys { accounts_cents, banks_sum, pairs }
}

/// A private server with the seed's `accounts_100.csv` loaded in the seed layout, a work folder
/// and the file's path.
fn seed_set() -> (RedisServer, tempfile::TempDir, String) {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let accounts = seed_fixture("accounts_100.csv").to_str().unwrap().to_string();
    ok(&server.url(), dir.path(), &["init", "--accounts", &accounts, "--layout", "seed"]);
    (server, dir, accounts)
}

#[test]
fn the_seed_files_load_in_both_layouts() {
    let server = RedisServer::start();
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    for file in ["accounts_100.csv", "accounts_1000.csv"] {
        let path = seed_fixture(file);
        let path = path.to_str().unwrap();
        ok(&url, dir.path(), &["init", "--accounts", path]);
        ok(&url, dir.path(), &["init", "--accounts", path, "--layout", "seed"]);
        let loaded: i64 =
            server.cli(&["HGET", "banks_transfers:meta", "total_cents"]).trim().parse().unwrap();
        assert_eq!(read_seed_keys(&server).accounts_cents, loaded, "{file}");
    }
    server.cli(&["SET", "not_ours", "kept"]);
    ok(
        &url,
        dir.path(),
        &[
            "init",
            "--accounts",
            seed_fixture("accounts_100.csv").to_str().unwrap(),
            "--layout",
            "seed",
        ],
    );
    assert_eq!(
        server.cli(&["GET", "not_ours"]).trim(),
        "kept",
        "init removed a key not under the prefix"
    );
}

#[test]
fn broker_layout_seed_writes_the_demos_keys_and_events_atomically() {
    let (server, dir, _) = seed_set();
    let url = server.url();
    broker(
        &url,
        dir.path(),
        &["--layout", "seed", "--workers", "4", "--transfers", "500", "--batch", "16"],
    );
    let keys = read_seed_keys(&server);
    let loaded: i64 =
        server.cli(&["HGET", "banks_transfers:meta", "total_cents"]).trim().parse().unwrap();
    assert_eq!(keys.accounts_cents, loaded, "money in accounts moved");
    assert_eq!(keys.banks_sum, 0, "bank keys do not sum to zero");
    for (key, cents) in &keys.pairs {
        let parts: Vec<&str> = key.splitn(4, ':').collect();
        let (a, b) = (parts[2], parts[3]);
        let mirror = format!("banks_transfers:balances:{b}:{a}");
        let other: i64 = server.cli(&["GET", &mirror]).trim().parse().unwrap_or(0);
        assert_eq!(cents + other, 0, "{key} and {mirror} are not opposite");
    }
    let length: u64 = server.cli(&["XLEN", "banks_transfers:transactions"]).trim().parse().unwrap();
    assert_eq!(length, 2000);
    let entry = server.cli(&["XRANGE", "banks_transfers:transactions", "-", "+", "COUNT", "1"]);
    let json = entry.lines().nth(2).expect("an entry's json field value");
    let event: serde_json::Value = serde_json::from_str(json).unwrap();
    for field in ["err", "from", "to", "ammount", "status"] {
        assert!(event.get(field).is_some(), "no {field} in {json}");
    }
    for field in ["iban", "bank", "person", "ammount"] {
        assert!(event["from"].get(field).is_some(), "no from.{field} in {json}");
    }
    assert!([2, 3].contains(&event["status"].as_i64().unwrap()), "{json}");
}

#[test]
fn this_tools_commands_refuse_a_seed_set_with_the_flag_to_pass() {
    let (server, dir, accounts) = seed_set();
    let (url, accounts) = (server.url(), accounts.as_str());
    for args in [&["broker", "--quiet"][..], &["status"][..]] {
        let out = run(&url, dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains("pass --layout seed"), "{args:?}: {}", text(&out));
    }
    ok(&url, dir.path(), &["init", "--accounts", accounts]);
    let out = run(&url, dir.path(), &["broker", "--quiet", "--layout", "seed"]);
    assert!(text(&out).contains("run `interbank init --layout seed` first"), "{}", text(&out));
}

#[test]
fn a_failed_write_undoes_the_whole_call_and_a_retry_applies_nothing_twice() {
    let (server, dir, _) = seed_set();
    let url = server.url();
    // A bank key of the wrong type: every transfer out of or into ING fails at its write.
    server.cli(&["HSET", "banks_transfers:banks:ING", "not", "a counter"]);
    let out = run(
        &url,
        dir.path(),
        &[
            "broker",
            "--quiet",
            "--layout",
            "seed",
            "--workers",
            "2",
            "--transfers",
            "300",
            "--batch",
            "16",
        ],
    );
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("banks_transfers:banks:ING"), "{}", text(&out));
    let loaded: i64 =
        server.cli(&["HGET", "banks_transfers:meta", "total_cents"]).trim().parse().unwrap();
    assert_eq!(read_seed_keys(&server).accounts_cents, loaded, "a stopped call moved money");
    let letters: u64 = ["r1-w1", "r1-w2"]
        .iter()
        .map(|p| {
            server
                .cli(&["STRLEN", &format!("banks_transfers:producer:{p}")])
                .trim()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    let events: u64 = server.cli(&["XLEN", "banks_transfers:transactions"]).trim().parse().unwrap();
    assert_eq!(events, letters, "events of transfers that were not recorded as applied");
}
