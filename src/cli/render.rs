//! What the commands return, as text for a person. `--json` prints the same structures with serde
//! instead; this module is the only place that decides how a result reads on a terminal.

use interbank::commands::bench::{BenchReport, ClusterBench};
use interbank::commands::broker::{BrokerSummary, Pairs};
use interbank::commands::consume::Consumed;
use interbank::commands::generate::Generated;
use interbank::commands::init::InitReport;
use interbank::commands::recover::Recovered;
use interbank::ledger::verify::Report;

/// What `gen` wrote.
pub fn generated(generated: &Generated, seed: u64) -> String {
    format!(
        "wrote {} accounts ({} cents) to {} and the banks to {} (seed {seed})\n",
        generated.accounts,
        generated.total_cents,
        generated.accounts_path.display(),
        generated.banks_path.display()
    )
}

/// What `init` loaded, and from where.
pub fn init_report(report: &InitReport, accounts_path: &std::path::Path, prefix: &str) -> String {
    format!(
        "loaded {} accounts of {} banks ({} cents) from {} under {prefix}:* in {} ms; removed {} old keys\n\
         {} of the IBANs carry their bank's entity code (the bank column is taken as the truth)\n",
        report.accounts,
        report.banks,
        report.total_cents,
        accounts_path.display(),
        report.elapsed_ms,
        report.removed_keys,
        report.entity_codes_matching
    )
}

/// The summary for a person.
pub fn broker_summary(summary: &BrokerSummary) -> String {
    let (calls, mut latency) = if summary.group_commit {
        ("group commit".to_string(), "per transfer, its wait for a call included".to_string())
    } else {
        (format!("batch {}", summary.batch), "per call".to_string())
    };
    let mut options = match summary.pairs {
        Pairs::Any => String::new(),
        pairs => format!(", {} pairs", pairs.as_str()),
    };
    if let Some(rate) = summary.rate_per_s {
        options.push_str(&format!(", rate {rate}/s"));
        latency.push_str(", from its scheduled start");
    }
    let mut text = format!(
        "broker run {} ({}, {} workers, {calls}, {} connections, seed {}{options}): {}\n\
         \x20 transfers   {} planned: {} completed, {} cancelled, {} failed\n\
         \x20 throughput  {:.0} transfers/s over {:.2} s\n\
         \x20 latency     p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms ({latency})\n\
         \x20 redis       {} calls ({:.2} per transfer), {} retries, {} watch conflicts, {} events",
        summary.run,
        summary.strategy.as_str(),
        summary.workers,
        summary.connections,
        summary.seed,
        summary.status.as_str(),
        summary.planned,
        summary.completed,
        summary.cancelled,
        summary.failed,
        summary.transfers_per_s,
        summary.elapsed_s,
        summary.latency_p50_ms,
        summary.latency_p99_ms,
        summary.latency_p999_ms,
        summary.latency_max_ms,
        summary.redis_calls,
        summary.redis_calls as f64 / (summary.completed + summary.cancelled).max(1) as f64,
        summary.retries,
        summary.watch_conflicts,
        summary.events,
    );
    if let Some(recovered) = &summary.recovered {
        text.push_str(&format!(
            "\n  cluster     {} cross-bank transfers left in flight; recovery passes carried {} to their end \
             and forgot {} settled ones' answers; {} credits refused as stale and checked again{}",
            summary.in_flight,
            recovered.settled + recovered.voided,
            recovered.trimmed.forgotten,
            summary.stale_credits,
            if !summary.group_commit {
                format!("; the courier gathered for {} ms", summary.linger_ms)
            } else {
                String::new()
            }
        ));
    }
    if let Some(error) = &summary.error {
        text.push_str(&format!("\n  error       {error}"));
    }
    text
}

