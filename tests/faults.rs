//! The fault suite (`make faults`): each scenario runs a real broker against a real redis-server,
//! breaks something mid-run, and ends with `consume` verifying every check, so no money was lost
//! or created and no transfer applied twice. Every loop is bounded in count and time; all traffic
//! is on loopback. Each scenario prints one `FAULT ...` line with its figures (see
//! docs/RELIABILITY.md); random delays come from a printed seed (`FAULT_SEED=<n>` replays them).

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rand::Rng;

/// The longest any scenario waits for a broker to finish or for the stream to grow.
const WAIT_LIMIT: Duration = Duration::from_secs(120);

fn stream_length(redis: &RedisServer) -> u64 {
    redis.cli(&["XLEN", "banks_transfers:events"]).trim().parse().unwrap_or(0)
}

/// Waits until the stream holds at least `events` entries.
fn wait_for_events(redis: &RedisServer, events: u64) {
    let deadline = Instant::now() + WAIT_LIMIT;
    while stream_length(redis) < events {
        assert!(Instant::now() < deadline, "the stream did not reach {events} events");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Generates and loads 100 accounts on `redis`; returns its URL and the work folder.
fn loaded(redis: &RedisServer) -> (String, tempfile::TempDir) {
    let url = redis.url();
    let dir = workdir_with_accounts(&url, 100);
    ok(&url, dir.path(), &["init"]);
    (url, dir)
}

/// Loads 100 accounts on `redis` and starts a 20 x 1500 transfer broker on them.
fn start_run(redis: &RedisServer) -> (String, tempfile::TempDir, Child) {
    let (url, dir) = loaded(redis);
    let broker = spawn_broker(&url, dir.path(), &["--workers", "20", "--transfers", "1500"]);
    (url, dir, broker)
}

/// Waits for a broker and returns its JSON summary, whatever its exit code.
fn finish(broker: Child) -> (Option<i32>, serde_json::Value, String) {
    let out = broker.wait_with_output().unwrap();
    let summary = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code(), summary, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Runs `consume --json` to the end and returns the report; panics unless it verified.
fn verified_json(url: &str, dir: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["consume", "--quiet", "--json", "--idle-timeout", "1"];
    args.extend_from_slice(extra);
    let out = run(url, dir, &args);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("consume printed no report:\n{}", text(&out)));
    assert!(
        out.status.success(),
        "consume did not verify:\n{}",
        serde_json::to_string_pretty(&report).unwrap()
    );
    report
}

fn money_check(report: &serde_json::Value) -> bool {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "money is conserved" && c["passed"] == true)
}

#[test]
fn broker_killed_twenty_times_at_random_instants() {
    const KILLS: u32 = 20;
    let (seed, mut rng) = fault_rng("broker-killed");
    let redis = RedisServer::start();
    let (url, dir) = loaded(&redis);
    for _ in 0..KILLS {
        let mut broker =
            spawn_broker(&url, dir.path(), &["--workers", "20", "--transfers", "100000"]);
        std::thread::sleep(Duration::from_millis(rng.random_range(20..400)));
        broker.kill().unwrap();
        broker.wait().unwrap();
    }
    broker(&url, dir.path(), &["--workers", "4", "--transfers", "100"]);
    let report = verified_json(&url, dir.path(), &[]);
    // A broker killed while still starting up records no run: that is one of the instants too.
    let runs = report["runs"].as_array().unwrap();
    assert!((1..=KILLS as usize + 1).contains(&runs.len()), "{runs:?}");
    assert_eq!(runs.last().unwrap()["status"], "ended");
    assert!(money_check(&report));
    eprintln!(
        "FAULT broker-killed: kills={KILLS} runs_started={} transfers_checked={} money_lost=0 \
         duplicates=0 seed={seed}",
        runs.len(),
        report["events"]
    );
}

#[test]
fn a_run_number_taken_by_a_broker_killed_before_it_recorded_its_run_is_skipped() {
    let redis = RedisServer::start();
    let (url, dir) = loaded(&redis);
    broker(&url, dir.path(), &["--workers", "2", "--transfers", "10"]);
    // The instant between taking a run number and recording the run: a number, no record.
    redis.cli(&["INCR", "banks_transfers:runs"]);
    broker(&url, dir.path(), &["--workers", "2", "--transfers", "10"]);
    let report = verified_json(&url, dir.path(), &[]);
    let runs: Vec<u64> =
        report["runs"].as_array().unwrap().iter().map(|r| r["run"].as_u64().unwrap()).collect();
    assert_eq!(runs, [1, 3]);
}

#[test]
fn connections_cut_thirty_times_mid_run() {
    cut_connections_mid_run("connections-cut", &["--workers", "20", "--transfers", "3000"], 60_000);
}

#[test]
fn connections_cut_thirty_times_mid_run_with_group_commit() {
    let flags = ["--workers", "60", "--transfers", "1000", "--group-commit"];
    cut_connections_mid_run("connections-cut-group-commit", &flags, 60_000);
}

/// Cuts every client connection thirty times while a broker run with these flags (`planned`
/// transfers) and a live consumer work: the broker retries, nothing is applied twice or lost.
fn cut_connections_mid_run(scenario: &str, flags: &[&str], planned: u64) {
    const CUTS: u32 = 30;
    let (seed, mut rng) = fault_rng(scenario);
    let redis = RedisServer::start();
    let (url, dir) = loaded(&redis);
    let broker = spawn_broker(&url, dir.path(), flags);
    wait_for_events(&redis, 100);
    // A consumer follows the run live: its connections are cut too, mid-reply as it happens.
    let live = interbank(&url, dir.path())
        .args(["consume", "--quiet", "--json", "--idle-timeout", "5", "--checkpoint-interval", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut connections_killed = 0;
    for _ in 0..CUTS {
        std::thread::sleep(Duration::from_millis(rng.random_range(20..120)));
        let reply = redis.cli(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"]);
        connections_killed += reply.trim().parse::<u64>().unwrap_or(0);
    }
    let (code, summary, stderr) = finish(broker);
    assert_eq!(code, Some(0), "{summary} {stderr}");
    let decided = summary["completed"].as_u64().unwrap() + summary["cancelled"].as_u64().unwrap();
    assert_eq!(decided, planned, "{summary}");
    assert_eq!(summary["events"], planned);
    assert!(connections_killed > 0 && summary["retries"].as_u64().unwrap() > 0, "{summary}");
    let out = live.wait_with_output().unwrap();
    let live_report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("the live consume printed no report:\n{}", text(&out)));
    assert!(out.status.success(), "the live consume did not verify: {live_report}");
    assert_eq!(live_report["events"], planned);
    let report = verified_json(&url, dir.path(), &[]);
    assert_eq!(report["events"], planned);
    eprintln!(
        "FAULT {scenario}: cuts={CUTS} connections_killed={connections_killed} retries={} \
         transfers_checked={planned} duplicates=0 money_lost=0 seed={seed}",
        summary["retries"]
    );
}

/// Stops Redis mid-run in the given way, starts it again, and checks the broker finished its
/// work with nothing lost: with `appendfsync always` every acknowledged transfer is on disk.
fn restart_mid_run(stop: fn(&mut RedisServer), how: &str) {
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let (url, dir, broker) = start_run(&redis);
    wait_for_events(&redis, 3_000);
    stop(&mut redis);
    std::thread::sleep(Duration::from_millis(700));
    redis.restart();
    let (code, summary, stderr) = finish(broker);
    assert_eq!(code, Some(0), "{summary} {stderr}");
    assert_eq!(summary["events"], 30_000, "{summary}");
    assert_eq!(summary["failed"], 0, "{summary}");
    let report = verified_json(&url, dir.path(), &[]);
    assert_eq!(report["events"], 30_000);
    eprintln!(
        "FAULT redis-restart-{how}: restarts=1 appendfsync=always retries={} transfers_checked=30000 \
         acknowledged_but_lost=0 money_lost=0",
        summary["retries"]
    );
}

#[test]
fn redis_shut_down_and_restarted_mid_run_with_aof_always() {
    restart_mid_run(RedisServer::shutdown_nosave, "shutdown-nosave");
}

#[test]
fn redis_killed_and_restarted_mid_run_with_aof_always() {
    restart_mid_run(RedisServer::kill, "sigkill");
}

#[test]
fn redis_killed_with_aof_everysec_keeps_a_consistent_prefix() {
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "everysec"]);
    let (url, dir, broker) = start_run(&redis);
    wait_for_events(&redis, 5_000);
    redis.kill();
    std::thread::sleep(Duration::from_millis(300));
    redis.restart();
    let (code, summary, stderr) = finish(broker);
    let acknowledged =
        summary["completed"].as_u64().unwrap() + summary["cancelled"].as_u64().unwrap();
    // Whatever Redis kept is consistent: every check holds on it.
    let report = verified_json(&url, dir.path(), &[]);
    let kept = report["events"].as_u64().unwrap();
    assert!(kept <= acknowledged, "{kept} events kept, {acknowledged} acknowledged");
    if kept < acknowledged {
        // The broker saw the loss as a sequence gap and stopped, saying why.
        assert_eq!(code, Some(1), "{summary} {stderr}");
        assert!(summary["error"].as_str().unwrap().contains("lost"), "{summary}");
    }
    eprintln!(
        "FAULT redis-restart-everysec: acknowledged={acknowledged} kept={kept} acknowledged_but_lost={} \
         half_transfers=0 verified=true",
        acknowledged - kept
    );
}

#[test]
fn consumer_killed_and_restarted_resumes_from_its_checkpoint() {
    let redis = RedisServer::start();
    let (url, dir) = loaded(&redis);
    let broker = spawn_broker(&url, dir.path(), &["--workers", "20", "--transfers", "2000"]);
    let mut consumer = interbank(&url, dir.path())
        .args(["consume", "--quiet", "--json", "--name", "c1", "--checkpoint-interval", "0.2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT_LIMIT;
    while redis.cli(&["EXISTS", "banks_transfers:consumer:c1"]).trim() != "1" {
        assert!(Instant::now() < deadline, "no checkpoint was written");
        std::thread::sleep(Duration::from_millis(20));
    }
    consumer.kill().unwrap();
    consumer.wait().unwrap();
    let (code, summary, stderr) = finish(broker);
    assert_eq!(code, Some(0), "{summary} {stderr}");
    let out = run(
        &url,
        dir.path(),
        &["consume", "--quiet", "--json", "--name", "c1", "--idle-timeout", "1"],
    );
    let resumed_note = text(&out);
    assert!(
        resumed_note.contains("resuming from checkpoint banks_transfers:consumer:c1"),
        "{resumed_note}"
    );
    let resumed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fresh = verified_json(&url, dir.path(), &["--name", "fresh", "--restart"]);
    assert_eq!(resumed["verified"], true);
    for field in ["events", "completed", "cancelled", "moved_cents", "runs"] {
        assert_eq!(resumed[field], fresh[field], "{field}");
    }
    // The resumed consumer read only what followed its checkpoint; the fresh one read it all.
    assert!(resumed["events_read"].as_u64() < resumed["events"].as_u64(), "{resumed}");
    assert_eq!(fresh["events_read"], fresh["events"]);
    eprintln!(
        "FAULT consumer-killed: kills=1 resumed=true transfers_checked={} same_verdict=true",
        fresh["events"]
    );
}

#[test]
fn redis_out_of_memory_mid_run_stops_the_broker_cleanly() {
    let redis = RedisServer::start();
    let (url, dir) = loaded(&redis);
    let used: u64 = redis
        .cli(&["INFO", "memory"])
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    redis.cli(&["CONFIG", "SET", "maxmemory", &(used + 3_000_000).to_string()]);
    let broker = spawn_broker(&url, dir.path(), &["--workers", "20", "--transfers", "100000"]);
    let (code, summary, stderr) = finish(broker);
    assert_eq!(code, Some(1), "{summary} {stderr}");
    let error = summary["error"].as_str().unwrap();
    assert!(error.contains("Redis is out of memory (maxmemory reached)"), "{error}");
    assert!(error.contains("nothing was half-applied"), "{error}");
    redis.cli(&["CONFIG", "SET", "maxmemory", "0"]);
    let report = verified_json(&url, dir.path(), &[]);
    eprintln!(
        "FAULT redis-oom: stopped_cleanly=true transfers_checked={} money_lost=0",
        report["events"]
    );
}

#[test]
fn scripts_flushed_mid_run_are_reloaded() {
    const FLUSHES: u32 = 10;
    let redis = RedisServer::start();
    let (url, dir, broker) = start_run(&redis);
    wait_for_events(&redis, 1_000);
    for _ in 0..FLUSHES {
        redis.cli(&["SCRIPT", "FLUSH"]);
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, summary, stderr) = finish(broker);
    assert_eq!(code, Some(0), "{summary} {stderr}");
    assert_eq!(summary["events"], 30_000);
    let report = verified_json(&url, dir.path(), &[]);
    eprintln!(
        "FAULT script-flush: flushes={FLUSHES} transfers_checked={} money_lost=0",
        report["events"]
    );
}

#[test]
fn redis_restarted_from_an_older_snapshot_keeps_a_consistent_prefix() {
    let mut redis = RedisServer::start();
    let (url, dir, broker) = start_run(&redis);
    wait_for_events(&redis, 2_000);
    assert_eq!(redis.cli(&["SAVE"]).trim(), "OK");
    wait_for_events(&redis, 8_000);
    redis.kill();
    redis.restart();
    let (code, summary, stderr) = finish(broker);
    let acknowledged =
        summary["completed"].as_u64().unwrap() + summary["cancelled"].as_u64().unwrap();
    let report = verified_json(&url, dir.path(), &[]);
    let kept = report["events"].as_u64().unwrap();
    assert!(kept < acknowledged, "{kept} events kept, {acknowledged} acknowledged");
    assert_eq!(code, Some(1), "{summary} {stderr}");
    assert!(summary["error"].as_str().unwrap().contains("lost its last writes"), "{summary}");
    eprintln!(
        "FAULT redis-restart-older-snapshot: acknowledged={acknowledged} kept={kept} \
         acknowledged_but_lost={} half_transfers=0 verified=true broker_stopped_on_gap=true",
        acknowledged - kept
    );
}

#[test]
fn redis_paused_mid_run_slows_the_broker_but_loses_nothing() {
    const PAUSE_MS: u64 = 1_500;
    let redis = RedisServer::start();
    let (url, dir, broker) = start_run(&redis);
    wait_for_events(&redis, 2_000);
    assert_eq!(redis.cli(&["CLIENT", "PAUSE", &PAUSE_MS.to_string(), "ALL"]).trim(), "OK");
    let (code, summary, stderr) = finish(broker);
    assert_eq!(code, Some(0), "{summary} {stderr}");
    assert_eq!(summary["events"], 30_000);
    let slowest_ms = summary["latency_max_ms"].as_f64().unwrap();
    assert!(slowest_ms >= PAUSE_MS as f64 * 0.8, "{summary}");
    let report = verified_json(&url, dir.path(), &[]);
    eprintln!(
        "FAULT redis-paused: pause_ms={PAUSE_MS} slowest_call_ms={slowest_ms} transfers_checked={} money_lost=0",
        report["events"]
    );
}
