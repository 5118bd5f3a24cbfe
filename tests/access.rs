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
