//! Flags out of bounds are refused before anything connects, with the flag named and the exact
//! text a user will read; the exit code is 2.

mod common;

use common::*;

#[test]
fn each_bad_flag_is_refused_with_its_exact_message() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://127.0.0.1:{port}");
    let cases: &[(&[&str], &str)] = &[
        (
            &["broker", "--min-amount", "6000", "--max-amount", "100"],
            "--min-amount (6000) is larger than --max-amount (100)",
        ),
        (&["broker", "--min-amount", "0"], "--min-amount must be at least 1 cent; got 0"),
        (&["broker", "--min-amount", "-5"], "--min-amount must be at least 1 cent; got -5"),
        (
            &["broker", "--max-amount", "9007199254740992"],
            "--max-amount must be at most 9007199254740991 cents; got 9007199254740992",
        ),
        (&["broker", "--workers", "0"], "--workers must be 1 to 10000; got 0"),
        (&["broker", "--workers", "1000000"], "--workers must be 1 to 10000; got 1000000"),
        (&["broker", "--transfers", "0"], "--transfers must be 1 to 1000000000 per worker; got 0"),
        (&["broker", "--batch", "0"], "--batch must be 1 to 8192; got 0"),
        (&["broker", "--batch", "9000"], "--batch must be 1 to 8192; got 9000"),
        (
            &["broker", "--strategy", "watch", "--batch", "4"],
            "--batch works with --strategy atomic only",
        ),
        (&["broker", "--connections", "0"], "--connections must be 1 to 256; got 0"),
        (&["broker", "--rate", "0"], "--rate must be 1 to 100000000 transfers per second; got 0"),
        (&["broker", "--linger-ms", "1001"], "--linger-ms must be 0 to 1000; got 1001"),
        (
            &["broker", "--prefix", "a*"],
            "key prefix \"a*\" is not usable: use 1 to 64 letters, digits, '_', '-' or '.'",
        ),
        (
            &["gen", "--accounts", "1"],
            "--accounts must be between 2 and 50000000 (a transfer needs two accounts); got 1",
        ),
        (&["consume", "--idle-timeout", "0"], "--idle-timeout must be 0.1 to 86400 seconds; got 0"),
        (
            &["consume", "--checkpoint-interval", "-1"],
            "--checkpoint-interval must be 0 to 86400 seconds; got -1",
        ),
        (
            &["consume", "--name", "a b"],
            "--name \"a b\" is not usable: use 1 to 64 letters, digits, '_', '-' or '.'",
        ),
    ];
    for (args, expected) in cases {
        let out = run(&url, dir.path(), args);
        let message = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {message}");
        assert_eq!(message.trim(), format!("interbank: error: {expected}"), "{args:?}");
    }
}

#[test]
fn an_unknown_strategy_lists_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = run("redis://127.0.0.1:1", dir.path(), &["broker", "--strategy", "fast"]);
    let message = text(&out);
    assert_eq!(out.status.code(), Some(2), "{message}");
    assert!(message.contains("invalid value 'fast' for '--strategy <STRATEGY>'"), "{message}");
    assert!(message.contains("[possible values: atomic, watch, naive]"), "{message}");
}

#[test]
fn a_million_row_file_is_accepted() {
    let redis = RedisServer::start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    ok(&url, dir.path(), &["gen", "--accounts", "1000000", "--seed", "11"]);
    let out = ok(&url, dir.path(), &["init", "--accounts", "data/accounts_1000000.csv"]);
    assert!(out.starts_with("loaded 1000000 accounts of 13 banks"), "{out}");
    let santander: u64 =
        redis.cli(&["LLEN", "banks_transfers:{Santander}:directory"]).trim().parse().unwrap();
    assert!(santander > 50_000, "{santander}");
}
