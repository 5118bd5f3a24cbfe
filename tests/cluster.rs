//! Redis Cluster: the tool finds a cluster by itself from any node's URL, `init` loads every bank
//! on its own shard and removes only its own keys on every master. Each test starts its own
//! cluster of `redis-server` processes.

mod common;

use common::cluster::RedisCluster;
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
fn any_node_names_the_cluster_and_the_commands_not_ready_say_so() {
    let cluster = RedisCluster::single();
    let url = cluster.url();
    let dir = workdir_with_accounts(&url, 50);
    ok(&url, dir.path(), &["init", "--accounts", "data/accounts_50.csv"]);
    assert_eq!(count(&cluster, "banks_transfers:*:account:*"), 50);
    for command in [
        &["broker", "--workers", "1", "--transfers", "1", "--quiet"][..],
        &["consume", "--accounts", "data/accounts_50.csv", "--quiet"][..],
    ] {
        let out = run(&url, dir.path(), command);
        let message = text(&out);
        assert_eq!(out.status.code(), Some(2), "{command:?}: {message}");
        assert!(message.contains("is a Redis Cluster node"), "{command:?}: {message}");
    }
}
