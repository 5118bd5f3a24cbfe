//! `interbank bench` end to end on a small workload: it starts its own redis-server, runs the
//! four measurements, prints the table and exits 0 only because the final state verified.

mod common;

use common::*;

/// Runs `bench` on a small workload with these extra flags and returns its JSON report.
fn small_bench(extra: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["bench", "--accounts", "50", "--workers", "4", "--transfers", "100"];
    args.extend(["--batch", "16", "--ceiling-requests", "2000", "--json", "--out", "data/bench"]);
    args.extend(extra);
    // The URL is never used: bench starts its own servers.
    let out = run("redis://127.0.0.1:1", dir.path(), &args);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn bench_runs_side_by_side_and_verifies() {
    let report = small_bench(&[]);
    assert_eq!(report["verified"], true);
    assert_eq!(report["events_verified"], 1200);
    assert!(report["verify_s"].as_f64().unwrap() > 0.0, "{report}");
    let rows = report["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "watch (seed protocol)",
            "atomic",
            "atomic --batch 16",
            "ceiling: redis-benchmark EVALSHA -P 16"
        ]
    );
    for row in rows {
        assert!(row["transfers_per_s"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["commands_per_transfer"].as_f64().unwrap() > 0.0, "{row}");
    }
    assert_eq!(rows[3]["transfers"], 2000);
    assert!(report["atomic_over_watch"].as_f64().unwrap() > 0.0);
}

#[test]
fn bench_cluster_runs_atomic_on_a_private_cluster_and_verifies_it() {
    let report = small_bench(&["--cluster"]);
    let cluster = &report["cluster"];
    assert_eq!(cluster["verified"], true, "{cluster}");
    assert_eq!((cluster["masters"].as_u64(), cluster["transfers"].as_u64()), (Some(3), Some(400)));
    let per_master = cluster["per_master_cpu_s_per_1000"].as_array().unwrap();
    assert_eq!(per_master.len(), 3);
    let summed: f64 = per_master.iter().map(|v| v.as_f64().unwrap()).sum();
    assert!((summed - cluster["redis_cpu_s_per_1000"].as_f64().unwrap()).abs() < 1e-9);
    // 13 banks: some 12 in 13 transfers at random are between two of them.
    let between = cluster["cross_bank_transfers"].as_u64().unwrap();
    assert!((300..400).contains(&between), "{between} of 400: {cluster}");
}
