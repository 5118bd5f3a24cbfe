//! A private Redis Cluster made of plain `redis-server` processes, each in its own folder with its
//! own `nodes.conf`, on free ports (the cluster bus on a free port of its own, since the default
//! port + 10000 may pass 65535). Two shapes: one node holding every slot, which starts in under
//! 2 s and refuses cross-slot commands like a big cluster; and 3 masters with a replica each.

use std::time::{Duration, Instant};

use super::{RedisServer, free_port, ok, workdir_with_accounts};

/// How long a cluster may take to agree that it is whole (`cluster_state:ok` everywhere).
const READY_TIMEOUT_MS: u64 = 20_000;
/// The cluster's slots, all of which must be served.
const LAST_SLOT: &str = "16383";

pub struct RedisCluster {
    /// Every node; the masters first, in the order `redis-cli --cluster create` was given them.
    pub nodes: Vec<RedisServer>,
}

/// A node started in cluster mode, not yet part of a cluster.
fn node() -> RedisServer {
    let bus_port = free_port().to_string();
    RedisServer::start_with(&[
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        "2000",
        "--cluster-port",
        &bus_port,
    ])
}

impl RedisCluster {
    /// One master holding all 16,384 slots.
    pub fn single() -> RedisCluster {
        let node = node();
        let reply = node.cli(&["CLUSTER", "ADDSLOTSRANGE", "0", LAST_SLOT]);
        assert_eq!(reply.trim(), "OK", "CLUSTER ADDSLOTSRANGE: {reply}");
        let cluster = RedisCluster { nodes: vec![node] };
        cluster.wait_ready();
        cluster
    }

    /// Three masters, each with one replica.
    pub fn three_masters_with_replicas() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..6).map(|_| node()).collect();
        let mut args = vec!["--cluster".to_string(), "create".to_string()];
        args.extend(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)));
        args.extend(["--cluster-replicas", "1", "--cluster-yes"].map(String::from));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = nodes[0].cli(&args);
        assert!(out.contains("All 16384 slots covered"), "redis-cli --cluster create: {out}");
        let cluster = RedisCluster { nodes };
        cluster.wait_ready();
        cluster
    }

    /// A URL of one node: clients find the others from it.
    pub fn url(&self) -> String {
        self.nodes[0].url()
    }

    /// The nodes that are masters now (a failover changes which).
    pub fn masters(&self) -> Vec<&RedisServer> {
        self.nodes.iter().filter(|n| n.cli(&["ROLE"]).starts_with("master")).collect()
    }

    /// Waits until every node says the cluster is whole and every replica is attached.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_millis(READY_TIMEOUT_MS);
        while Instant::now() < deadline {
            let ok =
                self.nodes.iter().all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"));
            let replicas_synced = self.nodes.iter().all(|n| {
                let role = n.cli(&["ROLE"]);
                role.starts_with("master") || role.contains("connected")
            });
            if ok && replicas_synced {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the cluster was not ready within {READY_TIMEOUT_MS} ms");
    }

    /// Waits until `masters` masters serve every slot and every node left agrees the cluster is
    /// whole (after a master was killed and its replica promoted).
    pub fn wait_masters(&self, masters: usize) {
        let deadline = Instant::now() + Duration::from_millis(READY_TIMEOUT_MS);
        while Instant::now() < deadline {
            let ok =
                self.nodes.iter().all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"));
            if ok && self.masters().len() == masters {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the cluster did not heal to {masters} masters within {READY_TIMEOUT_MS} ms");
    }

    /// Every key on every master, with its type and value, sorted: a fingerprint of the data.
    pub fn dump(&self) -> Vec<String> {
        let mut all: Vec<String> = self.masters().iter().flat_map(|n| n.dump()).collect();
        all.sort();
        all
    }

    /// The sum of every account balance on every master.
    pub fn money(&self) -> i64 {
        let mut cents = 0;
        for master in self.masters() {
            for key in master.cli(&["--scan", "--pattern", "banks_transfers:*:account:*"]).lines() {
                cents += master.cli(&["GET", key]).trim().parse::<i64>().unwrap();
            }
        }
        cents
    }

    /// The credits' answers kept in the inboxes of every master (their `epoch` fields aside):
    /// once everything is settled and a recovery pass ran, none.
    pub fn inbox_answers(&self) -> usize {
        let mut answers = 0;
        for master in self.masters() {
            for key in master.cli(&["--scan", "--pattern", "banks_transfers:*:inbox"]).lines() {
                answers += master.cli(&["HKEYS", key]).lines().filter(|f| f.contains('|')).count();
            }
        }
        answers
    }

    /// How many times the inboxes of every master forgot settled transfers, summed.
    pub fn inbox_epochs(&self) -> u64 {
        let mut epochs = 0;
        for master in self.masters() {
            for key in master.cli(&["--scan", "--pattern", "banks_transfers:*:inbox"]).lines() {
                epochs += master.cli(&["HGET", key, "epoch"]).trim().parse::<u64>().unwrap_or(0);
            }
        }
        epochs
    }

    /// What is left in flight on every master: outbox entries (every field but the anchor
    /// `about`), and in-flight totals other than 0.
    pub fn in_flight(&self) -> Vec<String> {
        let mut left = Vec::new();
        for master in self.masters() {
            for key in master.cli(&["--scan", "--pattern", "banks_transfers:*:outbox"]).lines() {
                let fields = master.cli(&["HKEYS", key]);
                left.extend(fields.lines().filter(|f| *f != "about").map(|f| format!("{key} {f}")));
            }
            for key in master.cli(&["--scan", "--pattern", "banks_transfers:*:inflight"]).lines() {
                let cents = master.cli(&["GET", key]);
                if cents.trim() != "0" {
                    left.push(format!("{key} = {}", cents.trim()));
                }
            }
        }
        left
    }
}

/// A cluster of 3 masters with a replica each, loaded with `accounts` generated accounts (the
/// default `init` file when 100): the cluster, its URL, the working folder and the money loaded.
pub fn loaded_cluster(accounts: u64) -> (RedisCluster, String, tempfile::TempDir, i64) {
    let cluster = RedisCluster::three_masters_with_replicas();
    let url = cluster.url();
    let dir = workdir_with_accounts(&url, accounts);
    let file = format!("data/accounts_{accounts}.csv");
    let loaded = ok(&url, dir.path(), &["init", "--accounts", &file, "--json"]);
    let loaded: serde_json::Value = serde_json::from_str(&loaded).unwrap();
    (cluster, url, dir, loaded["total_cents"].as_i64().unwrap())
}
