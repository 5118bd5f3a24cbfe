//! Faults on a Redis Cluster of 3 masters with a replica each, while a broker moves money across
//! shards: the broker killed at random instants (unbatched and batched), a replica promoted by `CLUSTER FAILOVER`, a
//! master killed with SIGKILL. After each, `interbank recover` carries what was in flight to its
//! end, and no money is created or lost: the accounts hold what was loaded and nothing is left
//! in flight. Each scenario prints one FAULT line of figures and the seed that replays it.

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::cluster::{RedisCluster, loaded_cluster};
use common::*;
use rand::Rng;

/// The longest a scenario waits for a broker to finish.
const WAIT_LIMIT: Duration = Duration::from_secs(120);

/// Waits for a background broker and returns its summary.
fn finish(mut broker: Child) -> serde_json::Value {
    let deadline = Instant::now() + WAIT_LIMIT;
    while broker.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the broker did not finish in {WAIT_LIMIT:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = broker.wait_with_output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// Runs `interbank recover` and returns what it did.
fn recover(url: &str, dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&ok(url, dir, &["recover", "--json"])).unwrap()
}

#[test]
fn broker_killed_twenty_times_on_a_cluster_then_recovered() {
    const KILLS: u32 = 20;
    let (seed, mut rng) = fault_rng("cluster-broker-killed");
    let (cluster, url, dir, total) = loaded_cluster(100);
    for kill in 0..KILLS {
        // Every other run batched: a batch dies between its steps with many transfers in flight.
        let batch = if kill % 2 == 0 { "1" } else { "32" };
        let flags = ["--workers", "8", "--transfers", "100000", "--batch", batch];
        let mut broker = spawn_broker(&url, dir.path(), &flags);
        std::thread::sleep(Duration::from_millis(rng.random_range(50..400)));
        broker.kill().unwrap();
        broker.wait().unwrap();
    }
    let left_before = cluster.in_flight().len();
    let recovered = recover(&url, dir.path());
    assert_eq!(recovered["left_in_flight"], 0, "{recovered}");
    assert_eq!(cluster.in_flight(), Vec::<String>::new());
    assert_eq!(cluster.inbox_answers(), 0, "recover forgets what it settled");
    assert_eq!(cluster.money(), total, "money created or lost");
    let report = verified(&url, dir.path(), "data/accounts_100.csv");
    assert!(
        report.contains("ok   every transfer between banks is debited, answered and closed once"),
        "{report}"
    );
    eprintln!(
        "FAULT cluster-broker-killed: kills={KILLS} left_in_flight={left_before} recovered={} \
         money_lost=0 seed={seed}",
        recovered["found"]
    );
}

#[test]
fn a_replica_promoted_mid_run_loses_nothing() {
    let (cluster, url, dir, total) = loaded_cluster(100);
    // Batched: each step of 16 transfers is one call per bank when the shard changes hands.
    let flags = ["--workers", "8", "--transfers", "10000", "--batch", "16"];
    let mut broker = spawn_broker(&url, dir.path(), &flags);
    std::thread::sleep(Duration::from_millis(500));
    assert!(broker.try_wait().unwrap().is_none(), "the run ended before the failover");
    let replica = cluster.nodes.iter().find(|n| n.cli(&["ROLE"]).starts_with("slave")).unwrap();
    assert_eq!(replica.cli(&["CLUSTER", "FAILOVER"]).trim(), "OK");
    let summary = finish(broker);
    cluster.wait_ready();
    assert_eq!(summary["status"], "ended", "{summary}");
    let recovered = recover(&url, dir.path());
    assert_eq!(cluster.in_flight(), Vec::<String>::new());
    assert_eq!(cluster.inbox_answers(), 0, "recover forgets what it settled");
    assert_eq!(cluster.money(), total, "money created or lost");
    verified(&url, dir.path(), "data/accounts_100.csv");
    eprintln!(
        "FAULT cluster-failover: transfers={} retries={} left_in_flight={} recovered={} money_lost=0",
        summary["completed"].as_u64().unwrap() + summary["cancelled"].as_u64().unwrap(),
        summary["retries"],
        summary["in_flight"],
        recovered["found"]
    );
}

#[test]
fn a_master_killed_mid_run_loses_nothing_or_the_broker_says_what() {
    let (mut cluster, url, dir, total) = loaded_cluster(100);
    let mut broker = spawn_broker(&url, dir.path(), &["--workers", "8", "--transfers", "1500"]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(broker.try_wait().unwrap().is_none(), "the run ended before the kill");
    let victim = cluster.nodes.iter().position(|n| n.cli(&["ROLE"]).starts_with("master")).unwrap();
    cluster.nodes[victim].kill();
    let summary = finish(broker);
    let survivors = RedisCluster {
        nodes: cluster
            .nodes
            .drain(..)
            .enumerate()
            .filter(|(i, _)| *i != victim)
            .map(|(_, n)| n)
            .collect(),
    };
    survivors.wait_masters(3);
    let url = survivors.url();
    let recovered = recover(&url, dir.path());
    assert_eq!(survivors.in_flight(), Vec::<String>::new());
    assert_eq!(survivors.inbox_answers(), 0, "recover forgets what it settled");
    // Writes acknowledged by the killed master and not yet on its replica are lost with it, whole:
    // a transfer inside one bank, or a debit not yet credited (the broker waits for a replica
    // before it credits). So the accounts still hold exactly what was loaded.
    assert_eq!(survivors.money(), total, "money created or lost");
    // Lost whole transfers leave a consistent history; the verdict names any loss it finds.
    let (code, report) = consume(&url, dir.path(), "data/accounts_100.csv");
    assert!(code == Some(0) || report.contains("Gap"), "{report}");
    // The broker stops when a debit's sequence shows Redis lost acknowledged writes; a debit
    // found missing before its credit is never credited (no money is made) and left to recovery.
    let stopped_on_loss =
        summary["error"].as_str().is_some_and(|e| e.contains("no longer has transfers"));
    assert!(summary["status"] == "ended" || stopped_on_loss, "{summary}");
    eprintln!(
        "FAULT cluster-master-killed: status={} retries={} stopped_on_loss={stopped_on_loss} \
         recovered={} money_lost=0",
        summary["status"], summary["retries"], recovered["found"]
    );
}

#[test]
fn connections_cut_on_every_master_mid_run_lose_nothing() {
    const CUTS: u32 = 15;
    let (cluster, url, dir, total) = loaded_cluster(100);
    let broker = spawn_broker(&url, dir.path(), &["--workers", "8", "--transfers", "1500"]);
    let mut killed = 0;
    for _ in 0..CUTS {
        std::thread::sleep(Duration::from_millis(60));
        for master in cluster.masters() {
            let reply = master.cli(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"]);
            killed += reply.trim().parse::<u64>().unwrap_or(0);
        }
    }
    let summary = finish(broker);
    assert_eq!(summary["status"], "ended", "{summary}");
    let recovered = recover(&url, dir.path());
    assert_eq!(cluster.in_flight(), Vec::<String>::new());
    assert_eq!(cluster.inbox_answers(), 0, "recover forgets what it settled");
    assert_eq!(cluster.money(), total, "money created or lost");
    verified(&url, dir.path(), "data/accounts_100.csv");
    eprintln!(
        "FAULT cluster-connections-cut: cuts={CUTS} connections_killed={killed} retries={} \
         left_in_flight={} recovered={} money_lost=0",
        summary["retries"], summary["in_flight"], recovered["found"]
    );
}

#[test]
fn a_consumer_killed_on_a_cluster_resumes_from_its_checkpoint() {
    let (cluster, url, dir, _) = loaded_cluster(100);
    let broker = spawn_broker(&url, dir.path(), &["--workers", "8", "--transfers", "1500"]);
    let mut consumer = interbank(&url, dir.path())
        .args(["consume", "--quiet", "--json", "--name", "c1", "--checkpoint-interval", "0.2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT_LIMIT;
    while cluster.nodes[0].cli(&["-c", "EXISTS", "banks_transfers:consumer:c1"]).trim() != "1" {
        assert!(Instant::now() < deadline, "no checkpoint was written");
        std::thread::sleep(Duration::from_millis(20));
    }
    consumer.kill().unwrap();
    consumer.wait().unwrap();
    let summary = finish(broker);
    assert_eq!(summary["status"], "ended", "{summary}");
    let args = ["consume", "--quiet", "--json", "--name", "c1", "--idle-timeout", "1"];
    let out = run(&url, dir.path(), &args);
    assert!(
        text(&out).contains("resuming from checkpoint banks_transfers:consumer:c1"),
        "{}",
        text(&out)
    );
    let resumed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fresh =
        run(&url, dir.path(), &["consume", "--quiet", "--json", "--name", "fresh", "--restart"]);
    let fresh: serde_json::Value = serde_json::from_slice(&fresh.stdout).unwrap();
    assert_eq!(
        (resumed["verified"].as_bool(), fresh["verified"].as_bool()),
        (Some(true), Some(true))
    );
    for field in ["events", "completed", "cancelled", "moved_cents", "runs"] {
        assert_eq!(resumed[field], fresh[field], "{field}");
    }
    assert!(resumed["events_read"].as_u64() < resumed["events"].as_u64(), "{resumed}");
    eprintln!(
        "FAULT cluster-consumer-killed: kills=1 resumed=true events={} same_verdict=true",
        fresh["events"]
    );
}

/// The transfer ids in the outboxes of every master that are not of run `run` (every field but
/// the anchor `about`).
fn in_flight_of_other_runs(cluster: &RedisCluster, run: u64) -> Vec<String> {
    let prefix = format!("r{run}-");
    let mut ids = Vec::new();
    for master in cluster.masters() {
        for outbox in master.cli(&["--scan", "--pattern", "banks_transfers:*:outbox"]).lines() {
            let fields = master.cli(&["HKEYS", outbox]);
            let others = fields.lines().filter(|id| *id != "about" && !id.starts_with(&prefix));
            ids.extend(others.map(str::to_string));
        }
    }
    ids
}

#[test]
fn a_running_broker_recovers_what_a_killed_one_left_in_flight() {
    let (cluster, url, dir, total) = loaded_cluster(100);
    let mut live = spawn_broker(&url, dir.path(), &["--workers", "4", "--transfers", "1000000"]);
    std::thread::sleep(Duration::from_millis(800));
    // Other brokers, killed mid-run until one leaves a batch of transfers between their steps.
    let flags = ["--workers", "8", "--transfers", "100000", "--batch", "64"];
    let (mut killed, mut left) = (spawn_broker(&url, dir.path(), &flags), Vec::new());
    for _ in 0..50 {
        // Killed once it has transfers between their steps: its start (a recovery and trimming
        // pass over what the live broker has in flight) takes a few hundred ms.
        let started = Instant::now();
        while in_flight_of_other_runs(&cluster, 1).is_empty()
            && started.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        killed.kill().unwrap();
        killed.wait().unwrap();
        left = in_flight_of_other_runs(&cluster, 1);
        if !left.is_empty() {
            break;
        }
        killed = spawn_broker(&url, dir.path(), &flags);
    }
    assert!(!left.is_empty(), "no killed broker left anything in flight");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !in_flight_of_other_runs(&cluster, 1).is_empty() {
        assert!(live.try_wait().unwrap().is_none(), "the live run ended first");
        assert!(Instant::now() < deadline, "the live broker did not recover the killed ones'");
        std::thread::sleep(Duration::from_millis(100));
    }
    // That pass ends by forgetting settled transfers in the inboxes the live courier credits.
    while cluster.inbox_epochs() == 0 {
        assert!(live.try_wait().unwrap().is_none(), "the live run ended first");
        assert!(Instant::now() < deadline, "no inbox was trimmed while the live broker ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    live.kill().unwrap();
    live.wait().unwrap();
    recover(&url, dir.path());
    assert_eq!(cluster.money(), total, "money created or lost");
    assert_eq!(cluster.inbox_answers(), 0, "recover forgets what it settled");
    verified(&url, dir.path(), "data/accounts_100.csv");
    eprintln!(
        "FAULT cluster-live-recovery: left_in_flight={} recovered_by_the_live_broker=true",
        left.len()
    );
}

#[test]
fn a_consumer_following_a_run_through_a_failover_verifies_it() {
    let (cluster, url, dir, _) = loaded_cluster(100);
    let mut broker = spawn_broker(&url, dir.path(), &["--workers", "8", "--transfers", "1500"]);
    let live = interbank(&url, dir.path())
        .args([
            "consume",
            "--quiet",
            "--json",
            "--idle-timeout",
            "10",
            "--checkpoint-interval",
            "0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert!(broker.try_wait().unwrap().is_none(), "the run ended before the failover");
    let replica = cluster.nodes.iter().find(|n| n.cli(&["ROLE"]).starts_with("slave")).unwrap();
    assert_eq!(replica.cli(&["CLUSTER", "FAILOVER"]).trim(), "OK");
    let summary = finish(broker);
    assert_eq!(summary["status"], "ended", "{summary}");
    let out = live.wait_with_output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(report["verified"], true, "{report}");
    eprintln!("FAULT cluster-consumer-through-failover: events={} verified=true", report["events"]);
}

/// Sends `signal` (`STOP`, `CONT`) to a child process.
fn signal(child: &Child, signal: &str) {
    let pid = child.id().to_string();
    let sent = std::process::Command::new("kill").args([&format!("-{signal}"), &pid]).status();
    assert!(sent.unwrap().success(), "kill -{signal} {pid}");
}

#[test]
fn inboxes_trimmed_beside_a_paused_broker_create_no_money() {
    // A broker frozen at random instants (SIGSTOP: a long pause, as a VM or a debugger makes)
    // while `recover` carries its transfers in flight to their end and forgets their answers.
    // Frozen between making sure of a debit and sending its credit, it sends that credit after
    // the answer is gone: the inbox's epoch has moved on, the credit is refused as stale, the
    // debit is found settled, and nothing is credited twice.
    let (seed, mut rng) = fault_rng("cluster-trim-paused-broker");
    let (cluster, url, dir, total) = loaded_cluster(100);
    let mut live = spawn_broker(&url, dir.path(), &["--workers", "8", "--transfers", "4000"]);
    let mut pauses = 0;
    while live.try_wait().unwrap().is_none() && pauses < 30 {
        std::thread::sleep(Duration::from_millis(rng.random_range(20..200)));
        signal(&live, "STOP");
        recover(&url, dir.path());
        signal(&live, "CONT");
        pauses += 1;
    }
    let summary = finish(live);
    assert_eq!(summary["status"], "ended", "{summary}");
    recover(&url, dir.path());
    assert_eq!(cluster.money(), total, "money created or lost");
    assert_eq!(cluster.in_flight(), Vec::<String>::new());
    assert_eq!(cluster.inbox_answers(), 0, "recover forgets what it settled");
    let report = verified(&url, dir.path(), "data/accounts_100.csv");
    assert!(
        report.contains("ok   every transfer between banks is debited, answered and closed once"),
        "{report}"
    );
    eprintln!(
        "FAULT cluster-trim-paused-broker: pauses={pauses} inbox_epochs={} stale_credits={} \
         in_flight_at_end={} money_lost=0 seed={seed}",
        cluster.inbox_epochs(),
        summary["stale_credits"],
        summary["in_flight"]
    );
}
