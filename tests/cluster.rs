//! Redis Cluster: the tool finds a cluster by itself from any node's URL, `init` loads every bank
//! on its own shard and removes only its own keys on every master. Each test starts its own
//! cluster of `redis-server` processes.

mod common;

use common::cluster::{RedisCluster, loaded_cluster};
use common::*;

/// The keys matching `pattern` on every master, counted by scanning each.
fn count(cluster: &RedisCluster, pattern: &str) -> usize {
    cluster.masters().iter().map(|m| m.cli(&["--scan", "--pattern", pattern]).lines().count()).sum()
}

fn our_keys(cluster: &RedisCluster) -> usize {
    count(cluster, "banks_transfers:*")
}

#[test]
fn init_loads_a_cluster_and_removes_only_its_own_keys_on_every_master() {
    let cluster = RedisCluster::three_masters_with_replicas();
    assert_eq!(cluster.masters().len(), 3);
    let url = cluster.url();
    let dir = workdir_with_accounts(&url, 200);
    // Someone else's keys, one in each master's slots (redis-cli -c follows MOVED).
    for tag in ["a", "b", "c", "d", "e", "f"] {
        cluster.nodes[0].cli(&["-c", "SET", &format!("someone_else:{{{tag}}}"), "keep"]);
    }
    let foreign = |c: &RedisCluster| count(c, "someone_else:*");
    assert_eq!(foreign(&cluster), 6);

    let first = ok(&url, dir.path(), &["init", "--accounts", "data/accounts_200.csv", "--json"]);
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["accounts"], 200, "{first}");
    let loaded = our_keys(&cluster);
    assert_eq!(count(&cluster, "banks_transfers:*:account:*"), 200);
    assert_eq!(count(&cluster, "banks_transfers:*:balance"), 13);
    assert_eq!(count(&cluster, "banks_transfers:*:interbank"), 13);
    let shards_used = cluster.masters().iter().filter(|m| m.dbsize() > 1).count();
    assert_eq!(shards_used, 3, "the banks spread over the three masters");

    // Loading again replaces every key of ours on every master, and nothing else.
    let again = ok(&url, dir.path(), &["init", "--accounts", "data/accounts_200.csv", "--json"]);
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["removed_keys"].as_u64().unwrap() as usize, loaded, "{again}");
    assert_eq!(our_keys(&cluster), loaded);
    assert_eq!(foreign(&cluster), 6);
}

#[test]
fn on_a_one_node_cluster_every_call_touches_one_slot() {
    // One node holds every slot and still refuses any command or script spanning slots.
    let cluster = RedisCluster::single();
    let url = cluster.url();
    let dir = workdir_with_accounts(&url, 50);
    let loaded = ok(&url, dir.path(), &["init", "--accounts", "data/accounts_50.csv", "--json"]);
    let total = serde_json::from_str::<serde_json::Value>(&loaded).unwrap()["total_cents"]
        .as_i64()
        .unwrap();
    assert_eq!(count(&cluster, "banks_transfers:*:account:*"), 50);
    let summary = broker(&url, dir.path(), &["--workers", "4", "--transfers", "200", "--json"]);
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!((summary["status"].as_str(), summary["failed"].as_u64()), (Some("ended"), Some(0)));
    assert_eq!(summary["events"], 800, "{summary}");
    assert_eq!(cluster.money(), total);
    assert_eq!(cluster.in_flight(), Vec::<String>::new());
    assert_eq!(cluster.inbox_answers(), 0, "the broker's last pass forgets what it settled");

    let report = verified(&url, dir.path(), "data/accounts_50.csv");
    assert!(report.starts_with("consume: VERIFIED: "), "{report}");
    assert!(report.contains("run 1 atomic ended: 800 events seen, 800 expected"), "{report}");
}

