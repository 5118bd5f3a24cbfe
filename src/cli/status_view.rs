//! `interbank status` on a terminal: the overview as tables that fit 80 columns, most important
//! first (is money conserved, the last verdict, the banks, the interbank matrix, runs, streams,
//! consumers). Colour only when asked (a terminal, no `NO_COLOR`); the words say everything
//! the colours do.

use comfy_table::{CellAlignment, ContentArrangement, Table, presets};
use interbank::view::format::{age, cents, compact_cents, utc};
use interbank::view::overview::{Overview, State};

/// The width the tables are fitted to.
const WIDTH: u16 = 80;

/// The whole overview as text.
pub fn render(overview: &Overview, colour: bool) -> String {
    let paint = Paint { on: colour };
    let mut out = String::new();
    out.push_str(&header(overview));
    out.push_str(&conservation(overview, paint));
    out.push_str(&verdict(overview, paint));
    out.push_str(&banks(overview));
    out.push_str(&matrix(overview));
    out.push_str(&runs(overview));
    out.push_str(&streams(overview));
    out.push_str(&problems(overview, paint));
    out
}

#[derive(Clone, Copy)]
struct Paint {
    on: bool,
}

impl Paint {
    fn green(self, text: &str) -> String {
        self.wrap("32;1", text)
    }
    fn red(self, text: &str) -> String {
        self.wrap("31;1", text)
    }
    fn amber(self, text: &str) -> String {
        self.wrap("33;1", text)
    }
    fn wrap(self, code: &str, text: &str) -> String {
        if self.on { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }
    fn verdict(self, passed: bool, yes: &str, no: &str) -> String {
        if passed { self.green(yes) } else { self.red(no) }
    }
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(WIDTH)
        .set_header(header.iter().copied());
    table
}

/// `text` cut to `width` characters, ending in `…` when cut (`--json` has every word).
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let kept: String = text.chars().take(width.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// Right-aligns the columns of figures.
fn right_align(table: &mut Table, columns: std::ops::Range<usize>) {
    for index in columns {
        if let Some(column) = table.column_mut(index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// `items` joined by ", " in lines of at most [`WIDTH`] characters, each starting with `indent`.
fn wrapped(first: &str, items: &[String], indent: &str) -> String {
    let mut out = String::new();
    let mut line = first.to_string();
    for (i, item) in items.iter().enumerate() {
        let piece = if i + 1 < items.len() { format!("{item}, ") } else { item.clone() };
        if line.chars().count() + piece.chars().count() > usize::from(WIDTH) && line.trim() != "" {
            out.push_str(line.trim_end());
            out.push('\n');
            line = indent.to_string();
        }
        line.push_str(&piece);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

fn header(overview: &Overview) -> String {
    let loaded = &overview.loaded;
    format!(
        "interbank status of {} ({} layout), {}\n{} accounts, {} in all, from {}\nloaded {}\n\n",
        overview.prefix,
        overview.layout.as_str(),
        utc(overview.read_at_ms),
        loaded.accounts,
        cents(i128::from(loaded.total_cents)),
        if loaded.file.is_empty() { "an unnamed file" } else { &loaded.file },
        if loaded.loaded_at_ms == 0 {
            "at an unrecorded time".to_string()
        } else {
            utc(loaded.loaded_at_ms)
        },
    )
}

fn conservation(overview: &Overview, paint: Paint) -> String {
    let c = &overview.conservation;
    let m = &overview.money;
    let title = match c.state {
        State::Conserved => paint.green("MONEY CONSERVED"),
        State::Violated => paint.red("MONEY NOT CONSERVED"),
        State::Unsettled => paint.amber("UNSETTLED: money moved between the per-bank reads"),
        State::Unknown => paint.amber("UNKNOWN: some keys could not be read (see below)"),
    };
    let mut out = format!(
        "{title}\n  accounts {} + in flight {} = {}\n  loaded {}, difference {}\n",
        cents(m.accounts_cents),
        cents(m.in_flight_cents),
        cents(m.accounts_cents + m.in_flight_cents),
        cents(i128::from(m.total_cents)),
        cents(m.difference_cents),
    );
    if !c.consistent {
        out.push_str("  (a cluster's banks were read at different instants while money moved:\n");
        out.push_str("  the checks across banks wait for a quiet moment)\n");
    }
    for check in &c.checks {
        let text = format!("{}: {}", check.name, check.detail);
        out.push_str(&format!(
            "  {} {}\n",
            paint.verdict(check.passed, "PASS", "FAIL"),
            fit(&text, 73)
        ));
    }
    out.push('\n');
    out
}

fn verdict(overview: &Overview, paint: Paint) -> String {
    let Some(line) = &overview.verdict else {
        return "last verification: none recorded; run `interbank consume`\n\n".to_string();
    };
    let v = &line.verdict;
    let mut out = format!(
        "last verification: {}, {} events ({} completed, {} cancelled)\n  by consumer {} at {} ({} ago)\n",
        paint.verdict(v.verified, "VERIFIED", "NOT VERIFIED"),
        v.events,
        v.completed,
        v.cancelled,
        fit(&v.consumer, 20),
        utc(v.at_ms),
        age(line.age_ms),
    );
    for check in v.checks.iter().filter(|c| !c.passed) {
        let text = format!("{}: {} ({} failures)", check.name, check.detail, check.failures);
        out.push_str(&format!("  {} {}\n", paint.red("FAIL"), fit(&text, 73)));
        for failure in &check.first_failures {
            out.push_str(&format!("    {}\n", fit(failure, 76)));
        }
    }
    out.push('\n');
    out
}

fn banks(overview: &Overview) -> String {
    let sharded = overview.banks.iter().any(|b| b.shard.is_some());
    let mut header = vec!["bank", "balance", "owed to it", "it owes", "accounts", "in accounts"];
    if sharded {
        header.extend(["in flight", "shard"]);
    }
    let mut t = table(&header);
    for bank in &overview.banks {
        let mut row = vec![
            bank.name.clone(),
            bank.balance_cents.map_or("unreadable".to_string(), |c| cents(i128::from(c))),
            cents(bank.owed_cents),
            cents(bank.owing_cents),
            bank.accounts.to_string(),
            cents(bank.accounts_cents),
        ];
        if sharded {
            row.push(
                bank.in_flight_cents.map_or("unreadable".to_string(), |c| cents(i128::from(c))),
            );
            row.push(bank.shard.clone().unwrap_or_default());
        }
        t.add_row(row);
    }
    right_align(&mut t, 1..6);
    format!("banks (owed/owes: net positions with each other bank)\n{t}\n\n")
}

/// The interbank matrix in 4-character cells so that 13 banks fit 80 columns: row = bank, column
/// = the other bank, whole units rounded (exact figures in `--json`).
fn matrix(overview: &Overview) -> String {
    let m = &overview.matrix;
    let shorts: Vec<&str> = overview.banks.iter().map(|b| b.short.as_str()).collect();
    let mut out = String::from(
        "interbank net positions, whole units (+: the column's bank owes the row's)\n",
    );
    out.push_str(&format!("{:<4}", ""));
    for short in &shorts {
        out.push_str(&format!(" {short:>4}"));
    }
    out.push_str(&format!(" {:>6}\n", "total"));
    for (a, row) in m.cells.iter().enumerate() {
        out.push_str(&format!("{:<4}", shorts[a]));
        for (b, cell) in row.iter().enumerate() {
            let text = match cell {
                _ if a == b => "·".to_string(),
                Some(c) => compact_cents(i128::from(*c)),
                None => "?".to_string(),
            };
            out.push_str(&format!(" {text:>4}"));
        }
        out.push_str(&format!(" {:>6}\n", compact_cents(m.row_totals[a])));
    }
    let legend: Vec<String> =
        overview.banks.iter().map(|b| format!("{} = {}", b.short, b.name)).collect();
    out.push_str(&wrapped("legend: ", &legend, "        "));
    out.push('\n');
    out
}

fn runs(overview: &Overview) -> String {
    if overview.runs.is_empty() {
        return "runs: none yet\n\n".to_string();
    }
    let mut t = table(&["run", "strategy", "workers", "status", "applied / planned", "started"]);
    for run in &overview.runs {
        let applied = run.applied.map_or("?".to_string(), |a| a.to_string());
        t.add_row(vec![
            run.run.to_string(),
            run.strategy.as_str().to_string(),
            run.workers.to_string(),
            run.status.as_str().to_string(),
            format!("{applied} / {}", run.planned),
            utc(run.started_ms),
        ]);
    }
    right_align(&mut t, 2..3);
    format!("runs\n{t}\n\n")
}

fn streams(overview: &Overview) -> String {
    let mut t = table(&["stream", "entries", "newest entry"]);
    for stream in &overview.streams {
        t.add_row(vec![
            stream.key.clone(),
            stream.length.to_string(),
            stream.last_ms.map_or("empty".to_string(), utc),
        ]);
    }
    let mut out = format!("streams\n{t}\n\n");
    if overview.consumers.is_empty() {
        out.push_str("consumers: no checkpoint recorded\n\n");
        return out;
    }
    let mut c = table(&["consumer", "events replayed", "behind newest", "checkpoint saved"]);
    for consumer in &overview.consumers {
        let behind = if consumer.streams_behind == 0 {
            "up to date".to_string()
        } else {
            format!("{} in {} stream(s)", age(consumer.lag_ms), consumer.streams_behind)
        };
        c.add_row(vec![
            consumer.name.clone(),
            consumer.events.to_string(),
            behind,
            utc(consumer.saved_at_ms),
        ]);
    }
    out.push_str(&format!("consumers\n{c}\n\n"));
    out
}

fn problems(overview: &Overview, paint: Paint) -> String {
    if overview.problems.is_empty() {
        return String::new();
    }
    let mut out = paint.amber("problems\n");
    for problem in &overview.problems {
        out.push_str(&format!("  {}\n", fit(problem, 78)));
    }
    if overview.more_problems > 0 {
        out.push_str(&format!("  ... and {} more\n", overview.more_problems));
    }
    out
}