/// The cluster's part of a bench report.
fn cluster_bench(cluster: &ClusterBench, batch: usize) -> String {
    let per_master: Vec<String> =
        cluster.per_master_cpu_s_per_1000.iter().map(|cpu| format!("{cpu:.4}")).collect();
    let mut text = format!(
        "\ncluster of {} masters (atomic, batch 1): {:.0} transfers/s, Redis CPU {:.4} s per 1000 transfers summed ({} per master)\n\
         \x20 {} of {} transfers were between banks (three steps on two shards); summed CPU / single server: {:.2}x; a cross-bank transfer costs about {:.2}x one in a single call\n",
        cluster.masters,
        cluster.transfers_per_s,
        cluster.redis_cpu_s_per_1000,
        per_master.join(", "),
        cluster.cross_bank_transfers,
        cluster.transfers,
        cluster.cluster_over_single,
        cluster.cross_over_same
    );
    text.push_str(&format!(
        "  batched (--batch {}): {:.0} transfers/s, Redis CPU {:.4} s per 1000 transfers summed; over the single server's batched run: {:.2}x\n",
        batch,
        cluster.batched_transfers_per_s,
        cluster.batched_redis_cpu_s_per_1000,
        cluster.batched_over_single_batched
    ));
    if cluster.verified {
        text.push_str(
            "  verified: every consume check of the sharded layout holds, after each run\n",
        );
    } else {
        text.push_str(&format!(
            "  NOT VERIFIED: failed checks: {}\n",
            cluster.failed_checks.join("; ")
        ));
    }
    text
}

/// What a recovery pass did.
pub fn recovered(recovered: &Recovered) -> String {
    let mut text = format!(
        "recover: {} transfers were in flight: {} credited and settled, {} refunded (voided), {} settled meanwhile\n",
        recovered.found, recovered.settled, recovered.voided, recovered.already_settled
    );
    if recovered.vanished > 0 {
        text.push_str(&format!(
            "recover: {} were gone from their outbox before they could be checked: settled meanwhile, \
             or lost with their debit in a failover (no money moved then)\n",
            recovered.vanished
        ));
    }
    for error in &recovered.errors {
        text.push_str(&format!("recover: could not finish {error}\n"));
    }
    if recovered.failed > recovered.errors.len() as u64 {
        text.push_str(&format!(
            "recover: ... and {} more could not be finished\n",
            recovered.failed - recovered.errors.len() as u64
        ));
    }
    if recovered.left_in_flight > 0 {
        text.push_str(&format!(
            "recover: {} left in flight: no replica of their shard acknowledged the debits; run it again\n",
            recovered.left_in_flight
        ));
    }
    let trimmed = &recovered.trimmed;
    text.push_str(&format!(
        "recover: inboxes: {} answers of settled transfers forgotten, {} kept for transfers in flight\n",
        trimmed.forgotten, trimmed.in_flight
    ));
    if trimmed.unconfirmed > 0 {
        text.push_str(&format!(
            "recover: {} answers kept: no replica of their source's shard acknowledged the settlement in time; \
             the next pass forgets them\n",
            trimmed.unconfirmed
        ));
    }
    if trimmed.unknown_source > 0 {
        text.push_str(&format!(
            "recover: {} answers kept: they name a source bank that is not in the data set\n",
            trimmed.unknown_source
        ));
    }
    text
}

/// The report for a person: the verdict first, then each check.
pub fn report(report: &Report) -> String {
    let mut text = String::new();
    let verdict = if report.verified { "VERIFIED" } else { "FAILED" };
    text.push_str(&format!(
        "consume: {verdict}: {} events ({} completed, {} cancelled), {} cents moved, {} accounts, {} banks, {} cents in all\n",
        report.events, report.completed, report.cancelled, report.moved_cents, report.accounts, report.banks, report.total_cents
    ));
    if !report.cancelled_by_reason.is_empty() {
        let reasons: Vec<String> =
            report.cancelled_by_reason.iter().map(|(r, c)| format!("{r} {c}")).collect();
        text.push_str(&format!("  cancelled: {}\n", reasons.join(", ")));
    }
    for run in &report.runs {
        let expected = run.expected_events.map_or("unknown".to_string(), |e| e.to_string());
        text.push_str(&format!(
            "  run {} {} {}: {} events seen, {expected} expected\n",
            run.run,
            run.strategy.as_str(),
            run.status.as_str(),
            run.seen.events
        ));
    }
    for check in &report.checks {
        let mark = if check.passed { "ok  " } else { "FAIL" };
        text.push_str(&format!("  {mark} {} ({})\n", check.name, check.detail));
        for failure in &check.failures {
            text.push_str(&format!("         {failure}\n"));
        }
        if check.more_failures > 0 {
            text.push_str(&format!("         ... and {} more\n", check.more_failures));
        }
    }
    text
}

