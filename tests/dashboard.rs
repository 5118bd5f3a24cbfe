//! The dashboard in a real browser (headless Chromium over WebDriver), against a real Redis and a
//! real broker: the counts rise while a run goes, the banner says money is conserved, the verdict
//! of `consume` appears, a dead Redis is announced, and names from the data are shown as text.
//!
//! With `SCREENSHOTS=<folder>` (see `make screenshots`), the live test saves `dashboard.png` and
//! `report.png` (the HTML report of the same run) there.

mod common;

use std::path::Path;

use common::browser::{self, Browser};
use common::serve::serve;
use common::*;

fn count(text: &str) -> u64 {
    text.trim().parse().unwrap_or_else(|_| panic!("not a count: {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_follows_a_run_live_and_shows_the_verdict() {
    browser::require();
    let server = RedisServer::start();
    let url = server.url();
    let dir = workdir_with_accounts(&url, 1000);
    ok(&url, dir.path(), &["init", "--accounts", "data/accounts_1000.csv"]);
    let served = serve(&url, dir.path(), &["--refresh", "0.3"]);
    let page = Browser::start().await;
    page.goto(&format!("http://{}/", served.address)).await;
    page.wait_for_text("#banner", |t| t.contains("Money conserved"), 10_000).await;

    let mut run = spawn_broker(&url, dir.path(), &["--workers", "4", "--transfers", "40000"]);
    let first = count(&page.wait_for_text("#count-completed", |t| count(t) > 0, 20_000).await);
    let later = page.wait_for_text("#count-completed", |t| count(t) > first, 20_000).await;
    assert!(count(&later) > first);
    let banner = page.text("#banner").await;
    assert!(banner.contains("Money conserved"), "banner while the run goes: {banner}");
    assert!(run.wait().unwrap().success());

    verified(&url, dir.path(), "data/accounts_1000.csv");
    page.wait_for_text(
        "#verdict",
        |t| t.contains("VERIFIED") && !t.contains("NOT VERIFIED"),
        10_000,
    )
    .await;
    let cancelled = count(&page.text("#count-cancelled").await);
    let completed = count(
        &page.wait_for_text("#count-completed", |t| count(t) + cancelled >= 160_000, 20_000).await,
    );
    assert_eq!(completed + count(&page.text("#count-cancelled").await), 160_000);
    if let Ok(folder) = std::env::var("SCREENSHOTS") {
        let folder = Path::new(&folder);
        page.screenshot_png(folder.join("dashboard.png")).await;
        let report = dir.path().join("report.html");
        let args = ["consume", "--accounts", "data/accounts_1000.csv", "--quiet", "--report"];
        ok(&url, dir.path(), &[&args[..], &[report.to_str().unwrap()]].concat());
        page.goto(&format!("file://{}", report.display())).await;
        page.screenshot_png(folder.join("report.png")).await;
    }
    page.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_says_when_redis_is_down_and_recovers() {
    browser::require();
    let mut server = RedisServer::start();
    let url = server.url();
    let dir = workdir_with_accounts(&url, 100);
    ok(&url, dir.path(), &["init", "--accounts", "data/accounts_100.csv"]);
    let served = serve(&url, dir.path(), &["--refresh", "0.3"]);
    let page = Browser::start().await;
    page.goto(&format!("http://{}/", served.address)).await;
    page.wait_for_text("#banner", |t| t.contains("Money conserved"), 10_000).await;

    server.kill();
    let said =
        page.wait_for_text("#redis-banner", |t| t.contains("Redis unreachable"), 15_000).await;
    assert!(!said.contains("password"), "{said}");
    let kept = page.text("#banner").await;
    assert!(kept.contains("Money conserved"), "the last figures stay on the page: {kept}");

    server.restart();
    ok(&url, dir.path(), &["init", "--accounts", "data/accounts_100.csv"]);
    page.wait_for_text("#redis-banner", |t| !t.contains("Redis unreachable"), 15_000).await;
    page.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_from_the_data_are_shown_as_text() {
    browser::require();
    let server = RedisServer::start();
    let url = server.url();
    let dir = workdir_with_hostile_bank(&url);
    ok(&url, dir.path(), &["init", "--accounts", "data/accounts_100.csv"]);
    broker(&url, dir.path(), &["--workers", "2", "--transfers", "300"]);
    let served = serve(&url, dir.path(), &["--refresh", "0.3"]);
    let page = Browser::start().await;
    page.goto(&format!("http://{}/", served.address)).await;
    page.wait_for_text("#banks", |t| t.contains(HOSTILE_BANK), 10_000).await;
    let legend = page.text("#bank-legend").await;
    assert!(legend.contains(HOSTILE_BANK), "{legend}");
    let source = page.page_source().await;
    assert!(!source.contains("<script>alert(1)"), "a name became markup");
    page.close().await;
}

#[test]
fn a_public_address_needs_a_token_and_the_token_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let url = "redis://127.0.0.1:1";
    let out = run(url, dir.path(), &["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("pass --public (with --token-file)"), "{}", text(&out));
    let out = run(url, dir.path(), &["serve", "--listen", "0.0.0.0:0", "--public"]);
    assert!(text(&out).contains("--public needs --token-file"), "{}", text(&out));

    let open = serve(url, dir.path(), &["--refresh", "0.3"]);
    let host = |h: &str| {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                h,
                &format!("http://{}/api/state", open.address),
            ])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(host("Host: evil.example"), "403", "a page elsewhere could read the data");
    assert_eq!(host("Host: localhost:8080"), "200");
    drop(open);

    let token = "s3cret-token-of-32-characters-xx";
    std::fs::write(dir.path().join("token"), token).unwrap();
    let served = serve(url, dir.path(), &["--refresh", "0.3", "--token-file", "token"]);
    let get = |path: &str, header: Option<&str>| {
        let mut cmd = std::process::Command::new("curl");
        cmd.args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{}{path}", served.address),
        ]);
        if let Some(h) = header {
            cmd.args(["-H", h]);
        }
        String::from_utf8(cmd.output().unwrap().stdout).unwrap()
    };
    assert_eq!(get("/api/state", None), "401");
    assert_eq!(
        get("/metrics", Some("Authorization: Bearer wrong-token-of-32-characters-xx")),
        "401"
    );
    assert_eq!(get("/metrics", Some(&format!("Authorization: Bearer {token}"))), "200");
    assert_eq!(get(&format!("/?token={token}"), None), "303");
    let state = std::process::Command::new("curl")
        .args([
            "-s",
            "-H",
            &format!("Authorization: Bearer {token}"),
            &format!("http://{}/api/state", served.address),
        ])
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&state.stdout);
    assert!(body.contains("\"redis\":{\"ok\":false"), "{body}");
    assert!(!body.contains(token), "the token is in a page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_the_page_shows_each_bank_on_its_shard() {
    browser::require();
    let cluster = common::cluster::RedisCluster::single();
    let url = cluster.url();
    let dir = workdir_with_accounts(&url, 100);
    ok(&url, dir.path(), &["init", "--accounts", "data/accounts_100.csv"]);
    broker(&url, dir.path(), &["--workers", "2", "--transfers", "200"]);
    // A call's debits share one entry: with many destination banks, its row counts them.
    broker(
        &url,
        dir.path(),
        &["--workers", "1", "--transfers", "64", "--batch", "64", "--pairs", "cross-bank"],
    );
    let served = serve(&url, dir.path(), &["--refresh", "0.3"]);
    let page = Browser::start().await;
    page.goto(&format!("http://{}/", served.address)).await;
    page.wait_for_text("#banner", |t| t.contains("Money conserved"), 10_000).await;
    let port = url.rsplit(':').next().unwrap().to_string();
    let shards = page.wait_for_text("#shards", |t| t.contains(&port), 10_000).await;
    assert!(shards.contains("Santander"), "{shards}");
    page.click("#filter-outcome option[value='debited']").await;
    // The filtered page (only debits) with a row of a call's debits to several banks.
    let only_debits = |t: &str| !t.contains("credited") && !t.contains("settled");
    let several = |t: &str| only_debits(t) && t.contains(" and ") && t.contains(" banks");
    page.wait_for_text("#events tbody", several, 10_000).await;
    page.close().await;
}
