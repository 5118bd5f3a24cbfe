//! Reaching Redis: TLS with a private CA and a password, and errors that never show the password.

mod common;

use common::*;

#[test]
fn a_full_run_over_tls_with_a_private_ca_verifies() {
    let (redis, certs) = RedisServer::start_tls("tls-s3cret");
    let url = redis.url();
    assert!(url.starts_with("rediss://"));
    let dir = workdir_with_accounts(&url, 50);
    let ca = certs.ca_cert.to_str().unwrap();
    let accounts = "data/accounts_50.csv";
    ok(&url, dir.path(), &["init", "--accounts", accounts, "--tls-ca-cert", ca]);
    ok(
        &url,
        dir.path(),
        &["broker", "--workers", "4", "--transfers", "50", "--quiet", "--tls-ca-cert", ca],
    );
    let report = ok(
        &url,
        dir.path(),
        &["consume", "--accounts", accounts, "--quiet", "--idle-timeout", "1", "--tls-ca-cert", ca],
    );
    assert!(report.starts_with("consume: VERIFIED: 200 events"), "{report}");

    // Without the CA the certificate is refused, and the message says what to pass.
    let out = run(&url, dir.path(), &["init", "--accounts", accounts]);
    let message = text(&out);
    assert_eq!(out.status.code(), Some(2), "{message}");
    assert!(message.contains("--tls-ca-cert"), "{message}");
    assert!(!message.contains("tls-s3cret"), "{message}");
}

#[test]
fn a_wrong_password_is_named_without_showing_it() {
    let redis = RedisServer::start_with(&["--requirepass", "right-one"]);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("redis://:wrong-one@127.0.0.1:{}", redis.port);
    std::fs::copy(seed_fixture("banks.csv"), dir.path().join("banks.csv")).unwrap();
    std::fs::copy(seed_fixture("accounts_100.csv"), dir.path().join("accounts.csv")).unwrap();
    let out = run(&url, dir.path(), &["init", "--accounts", "accounts.csv"]);
    let message = text(&out);
    assert_eq!(out.status.code(), Some(2), "{message}");
    assert!(message.contains(&format!("redis://:***@127.0.0.1:{}", redis.port)), "{message}");
    assert!(message.contains("password"), "{message}");
    assert!(!message.contains("wrong-one"), "{message}");
}

#[test]
fn help_never_shows_the_url_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    for command in ["init", "broker", "consume"] {
        let out = run("redis://:env-s3cret@127.0.0.1:1", dir.path(), &[command, "--help"]);
        let help = text(&out);
        assert!(out.status.success(), "{help}");
        assert!(help.contains("REDIS_URL"), "{help}");
        assert!(!help.contains("env-s3cret"), "{help}");
    }
}

/// The ACL rules the README documents: this tool's keys and the commands it needs, nothing else.
const ACL_RULES: &str = "on resetkeys ~banks_transfers:* resetchannels -@all +ping +info +scan +unlink +get +mget +set \
    +mset +incr +incrby +decrby +hset +hget +hgetall +hmget +hincrby +rpush +lrange +strlen +getrange +append +xadd +xdel \
    +xlen +xread +xrevrange +del +evalsha +eval +script|load +watch +unwatch +multi +exec";

fn acl_user(redis: &RedisServer, name: &str, rules: &str) -> String {
    let mut args = vec!["ACL", "SETUSER", name, ">user-s3cret"];
    args.extend(rules.split_whitespace());
    assert_eq!(redis.cli(&args).trim(), "OK");
    format!("redis://{name}:user-s3cret@127.0.0.1:{}", redis.port)
}