#[test]
fn a_broker_run_on_three_masters_moves_money_across_shards_and_settles_everything() {
    let (cluster, url, dir, total) = loaded_cluster(100);
    let summary = broker(&url, dir.path(), &["--workers", "8", "--transfers", "250", "--json"]);
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["status"], "ended", "{summary}");
    let decided = summary["completed"].as_u64().unwrap() + summary["cancelled"].as_u64().unwrap();
    assert_eq!(decided + summary["in_flight"].as_u64().unwrap(), 2000, "{summary}");
    assert!(summary["completed"].as_u64().unwrap() > 500, "{summary}");
    assert_eq!(summary["events"], 2000, "{summary}");
    // On a schedule (`--rate`), the courier carrying the cross-bank ones as soon as they come.
    let paced =
        ["--workers", "8", "--transfers", "100", "--rate", "4000", "--linger-ms", "0", "--json"];
    let summary: serde_json::Value =
        serde_json::from_str(&broker(&url, dir.path(), &paced)).unwrap();
    assert_eq!(
        (summary["status"].as_str(), summary["rate_per_s"].as_u64()),
        (Some("ended"), Some(4000))
    );
    assert_eq!(summary["linger_ms"], 0, "{summary}");
    assert_eq!(summary["events"], 800, "{summary}");
    assert!(
        summary["elapsed_s"].as_f64().unwrap() >= 0.199,
        "the last of 800 is due at 0.19975 s: {summary}"
    );
    assert_eq!(cluster.money(), total);
    assert_eq!(cluster.in_flight(), Vec::<String>::new());
    assert_eq!(cluster.inbox_answers(), 0, "the broker's last pass forgets what it settled");
    let report = verified(&url, dir.path(), "data/accounts_100.csv");
    assert!(report.contains("ok   money is conserved"), "{report}");
    assert!(report.contains("run 2 atomic ended: 800 events seen, 800 expected"), "{report}");
}

#[test]
fn batched_and_group_commit_runs_on_three_masters_verify() {
    let (cluster, url, dir, total) = loaded_cluster(100);
    let group_commit = ["--workers", "6", "--transfers", "500", "--group-commit", "--json"];
    let runs = [
        ["--workers", "6", "--transfers", "500", "--batch", "7", "--json"],
        ["--workers", "6", "--transfers", "500", "--batch", "128", "--json"],
    ];
    for flags in runs.iter().map(|f| &f[..]).chain([&group_commit[..]]) {
        let summary: serde_json::Value =
            serde_json::from_str(&broker(&url, dir.path(), flags)).unwrap();
        assert_eq!(
            (summary["status"].as_str(), summary["failed"].as_u64()),
            (Some("ended"), Some(0))
        );
        assert_eq!(summary["events"], 3000, "{summary}");
    }
    assert_eq!(cluster.money(), total);
    assert_eq!(cluster.in_flight(), Vec::<String>::new());
    assert_eq!(cluster.inbox_answers(), 0, "the broker's last pass forgets what it settled");
    let report = verified(&url, dir.path(), "data/accounts_100.csv");
    assert!(report.contains("run 2 atomic ended: 3000 events seen, 3000 expected"), "{report}");
    assert!(report.contains("run 3 atomic ended: 3000 events seen, 3000 expected"), "{report}");
}

/// A shard that lost acknowledged writes (what a failover can do) is found by the next debit's
/// sequence check, and the broker stops saying so; here the loss is made by hand, by cutting the
/// end off every producer's record while a broker runs.
#[test]
fn a_debit_that_finds_acknowledged_writes_gone_stops_the_broker_saying_so() {
    let cluster = RedisCluster::single();
    let url = cluster.url();
    let dir = workdir_with_accounts(&url, 50);
    ok(&url, dir.path(), &["init", "--accounts", "data/accounts_50.csv"]);
    // Only transfers between banks: the first debit after the cut finds it.
    let flags = ["--workers", "2", "--transfers", "200000", "--max-amount", "200"];
    let broker = spawn_broker(&url, dir.path(), &[&flags[..], &["--pairs", "cross-bank"]].concat());
    let node = &cluster.nodes[0];
    let producers = || node.cli(&["--scan", "--pattern", "banks_transfers:*:producer:*"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while producers().lines().count() < 4 {
        assert!(std::time::Instant::now() < deadline, "no producer records appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for key in producers().lines() {
        node.cli(&["SET", key, "D"]);
    }
    let out = broker.wait_with_output().unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = summary["error"].as_str().unwrap_or_default();
    assert_eq!(summary["status"], "failed", "{summary}");
    assert!(error.contains("no longer has transfers it had acknowledged"), "{error}");
    assert!(error.contains("a lost debit is never credited"), "{error}");
}
