//! The views against real Redis: `status` (tables and `--json`) shows what Redis holds, names a
//! loss, reads a cluster's banks on their shards, and the verdict `consume` records.

mod common;

use common::cluster::RedisCluster;
use common::*;
use serde_json::Value;

fn status_json(url: &str, dir: &std::path::Path) -> Value {
    serde_json::from_str(&ok(url, dir, &["status", "--json"])).expect("status --json is JSON")
}

/// A private server with 200 accounts loaded, a finished run of 2,000 transfers and a verdict.
fn verified_server() -> (RedisServer, tempfile::TempDir) {
    let server = RedisServer::start();
    let url = server.url();
    let dir = workdir_with_accounts(&url, 200);
    ok(&url, dir.path(), &["init", "--accounts", "data/accounts_200.csv"]);
    broker(&url, dir.path(), &["--workers", "4", "--transfers", "500", "--seed", "3"]);
    verified(&url, dir.path(), "data/accounts_200.csv");
    (server, dir)
}

#[test]
fn status_shows_what_redis_holds_and_the_recorded_verdict() {
    let (server, dir) = verified_server();
    let url = server.url();
    let view = status_json(&url, dir.path());
    let total: i64 =
        server.cli(&["HGET", "banks_transfers:meta", "total_cents"]).trim().parse().unwrap();
    let length: u64 = server.cli(&["XLEN", "banks_transfers:events"]).trim().parse().unwrap();
    assert_eq!(view["money"]["total_cents"], total);
    assert_eq!(view["money"]["accounts_cents"], total);
    assert_eq!(view["money"]["difference_cents"], 0);
    assert_eq!(view["conservation"]["state"], "conserved");
    assert_eq!(view["conservation"]["consistent"], true);
    assert_eq!(view["streams"][0]["length"], length);
    assert_eq!(view["runs"][0]["applied"], 2000);
    assert_eq!(view["runs"][0]["planned"], 2000);
    assert_eq!(view["verdict"]["verified"], true);
    assert_eq!(view["verdict"]["events"], length);
    assert_eq!(view["consumers"][0]["name"], "default");
    assert_eq!(view["consumers"][0]["streams_behind"], 0);
    let santander: i64 =
        server.cli(&["GET", "banks_transfers:{Santander}:balance"]).trim().parse().unwrap();
    let banks = view["banks"].as_array().unwrap();
    let shown = banks.iter().find(|b| b["name"] == "Santander").unwrap();
    assert_eq!(shown["balance_cents"], santander);

    let text = ok(&url, dir.path(), &["status"]);
    assert!(text.contains("MONEY CONSERVED"), "{text}");
    assert!(text.contains("last verification: VERIFIED"), "{text}");
    assert!(!text.contains('\u{1b}'), "colour written to a pipe:\n{text}");
    for line in text.lines() {
        assert!(line.chars().count() <= 80, "wider than 80 columns: {line:?}");
    }
}

#[test]
fn status_names_money_lost_outside_the_broker() {
    let (server, dir) = verified_server();
    let url = server.url();
    let account = server.cli(&["LINDEX", "banks_transfers:{ING}:directory", "0"]);
    let key = format!("banks_transfers:{{ING}}:account:{}", account.trim());
    server.cli(&["DECRBY", &key, "5"]);
    let view = status_json(&url, dir.path());
    assert_eq!(view["conservation"]["state"], "violated");
    assert_eq!(view["money"]["difference_cents"], -5);
    let text = ok(&url, dir.path(), &["status"]);
    assert!(text.contains("MONEY NOT CONSERVED"), "{text}");
    assert!(text.contains("FAIL money"), "{text}");

    server.cli(&["SET", &key, "lots"]);
    let view = status_json(&url, dir.path());
    assert_eq!(view["conservation"]["state"], "unknown");
    assert!(view["problems"][0].as_str().unwrap().contains(&key), "{view}");
}

#[test]
fn status_on_a_cluster_reads_each_bank_on_its_shard() {
    let cluster = RedisCluster::single();
    let url = cluster.url();
    let dir = workdir_with_accounts(&url, 100);
    ok(&url, dir.path(), &["init", "--accounts", "data/accounts_100.csv"]);
    broker(&url, dir.path(), &["--workers", "2", "--transfers", "300", "--seed", "5"]);
    let view = status_json(&url, dir.path());
    assert_eq!(view["layout"], "sharded");
    assert_eq!(view["conservation"]["state"], "conserved", "{}", view["conservation"]);
    assert_eq!(view["conservation"]["consistent"], true);
    assert_eq!(view["money"]["in_flight_cents"], 0);
    let banks = view["banks"].as_array().unwrap();
    assert_eq!(view["streams"].as_array().unwrap().len(), banks.len());
    let port = url.rsplit(':').next().unwrap().to_string();
    assert!(banks.iter().all(|b| b["shard"].as_str().unwrap().ends_with(&port)), "{banks:?}");
    assert!(view["verdict"].is_null());
}

#[test]
fn the_report_stands_alone_and_shows_names_as_text() {
    let server = RedisServer::start();
    let url = server.url();
    let dir = workdir_with_hostile_bank(&url);
    ok(&url, dir.path(), &["init", "--accounts", "data/accounts_100.csv"]);
    broker(&url, dir.path(), &["--workers", "2", "--transfers", "300"]);
    let args = ["consume", "--accounts", "data/accounts_100.csv", "--quiet", "--idle-timeout", "1"];
    let out = run(&url, dir.path(), &[&args[..], &["--report", "report.html"]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("VERIFIED"));
    assert!(!html.contains("http"), "the report refers to something outside itself");
    assert!(!html.contains("<script"), "a name became markup");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;x"), "the name is not shown");
    let view = status_json(&url, dir.path());
    assert_eq!(view["verdict"]["verified"], true);
}
