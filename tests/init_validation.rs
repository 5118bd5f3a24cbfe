//! `init` refuses every kind of bad file with the file, line and field named, and writes nothing.

mod common;

use common::*;

const HEADER: &str = "iban,bank,name,ammount\n";
const GOOD: &str =
    "ES9121000418450200051332,CaixaBank,Ana,100\nES0804244907769990166862,Kutxa,Bo,200\n";

#[test]
fn each_kind_of_bad_file_is_rejected_and_nothing_is_written() {
    let redis = RedisServer::start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::copy(seed_fixture("banks.csv"), dir.path().join("data/banks.csv")).unwrap();
    std::fs::write(dir.path().join("data/good.csv"), format!("{HEADER}{GOOD}")).unwrap();
    ok(&url, dir.path(), &["init", "--accounts", "data/good.csv"]);
    redis.cli(&["SET", "someone_else:key", "keep"]);
    let before = redis.dump();

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty file", Vec::new(), "bad.csv:1: the file is empty"),
        ("wrong header", format!("iban,bank,owner,ammount\n{GOOD}").into_bytes(), "bad.csv:1: the header is `iban,bank,owner,ammount`"),
        ("bad check digits", format!("{HEADER}{GOOD}ES9221000418450200051332,Kutxa,C,1\n").into_bytes(), "bad.csv:4: field 'iban': \"ES9221000418450200051332\" has check digits 92"),
        ("duplicate iban", format!("{HEADER}{GOOD}ES9121000418450200051332,Kutxa,C,1\n").into_bytes(), "bad.csv:4: field 'iban': ES9121000418450200051332 already appears on line 2"),
        ("unknown bank", format!("{HEADER}ES9121000418450200051332,Nowhere,Ana,100\nES0804244907769990166862,Kutxa,Bo,200\n").into_bytes(), "bad.csv:2: field 'bank': \"Nowhere\" is not in the banks file"),
        ("negative balance", format!("{HEADER}{GOOD}ES7921000813610123456789,Kutxa,C,-1\n").into_bytes(), "bad.csv:4: field 'ammount': \"-1\" is negative"),
        ("fractional balance", format!("{HEADER}{GOOD}ES7921000813610123456789,Kutxa,C,1.5\n").into_bytes(), "bad.csv:4: field 'ammount': \"1.5\" is fractional"),
        ("non-numeric balance", format!("{HEADER}{GOOD}ES7921000813610123456789,Kutxa,C,ten\n").into_bytes(), "bad.csv:4: field 'ammount': \"ten\" is not a number"),
        ("i64 overflow", format!("{HEADER}{GOOD}ES7921000813610123456789,Kutxa,C,9223372036854775808\n").into_bytes(), "does not fit in a 64-bit integer"),
        ("ragged row", format!("{HEADER}{GOOD}ES7921000813610123456789,Kutxa,C\n").into_bytes(), "bad.csv:4: has 3 fields; expected 4"),
        ("extra column", format!("{HEADER}{GOOD}ES7921000813610123456789,Kutxa,C,1,x\n").into_bytes(), "bad.csv:4: has 5 fields"),
        ("empty row", format!("{HEADER}{GOOD}\nES7921000813610123456789,Kutxa,C,1\n").into_bytes(), "bad.csv:4: the line is empty"),
        ("invalid utf-8", [format!("{HEADER}{GOOD}").as_bytes(), b"ES7921000813610123456789,Kutxa,\xff,1\n"].concat(), "bad.csv:4: field 'name': is not valid UTF-8"),
    ];
    for (what, contents, expected) in cases {
        std::fs::write(dir.path().join("data/bad.csv"), contents).unwrap();
        let out = run(&url, dir.path(), &["init", "--accounts", "data/bad.csv"]);
        let message = text(&out);
        assert_eq!(out.status.code(), Some(2), "{what}: {message}");
        assert!(message.contains("nothing was written"), "{what}: {message}");
        assert!(message.contains(expected), "{what}: expected {expected:?} in\n{message}");
        assert_eq!(redis.dump(), before, "{what}: Redis changed");
    }
    let out = run(&url, dir.path(), &["init", "--accounts", "data/missing.csv"]);
    assert!(text(&out).contains("cannot read data/missing.csv: No such file"), "{}", text(&out));
    assert_eq!(redis.dump(), before);
}

#[test]
fn bom_and_crlf_are_accepted() {
    let redis = RedisServer::start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(seed_fixture("banks.csv"), dir.path().join("banks.csv")).unwrap();
    let crlf = format!("\u{feff}{HEADER}{GOOD}").replace('\n', "\r\n");
    std::fs::write(dir.path().join("accounts.csv"), crlf).unwrap();
    let out = ok(&url, dir.path(), &["init", "--accounts", "accounts.csv"]);
    assert!(out.starts_with("loaded 2 accounts of 13 banks (300 cents)"), "{out}");
}

#[test]
fn an_unreachable_redis_is_named_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://user:hunter2@127.0.0.1:{port}");
    let started = std::time::Instant::now();
    std::fs::copy(seed_fixture("banks.csv"), dir.path().join("banks.csv")).unwrap();
    std::fs::copy(seed_fixture("accounts_100.csv"), dir.path().join("accounts.csv")).unwrap();
    let out = run(&url, dir.path(), &["init", "--accounts", "accounts.csv"]);
    let message = text(&out);
    assert_eq!(out.status.code(), Some(2), "{message}");
    assert!(
        message.contains(&format!("cannot connect to Redis at redis://user:***@127.0.0.1:{port}")),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn a_corrupted_meta_is_named_not_trusted() {
    let redis = RedisServer::start();
    let url = redis.url();
    let dir = workdir_with_accounts(&url, 50);
    ok(&url, dir.path(), &["init", "--accounts", "data/accounts_50.csv"]);
    for (field, value) in [("accounts", "-1"), ("accounts", "99999999999"), ("total_cents", "x")] {
        redis.cli(&["HSET", "banks_transfers:meta", field, value]);
        for command in [
            &["broker", "--workers", "1", "--transfers", "1", "--quiet"][..],
            &["consume", "--accounts", "data/accounts_50.csv", "--quiet"][..],
        ] {
            let out = run(&url, dir.path(), command);
            let message = text(&out);
            assert_eq!(out.status.code(), Some(2), "{field}={value} {command:?}: {message}");
            let named = format!("banks_transfers:meta field {field} is \"{value}\"");
            assert!(message.contains(&named), "{field}={value} {command:?}: {message}");
            assert!(message.contains("run `interbank init` again"), "{message}");
        }
        ok(&url, dir.path(), &["init", "--accounts", "data/accounts_50.csv"]);
    }
}

#[test]
fn a_run_number_handed_out_twice_is_refused() {
    let redis = RedisServer::start();
    let url = redis.url();
    let dir = workdir_with_accounts(&url, 50);
    ok(&url, dir.path(), &["init", "--accounts", "data/accounts_50.csv"]);
    broker(&url, dir.path(), &["--workers", "1", "--transfers", "10"]);
    // As if Redis had lost the INCR that numbered run 1 (a restart from an older snapshot).
    redis.cli(&["SET", "banks_transfers:runs", "0"]);
    let out = run(&url, dir.path(), &["broker", "--workers", "1", "--transfers", "10", "--quiet"]);
    let message = text(&out);
    assert_eq!(out.status.code(), Some(2), "{message}");
    assert!(message.contains("handed out run number 1 twice"), "{message}");
    verified(&url, dir.path(), "data/accounts_50.csv");
}
