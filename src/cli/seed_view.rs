//! `consume --layout seed` on a terminal: the audit of a data set in the Go demo's layout, in the
//! order a reader needs it: the verdict, the money missing or created, the transfers half applied
//! and what error events left, every key that differs, and Redis's own sums.

use interbank::commands::seed_audit::SeedAudited;
use interbank::ledger::seed_layout::{EventRef, Listed, PartialEvent, StepAt};
use interbank::view::format::cents;

/// The audit as text.
pub fn render(audited: &SeedAudited) -> String {
    let mut out = verdict(audited);
    out.push_str(&money(audited));
    out.push_str(&inference(audited));
    out.push_str(&diffs(audited));
    out.push_str(&sums(audited));
    out.push_str(&entries(audited));
    out
}

fn verdict(a: &SeedAudited) -> String {
    let s = &a.audit.statuses;
    let mut out = format!(
        "consume --layout seed: {}\n  {} entries in {}: {} completed, {} cancelled, {} error, {} created, {} running\n",
        if a.clean() {
            "CLEAN: Redis holds exactly what the events say"
        } else {
            "NOT CLEAN: Redis differs from the events (below)"
        },
        a.audit.entries,
        a.stream,
        s.completed,
        s.cancelled,
        s.error,
        s.created,
        s.running
    );
    if let Some(applied) = a.runs_applied {
        let counted = s.total() + a.audit.malformed.total;
        let verdict = if applied == counted { "ok" } else { "FAIL" };
        out.push_str(&format!("  {verdict} events = transfers applied by this tool's seed-layout runs ({counted} events, {applied} applied)\n"));
    }
    out
}

fn money(a: &SeedAudited) -> String {
    let total = &a.audit.money.total;
    let mut out = format!(
        "\nmoney in accounts: Redis {}, loaded {}, replay of the events {}\n",
        cents(total.redis_cents),
        cents(total.loaded_cents),
        cents(total.replay_cents)
    );
    match total.surplus_vs_loaded_cents {
        0 => out.push_str("  nothing missing or created in all\n"),
        d if d < 0 => out.push_str(&format!("  MISSING {} in all\n", cents(-d))),
        d => out.push_str(&format!("  CREATED {} in all\n", cents(d))),
    }
    if total.uncounted_accounts > 0 {
        out.push_str(&format!(
            "  {} account keys missing or not integers (not counted)\n",
            total.uncounted_accounts
        ));
    }
    for bank in a.audit.money.banks.iter().filter(|b| b.money.surplus_vs_replay_cents != 0) {
        out.push_str(&format!(
            "  bank {}: accounts hold {} against {} by the events ({})\n",
            a.banks[bank.bank],
            cents(bank.money.redis_cents),
            cents(bank.money.replay_cents),
            signed(bank.money.surplus_vs_replay_cents)
        ));
    }
    out
}

fn signed(difference: i128) -> String {
    if difference < 0 {
        format!("{} missing", cents(-difference))
    } else {
        format!("{} created", cents(difference))
    }
}

fn steps(a: &SeedAudited, list: &[StepAt]) -> String {
    if list.is_empty() {
        return "none".to_string();
    }
    let named: Vec<String> = list
        .iter()
        .map(|s| {
            format!(
                "{} ({} {})",
                s.step.as_str(),
                a.key_name(s.key),
                if s.delta_cents < 0 {
                    format!("-{}", -s.delta_cents)
                } else {
                    format!("+{}", s.delta_cents)
                }
            )
        })
        .collect();
    named.join(", ")
}

fn event(a: &SeedAudited, e: &EventRef) -> String {
    format!(
        "entry {} ({}{}): {} from {} ({}) to {} ({})",
        e.id,
        e.status.as_str(),
        if e.err.is_empty() { String::new() } else { format!(", err {:?}", e.err) },
        cents(i128::from(e.amount_cents)),
        a.ibans[e.from],
        a.banks[e.from_bank],
        a.ibans[e.to],
        a.banks[e.to_bank]
    )
}

