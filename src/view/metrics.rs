//! `/metrics` in the Prometheus text format (version 0.0.4), from the overview and the live
//! counts: `interbank_` prefix, `_total` for counters, units in names (`_cents`, `_seconds`), no
//! IBAN in any label (a bank name is a label; accounts are never listed one by one).

use std::fmt::Write;

use crate::ledger::runs::RunStatus;
use crate::view::live::Live;
use crate::view::overview::{Overview, State};

/// The text `/metrics` serves. `overview` is `None` until Redis was read once; `redis_up` says
/// whether the last read succeeded.
pub fn render(overview: Option<&Overview>, live: &Live, redis_up: bool) -> String {
    let mut out = String::new();
    family(&mut out, "interbank_redis_up", "gauge", "Whether the last read of Redis succeeded.");
    sample(&mut out, "interbank_redis_up", &[], i128::from(redis_up));
    family(
        &mut out,
        "interbank_transfers_total",
        "counter",
        "Transfers decided in the event streams since this server started following them, by outcome.",
    );
    sample(
        &mut out,
        "interbank_transfers_total",
        &[("outcome", "completed")],
        i128::from(live.completed),
    );
    sample(
        &mut out,
        "interbank_transfers_total",
        &[("outcome", "cancelled")],
        i128::from(live.cancelled),
    );
    family(
        &mut out,
        "interbank_transfer_steps_total",
        "counter",
        "Other steps of transfers between banks read from the streams: a debit or a void each, a settlement of many as one.",
    );
    sample(&mut out, "interbank_transfer_steps_total", &[], i128::from(live.steps));
    if let Some(overview) = overview {
        money(&mut out, overview);
        banks(&mut out, overview);
        streams(&mut out, overview);
        verification(&mut out, overview);
        runs(&mut out, overview);
    }
    out
}

fn money(out: &mut String, o: &Overview) {
    let gauges = [
        ("interbank_money_loaded_cents", "Money loaded by init.", i128::from(o.money.total_cents)),
        ("interbank_money_accounts_cents", "Money in the accounts now.", o.money.accounts_cents),
        (
            "interbank_money_in_flight_cents",
            "Money debited and not yet settled or voided (Redis Cluster).",
            o.money.in_flight_cents,
        ),
        (
            "interbank_money_difference_cents",
            "Accounts plus in flight minus loaded: 0 when nothing is lost or created.",
            o.money.difference_cents,
        ),
    ];
    for (name, help, value) in gauges {
        family(out, name, "gauge", help);
        sample(out, name, &[], value);
    }
    let name = "interbank_money_conserved";
    family(
        out,
        name,
        "gauge",
        "1 when every conservation check holds on the last read, 0 otherwise.",
    );
    sample(out, name, &[], i128::from(o.conservation.state == State::Conserved));
    let name = "interbank_conservation_state";
    family(out, name, "gauge", "The conservation state of the last read (1 for the current one).");
    for state in [State::Conserved, State::Violated, State::Unsettled, State::Unknown] {
        sample(out, name, &[("state", state.as_str())], i128::from(o.conservation.state == state));
    }
}

fn banks(out: &mut String, o: &Overview) {
    let name = "interbank_bank_balance_cents";
    family(out, name, "gauge", "Each bank's balance: money received minus money sent.");
    for bank in &o.banks {
        if let Some(cents) = bank.balance_cents {
            sample(out, name, &[("bank", &bank.name)], i128::from(cents));
        }
    }
    let name = "interbank_bank_in_flight_cents";
    family(out, name, "gauge", "Money in flight out of each bank (Redis Cluster).");
    for bank in &o.banks {
        if let Some(cents) = bank.in_flight_cents {
            sample(out, name, &[("bank", &bank.name)], i128::from(cents));
        }
    }
    let name = "interbank_position_cents";
    family(
        out,
        name,
        "gauge",
        "Each bank's net position with another bank (positive: the counterparty owes it).",
    );
    for (a, row) in o.matrix.cells.iter().enumerate() {
        for (b, cell) in row.iter().enumerate() {
            if let Some(cents) = cell.filter(|_| a != b) {
                let labels = [
                    ("bank", o.matrix.banks[a].as_str()),
                    ("counterparty", o.matrix.banks[b].as_str()),
                ];
                sample(out, name, &labels, i128::from(cents));
            }
        }
    }
}

fn streams(out: &mut String, o: &Overview) {
    let name = "interbank_stream_entries";
    family(out, name, "gauge", "Entries in each event stream.");
    for stream in &o.streams {
        sample(out, name, &[("stream", &stream.key)], i128::from(stream.length));
    }
    let name = "interbank_consumer_lag_seconds";
    family(
        out,
        name,
        "gauge",
        "How much older a consumer's checkpoint is than the newest entries it has not read.",
    );
    for consumer in &o.consumers {
        write_float(out, name, &[("consumer", &consumer.name)], consumer.lag_ms as f64 / 1000.0);
    }
}

fn verification(out: &mut String, o: &Overview) {
    let Some(line) = &o.verdict else { return };
    let v = &line.verdict;
    let name = "interbank_verification_passed";
    family(
        out,
        name,
        "gauge",
        "1 when the last verification recorded by consume verified, 0 otherwise.",
    );
    sample(out, name, &[], i128::from(v.verified));
    let name = "interbank_verification_timestamp_seconds";
    family(
        out,
        name,
        "gauge",
        "When the last verification was reached, in seconds since the Unix epoch.",
    );
    write_float(out, name, &[], v.at_ms as f64 / 1000.0);
    let name = "interbank_verification_events";
    family(out, name, "gauge", "Events the last verification replayed.");
    sample(out, name, &[], i128::from(v.events));
}

fn runs(out: &mut String, o: &Overview) {
    let name = "interbank_runs";
    family(out, name, "gauge", "Broker runs recorded, by status.");
    for status in [RunStatus::Running, RunStatus::Ended, RunStatus::Failed, RunStatus::Interrupted]
    {
        let count = o.runs.iter().filter(|r| r.status == status).count();
        sample(out, name, &[("status", status.as_str())], count as i128);
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: i128) {
    let _ = writeln!(out, "{name}{} {value}", label_set(labels));
}

fn write_float(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    let _ = writeln!(out, "{name}{} {value}", label_set(labels));
}

/// `{a="x",b="y"}` with values escaped as the format requires (`\`, `"`, newline).
fn label_set(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            let escaped = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            format!("{k}=\"{escaped}\"")
        })
        .collect();
    format!("{{{}}}", pairs.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_set(&[("bank", "a\"b\\c\nd")]), "{bank=\"a\\\"b\\\\c\\nd\"}");
        assert_eq!(label_set(&[]), "");
    }

    #[test]
    fn without_a_read_only_the_live_counters_and_redis_down_are_served() {
        let live = Live { completed: 3, cancelled: 1, ..Live::default() };
        let text = render(None, &live, false);
        assert!(text.contains("interbank_redis_up 0\n"));
        assert!(text.contains("interbank_transfers_total{outcome=\"completed\"} 3\n"));
        assert!(text.contains("interbank_transfers_total{outcome=\"cancelled\"} 1\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("interbank_"), "{line}");
        }
    }
}