/// The report for a person, with the reading speed after the verdict's details.
pub fn consumed(consumed: &Consumed) -> String {
    let mut text = format!(
        "{}  read {} events from the stream in {:.2} s ({:.0} events/s)\n",
        report(&consumed.report),
        consumed.events_read,
        consumed.read_s,
        consumed.events_read as f64 / consumed.read_s.max(1e-9)
    );
    if let Err(why) = &consumed.recorded {
        text.push_str(&format!(
            "  warning: the verdict was not recorded for `status` and the dashboard: {why}\n"
        ));
    }
    text
}

/// The table for a person.
pub fn bench_report(bench: &BenchReport) -> String {
    let c = &bench.config;
    let mut text = format!(
        "interbank bench: {} accounts, {} workers x {} transfers, amounts {}..={} cents, redis-server {} (private)\n\n",
        c.accounts,
        c.workers,
        c.transfers_per_worker,
        c.min_amount_cents,
        c.max_amount_cents,
        bench.redis_version
    );
    text.push_str(&format!(
        "{:<38}{:>13}{:>9}{:>9}{:>10}{:>14}{:>11}{:>13}\n",
        "run",
        "transfers/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "Redis CPU s",
        "commands",
        "round trips"
    ));
    text.push_str(&format!(
        "{:<38}{:>13}{:>9}{:>9}{:>10}{:>14}{:>11}{:>13}\n",
        "", "", "", "", "", "/1000 tr.", "/transfer", "/transfer"
    ));
    for row in &bench.rows {
        let p999 = row.p999_ms.map_or("-".to_string(), |v| format!("{v:.3}"));
        text.push_str(&format!(
            "{:<38}{:>13.0}{:>9.3}{:>9.3}{:>10}{:>14.3}{:>11.2}{:>13.3}\n",
            row.name,
            row.transfers_per_s,
            row.p50_ms,
            row.p99_ms,
            p999,
            row.redis_cpu_s_per_1000,
            row.commands_per_transfer,
            row.round_trips_per_transfer
        ));
    }
    text.push_str(&format!(
        "\natomic / watch: {:.2}x   atomic / ceiling: {:.2}   atomic --batch {} / ceiling: {:.2}\n",
        bench.atomic_over_watch, bench.atomic_over_ceiling, c.batch, bench.batched_over_ceiling
    ));
    if bench.verified {
        text.push_str(&format!(
            "verified: every consume check holds over the {} events of the three runs \
             (replayed and checked in {:.2} s: {:.0} events/s)\n",
            bench.events_verified,
            bench.verify_s,
            bench.events_verified as f64 / bench.verify_s.max(1e-9)
        ));
    } else {
        text.push_str(&format!(
            "NOT VERIFIED: failed checks: {}\n",
            bench.failed_checks.join("; ")
        ));
    }
    if let Some(cluster) = &bench.cluster {
        text.push_str(&cluster_bench(cluster, bench.config.batch));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(events: u64) -> Report {
        Report {
            verified: true,
            events,
            completed: events,
            cancelled: 0,
            cancelled_by_reason: Vec::new(),
            moved_cents: 500,
            accounts: 2,
            banks: 1,
            total_cents: 1000,
            runs: Vec::new(),
            checks: Vec::new(),
        }
    }

    #[test]
    fn a_verified_consume_reads_as_before() {
        let report = verified(2);
        let verdict = interbank::view::verdict::Verdict::of(&report, "default", 0);
        let consumed = Consumed {
            report,
            events_read: 2,
            read_s: 0.5,
            recorded: Ok(()),
            verdict,
            timeline: Default::default(),
        };
        assert_eq!(
            self::consumed(&consumed),
            "consume: VERIFIED: 2 events (2 completed, 0 cancelled), 500 cents moved, 2 accounts, \
             1 banks, 1000 cents in all\n  read 2 events from the stream in 0.50 s (4 events/s)\n"
        );
    }
}