fn partial(a: &SeedAudited, title: &str, list: &Listed<PartialEvent>) -> String {
    if list.total == 0 {
        return String::new();
    }
    let mut out = format!("  {title} ({}):\n", list.total);
    for p in &list.items {
        out.push_str(&format!("    {}\n", event(a, &p.event)));
        if let Some(first) = &p.repeats {
            out.push_str(&format!("      repeats entry {first}\n"));
        }
        out.push_str(&format!(
            "      applied in Redis: {}\n      not applied: {}\n",
            steps(a, &p.present),
            steps(a, &p.missing)
        ));
    }
    out.push_str(&more(list.more()));
    out
}

fn more(count: u64) -> String {
    if count == 0 { String::new() } else { format!("    ... and {count} more\n") }
}

fn inference(a: &SeedAudited) -> String {
    let i = &a.audit.inference;
    let mut out = String::from("\ntransfers half applied (inferred from what differs):\n");
    out.push_str(&partial(a, "events not completed, and what they left in Redis", &i.unfinished));
    out.push_str(&partial(
        a,
        "completed events in the stream without all their increments in Redis",
        &i.completed_missing,
    ));
    if i.without_event.total > 0 {
        out.push_str(&format!(
            "  increments without an event (the broker stopped before writing it) ({}):\n",
            i.without_event.total
        ));
        for o in &i.without_event.items {
            let to = o.to_bank.map_or("an unknown bank".to_string(), |b| a.banks[b].clone());
            out.push_str(&format!(
                "    {} from {} ({}) toward {to}: applied {}; not applied: {}\n",
                cents(o.amount_cents),
                a.ibans[o.from_account],
                a.banks[o.from_bank],
                steps(a, &o.present),
                if o.missing.is_empty() {
                    "none".to_string()
                } else {
                    o.missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                }
            ));
        }
        out.push_str(&more(i.without_event.more()));
    }
    for residue in &i.unexplained.items {
        out.push_str(&format!(
            "  unexplained: {} is off by {}\n",
            a.key_name(residue.key),
            residue.residual_cents
        ));
    }
    out.push_str(&more(i.unexplained.more()));
    for limit in &i.limits {
        out.push_str(&format!("  note: {limit}\n"));
    }
    if i.unfinished.total + i.completed_missing.total + i.without_event.total + i.unexplained.total
        == 0
    {
        out.push_str("  none\n");
    }
    out
}

fn diffs(a: &SeedAudited) -> String {
    let d = &a.audit.diffs;
    if d.total == 0 {
        return "\nkeys that differ from the events: none\n".to_string();
    }
    let mut out = format!("\nkeys that differ from the events ({}):\n", d.total);
    for diff in &d.items {
        let found = match &diff.redis {
            interbank::ledger::verify::Value::Int(v) => v.to_string(),
            interbank::ledger::verify::Value::Missing => "nothing (missing)".to_string(),
            other => format!("{other:?}"),
        };
        let by = diff.difference_cents.map_or(String::new(), |d| format!(", off by {d}"));
        out.push_str(&format!(
            "  {}: Redis {found}, events say {}{by}\n",
            a.key_name(diff.key),
            diff.expected_cents
        ));
    }
    out.push_str(&more(d.more()));
    out
}

fn sums(a: &SeedAudited) -> String {
    let s = &a.audit.sums;
    let mut out = format!(
        "\nRedis's own sums (not the replay's): banks {} (should be 0), pairs {} (should be 0)\n",
        s.banks_cents, s.pairs_cents
    );
    for p in &s.unbalanced_pairs.items {
        out.push_str(&format!(
            "  {} = {} and {} = {}: sum {}\n",
            a.keys.seed_pair(&a.banks[p.a], &a.banks[p.b]),
            p.ab_cents,
            a.keys.seed_pair(&a.banks[p.b], &a.banks[p.a]),
            p.ba_cents,
            p.sum_cents
        ));
    }
    out.push_str(&more(s.unbalanced_pairs.more()));
    out
}

fn entries(a: &SeedAudited) -> String {
    let mut out = String::new();
    for m in &a.audit.malformed.items {
        out.push_str(&format!("malformed entry {}: {}\n", m.id, m.problem));
    }
    out.push_str(&more(a.audit.malformed.more()));
    for d in &a.audit.duplicates.items {
        out.push_str(&format!(
            "entry {} repeats entry {} ({})\n",
            d.id,
            d.first,
            d.status.as_str()
        ));
    }
    out.push_str(&more(a.audit.duplicates.more()));
    for problem in &a.audit.state_problems {
        out.push_str(&format!("problem: {problem}\n"));
    }
    out
}