#[test]
fn a_user_restricted_to_our_keys_and_commands_runs_everything() {
    let redis = RedisServer::start();
    let url = acl_user(&redis, "interbank", ACL_RULES);
    redis.cli(&["SET", "someone_else:key", "keep"]);
    let dir = workdir_with_accounts(&url, 50);
    ok(&url, dir.path(), &["init", "--accounts", "data/accounts_50.csv"]);
    broker(&url, dir.path(), &["--workers", "4", "--transfers", "50"]);
    broker(&url, dir.path(), &["--strategy", "watch", "--workers", "4", "--transfers", "50"]);
    let report = verified(&url, dir.path(), "data/accounts_50.csv");
    assert!(report.starts_with("consume: VERIFIED: 400 events"), "{report}");
    assert_eq!(redis.cli(&["ACL", "LOG"]).trim(), "", "a command was denied");
}

#[test]
fn a_user_missing_a_command_or_a_key_gets_a_clear_error() {
    let redis = RedisServer::start();
    let full = acl_user(&redis, "full", ACL_RULES);
    let dir = workdir_with_accounts(&full, 50);
    ok(&full, dir.path(), &["init", "--accounts", "data/accounts_50.csv"]);

    let no_xadd = acl_user(&redis, "no_xadd", &format!("{ACL_RULES} -xadd"));
    let out =
        run(&no_xadd, dir.path(), &["broker", "--workers", "2", "--transfers", "5", "--quiet"]);
    let message = text(&out);
    assert_eq!(out.status.code(), Some(1), "{message}");
    assert!(
        message
            .contains("XADD banks_transfers:events: ERR The user executing the script can't run"),
        "{message}"
    );
    assert!(message.contains("see the ACL rules in the README"), "{message}");

    // Denied its last write, the outcome letters, a call undoes the others (a resent call would
    // otherwise apply its transfers a second time): unbatched and batched.
    let no_append = acl_user(&redis, "no_append", &format!("{ACL_RULES} -append"));
    for batch in ["1", "4"] {
        let flags = ["broker", "--workers", "2", "--transfers", "5", "--batch", batch, "--quiet"];
        let out = run(&no_append, dir.path(), &flags);
        let message = text(&out);
        assert_eq!(out.status.code(), Some(1), "{message}");
        assert!(message.contains("APPEND banks_transfers:producer:"), "{message}");
    }

    let other_keys =
        acl_user(&redis, "other_keys", &ACL_RULES.replace("~banks_transfers:*", "~elsewhere:*"));
    let out =
        run(&other_keys, dir.path(), &["consume", "--accounts", "data/accounts_50.csv", "--quiet"]);
    let message = text(&out);
    assert_eq!(out.status.code(), Some(2), "{message}");
    assert!(message.contains("reading banks_transfers:meta"), "{message}");
    assert!(message.contains("no permissions to access one of the keys"), "{message}");
    assert!(!message.contains("user-s3cret"), "{message}");

    // Nothing of a refused transfer was applied.
    let report = verified(&full, dir.path(), "data/accounts_50.csv");
    assert!(report.starts_with("consume: VERIFIED: 0 events"), "{report}");
}

#[test]
fn a_unix_socket_with_a_database_number_runs_everything() {
    let socket_dir = tempfile::tempdir().unwrap();
    let socket = socket_dir.path().join("redis.sock");
    let socket_text = socket.to_str().unwrap();
    let redis = RedisServer::start_with(&["--unixsocket", socket_text, "--unixsocketperm", "700"]);
    let url = format!("unix://{socket_text}?db=3");
    let dir = workdir_with_accounts(&url, 50);
    ok(&url, dir.path(), &["init", "--accounts", "data/accounts_50.csv"]);
    broker(&url, dir.path(), &["--workers", "4", "--transfers", "100"]);
    let report = verified(&url, dir.path(), "data/accounts_50.csv");
    assert!(report.starts_with("consume: VERIFIED: 400 events"), "{report}");
    // Everything went to database 3: database 0 holds none of it.
    assert_eq!(redis.dbsize(), 0);
    assert_eq!(redis.cli(&["-n", "3", "XLEN", "banks_transfers:events"]).trim(), "400");
}
