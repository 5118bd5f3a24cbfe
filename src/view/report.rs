//! The verification report `interbank consume --report FILE.html` writes: one stand-alone HTML
//! file that a bank engineer can open offline, print or attach to a ticket, saying whether the
//! replay verified the ledger and showing the figures behind that verdict.
//!
//! Stand-alone on purpose: inline CSS and SVG, no script and no external reference (not even
//! the SVG namespace), so the file shows the same figures wherever it is opened, years later,
//! and leaks nothing when it is. Like every view it is a pure function of the models; every
//! value that came from data goes through [`escape`] (via [`text`]) or [`cents`].

use crate::ledger::events::Layout;
use crate::ledger::runs::RunStatus;
use crate::view::format::{cents, utc};
use crate::view::html::escape;
use crate::view::overview::{BankLine, Conservation, Money, Overview, RunLine, State};
use crate::view::timeline::Timeline;
use crate::view::verdict::{CheckResult, Verdict};

/// The width of every chart's drawing, in SVG units (the chart scales to the page).
const CHART_W: f64 = 800.0;
/// Balance bars: the label column, half the bar area, the height of one bank's row.
const LABEL_W: f64 = 170.0;
const BAR_HALF: f64 = 250.0;
const BAR_ROW: f64 = 24.0;
/// The rate chart's height and its plot area's margins.
const RATE_H: f64 = 260.0;
const PLOT_LEFT: f64 = 64.0;
const PLOT_RIGHT: f64 = CHART_W - 16.0;
const PLOT_TOP: f64 = 14.0;
const PLOT_BOTTOM: f64 = RATE_H - 44.0;
/// The diverging colours (red: owes; blue: is owed), as `r,g,b` for `rgba()`.
const NEG_RGB: &str = "178,24,43";
const POS_RGB: &str = "33,102,172";
/// Bank names longer than this are clipped in the bar chart (the full name is its tooltip).
const LABEL_CHARS: usize = 22;

const STYLE: &str = "
body{margin:0;background:#fff;color:#1f2328;font:14px/1.45 system-ui,-apple-system,'Segoe UI',\
Roboto,'Helvetica Neue',Arial,sans-serif;-webkit-print-color-adjust:exact;print-color-adjust:exact}
main{max-width:62rem;margin:0 auto;padding:1.5rem 1rem 3rem}
h1{font-size:1.5rem;margin:0 0 .4rem}
h2{font-size:1.15rem;margin:2rem 0 .6rem;padding-bottom:.25rem;border-bottom:1px solid #d0d7de}
h3{font-size:1rem;margin:1rem 0 .3rem}
table{border-collapse:collapse;margin:.4rem 0}
th,td{padding:.25rem .5rem;border-bottom:1px solid #e5e7eb;text-align:left;vertical-align:top}
thead th{border-bottom:2px solid #afb8c1;font-weight:600}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.text{overflow-wrap:anywhere}
code{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-wrap:anywhere}
ul.failures{margin:.3rem 0;padding-left:1.2rem}
.scroll{overflow-x:auto}
.verdict{display:inline-block;margin:.4rem 0;padding:.35rem .9rem;border:2px solid;border-radius:4px;\
font-size:1.4rem;font-weight:700;letter-spacing:.04em}
.verdict.pass{background:#e6f4ea}
.verdict.fail{background:#fde8e8}
.verdict span{font-size:.9rem;font-weight:400;letter-spacing:0}
.badge{display:inline-block;padding:0 .4rem;border:1px solid;border-radius:3px;font-size:.8rem;\
font-weight:700}
.pass{color:#116329}
.fail{color:#a40e26}
.warn{color:#7d4e00}
.note{color:#57606a;font-size:.9rem}
figure{margin:.5rem 0}
svg.chart{display:block;width:100%;max-width:800px;height:auto;font-size:12px}
svg text{fill:#1f2328}
.pos{fill:rgb(33,102,172)}
.neg{fill:rgb(178,24,43)}
.axis{stroke:#57606a;stroke-width:1}
.grid{stroke:#e5e7eb;stroke-width:1}
polyline.completed{fill:none;stroke:#2166ac;stroke-width:1.5}
polyline.cancelled{fill:none;stroke:#e08214;stroke-width:1.5;stroke-dasharray:5 3}
.key{display:inline-block;width:1.6rem;vertical-align:middle;margin:0 .3rem 0 .8rem;\
border-top:2px solid #2166ac}
.key.cancelled{border-top:2px dashed #e08214}
.swatch{display:inline-block;width:.9rem;height:.9rem;vertical-align:middle;margin:0 .3rem 0 .8rem;\
border:1px solid #afb8c1}
table.heat td{min-width:4.5rem}
table.heat td.diag{background:#f6f8fa;color:#8c959f;text-align:center}
footer{margin-top:2.5rem;color:#57606a;font-size:.85rem}
@media print{body{font-size:11px}main{max-width:none;padding:0}h2{break-after:avoid}\
tr,figure{break-inside:avoid}.scroll{overflow:visible}}
";

/// The report of `verdict`, with the figures of `overview` and the rates of `timeline`.
pub fn render(overview: &Overview, verdict: &Verdict, timeline: &Timeline) -> String {
    [
        head(overview),
        summary(overview, verdict),
        checks(verdict),
        conservation(overview),
        banks(&overview.banks),
        heatmap(overview),
        rates(timeline),
        runs(&overview.runs),
        anomalies(overview, verdict),
        foot(overview),
    ]
    .concat()
}

/// `raw` escaped for HTML, and with no `http` left in it (written `&#104;ttp`, which reads the
/// same): the report promises that the substring never occurs, so that anyone can check with a
/// search that it refers to nothing outside itself, whatever a name or an error says.
fn text(raw: &str) -> String {
    let escaped = escape(raw);
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped.as_str();
    while let Some(at) = rest.to_ascii_lowercase().find("http") {
        let letter = rest.as_bytes()[at];
        out.push_str(&rest[..at]);
        out.push_str(&format!("&#{letter};"));
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
    out
}

/// A count with thousands separators: `1234567` → `1,234,567`.
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Cents that may not have been read, as plain text.
fn amount(value: Option<i64>) -> String {
    value.map_or_else(|| "unreadable".to_string(), |c| cents(c.into()))
}

/// Cents that may not have been read, marked when they were not.
fn maybe_cents(value: Option<i64>) -> String {
    match value {
        Some(c) => cents(c.into()),
        None => "<span class=\"fail\">unreadable</span>".to_string(),
    }
}

fn section(title: &str, body: &str) -> String {
    format!("<section>\n<h2>{title}</h2>\n{body}</section>\n")
}

fn pass_fail(passed: bool) -> &'static str {
    if passed {
        "<span class=\"badge pass\">PASS</span>"
    } else {
        "<span class=\"badge fail\">FAIL</span>"
    }
}

fn head(overview: &Overview) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Interbank verification report: {}</title>\n<style>{STYLE}</style>\n</head>\n\
         <body>\n<main>\n",
        text(&overview.prefix)
    )
}

/// The title, the verdict and what it covers.
fn summary(overview: &Overview, verdict: &Verdict) -> String {
    let (class, word) =
        if verdict.verified { ("pass", "VERIFIED") } else { ("fail", "NOT VERIFIED") };
    let passed = verdict.checks.iter().filter(|c| c.passed).count();
    let loaded = &overview.loaded;
    let layout = match overview.layout {
        Layout::Single => "single: one Redis server, one event stream",
        Layout::Sharded => "sharded: Redis Cluster, one event stream per bank",
    };
    let facts = [
        ("Verdict reached", utc(verdict.at_ms)),
        ("Events covered", count(verdict.events)),
        (
            "Completed / cancelled",
            format!("{} / {}", count(verdict.completed), count(verdict.cancelled)),
        ),
        ("Consumer", text(&verdict.consumer)),
        (
            "Data set",
            format!(
                "prefix <code>{}</code>, file <code>{}</code>, {} accounts, {} loaded",
                text(&overview.prefix),
                text(&loaded.file),
                count(loaded.accounts),
                cents(loaded.total_cents.into())
            ),
        ),
        ("Layout", layout.to_string()),
        ("Figures below read at", utc(overview.read_at_ms)),
    ];
    let rows: String = facts
        .iter()
        .map(|(name, value)| format!("<tr><th scope=\"row\">{name}</th><td>{value}</td></tr>\n"))
        .collect();
    format!(
        "<header>\n<h1>Interbank verification report</h1>\n<p class=\"verdict {class}\">{word} \
         <span>{passed} of {} checks passed</span></p>\n</header>\n<table>\n{rows}</table>\n",
        verdict.checks.len()
    )
}

/// Each check of the verdict.
fn checks(verdict: &Verdict) -> String {
    let body = if verdict.checks.is_empty() {
        "<p>The verdict holds no checks.</p>\n".to_string()
    } else {
        let rows: String = verdict.checks.iter().map(check_row).collect();
        format!(
            "<div class=\"scroll\"><table>\n<thead><tr><th>Check</th><th>Result</th>\
             <th class=\"num\">Failures</th><th>Detail and first failures</th></tr></thead>\n\
             <tbody>\n{rows}</tbody>\n</table></div>\n"
        )
    };
    section("Verification checks", &body)
}

fn check_row(check: &CheckResult) -> String {
    format!(
        "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"text\">{}{}</td></tr>\n",
        text(&check.name),
        pass_fail(check.passed),
        count(check.failures),
        text(&check.detail),
        failure_list(check.failures, &check.first_failures)
    )
}

/// The first failures as a list, and how many more there are.
fn failure_list(total: u64, first: &[String]) -> String {
    if first.is_empty() {
        return String::new();
    }
    let items: String =
        first.iter().map(|failure| format!("<li><code>{}</code></li>", text(failure))).collect();
    let more = total.saturating_sub(u64::try_from(first.len()).unwrap_or(u64::MAX));
    let more = if more > 0 { format!("<li>and {} more</li>", count(more)) } else { String::new() };
    format!("<ul class=\"failures\">{items}{more}</ul>")
}

/// Whether the money read now is conserved: the state, the sums and each invariant.
fn conservation(overview: &Overview) -> String {
    let body = format!(
        "{}{}{}",
        state_line(&overview.conservation),
        money_table(&overview.money),
        invariant_table(&overview.conservation)
    );
    section("Money conservation", &body)
}

fn state_line(conservation: &Conservation) -> String {
    let (class, meaning) = match conservation.state {
        State::Conserved => ("pass", "every check holds"),
        State::Violated => {
            ("fail", "a check fails on figures read at one instant: money was lost or created")
        }
        State::Unsettled => (
            "warn",
            "money moved between the per-bank reads of the cluster: the checks across banks \
             cannot be judged from this read",
        ),
        State::Unknown => ("warn", "some key could not be read (see Anomalies)"),
    };
    let instant = if conservation.consistent {
        "The figures were read at one instant."
    } else {
        "The figures were read bank by bank, not at one instant."
    };
    format!(
        "<p>State: <span class=\"badge {class}\">{}</span> {meaning}. {instant}</p>\n",
        conservation.state.as_str().to_uppercase()
    )
}

fn money_table(money: &Money) -> String {
    let sum = money.accounts_cents.saturating_add(money.in_flight_cents);
    let (class, word) = match money.difference_cents {
        0 => ("pass", "nothing lost or created"),
        d if d < 0 => ("fail", "money lost"),
        _ => ("fail", "money created"),
    };
    format!(
        "<table>\n<tr><th scope=\"row\">Money in accounts</th><td class=\"num\">{}</td></tr>\n\
         <tr><th scope=\"row\">+ money in flight</th><td class=\"num\">{}</td></tr>\n\
         <tr><th scope=\"row\">= accounts + in flight</th><td class=\"num\">{}</td></tr>\n\
         <tr><th scope=\"row\">Total loaded</th><td class=\"num\">{}</td></tr>\n\
         <tr><th scope=\"row\">Difference</th><td class=\"num {class}\">{} ({word})</td></tr>\n\
         </table>\n",
        cents(money.accounts_cents),
        cents(money.in_flight_cents),
        cents(sum),
        cents(money.total_cents.into()),
        cents(money.difference_cents)
    )
}

fn invariant_table(conservation: &Conservation) -> String {
    let rows: String = conservation
        .checks
        .iter()
        .map(|check| {
            let scope = if check.across_banks { "across banks" } else { "per bank" };
            format!(
                "<tr><td>{}</td><td>{}</td><td>{scope}</td><td class=\"text\">{}</td></tr>\n",
                text(check.name),
                pass_fail(check.passed),
                text(&check.detail)
            )
        })
        .collect();
    format!(
        "<div class=\"scroll\"><table>\n<thead><tr><th>Invariant</th><th>Result</th>\
         <th>Compares</th><th>Detail</th></tr></thead>\n<tbody>\n{rows}</tbody>\n</table></div>\n"
    )
}

/// Each bank's balance, as bars and as a table.
fn banks(banks: &[BankLine]) -> String {
    if banks.is_empty() {
        return section("Bank balances", "<p>No banks.</p>\n");
    }
    let body = format!(
        "<p class=\"note\">A bank's balance is its net interbank position: positive (blue, right) \
         when other banks owe it, negative (red, left) when it owes them.</p>\n{}{}",
        balance_bars(banks),
        bank_table(banks)
    );
    section("Bank balances", &body)
}

/// A diverging bar per bank around a zero axis.
fn balance_bars(banks: &[BankLine]) -> String {
    let max = banks.iter().filter_map(|b| b.balance_cents).map(i64::unsigned_abs).max();
    let max = max.unwrap_or(0);
    let bars: String = (0_u32..)
        .zip(banks)
        .map(|(i, bank)| balance_bar(f64::from(i) * BAR_ROW + 4.0, bank, max))
        .collect();
    let height = BAR_ROW * banks.len() as f64 + 8.0;
    let axis = LABEL_W + BAR_HALF;
    format!(
        "<figure><svg class=\"chart\" viewBox=\"0 0 {CHART_W} {height}\" role=\"img\" \
         aria-label=\"Bank balances\">\n{bars}<line class=\"axis\" x1=\"{axis}\" y1=\"0\" \
         x2=\"{axis}\" y2=\"{height}\"/>\n</svg></figure>\n"
    )
}

/// One bank's bar at `top`, scaled so that `max` fills half the bar area.
fn balance_bar(top: f64, bank: &BankLine, max: u64) -> String {
    let name = text(&bank.name);
    let label = text(&clip(&bank.name, LABEL_CHARS));
    let figure = amount(bank.balance_cents);
    let middle = top + BAR_ROW / 2.0 + 4.0;
    let bar = match bank.balance_cents {
        Some(balance) if max > 0 => {
            let width = BAR_HALF * balance.unsigned_abs() as f64 / max as f64;
            let (x, class) = if balance < 0 {
                (LABEL_W + BAR_HALF - width, "neg")
            } else {
                (LABEL_W + BAR_HALF, "pos")
            };
            format!(
                "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{width:.1}\" \
                 height=\"{:.1}\"/>",
                top + 3.0,
                BAR_ROW - 6.0
            )
        }
        _ => String::new(),
    };
    format!(
        "<g><title>{name}: {figure}</title><text x=\"{:.1}\" y=\"{middle:.1}\" \
         text-anchor=\"end\">{label}</text>{bar}<text x=\"{:.1}\" y=\"{middle:.1}\" \
         text-anchor=\"end\">{figure}</text></g>\n",
        LABEL_W - 8.0,
        CHART_W - 4.0
    )
}

/// `name` cut to `max` characters, marked with an ellipsis when cut.
fn clip(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        return name.to_string();
    }
    let kept: String = name.chars().take(max.saturating_sub(1)).collect();
    format!("{kept}…")
}

fn bank_table(banks: &[BankLine]) -> String {
    let sharded = banks.iter().any(|b| b.shard.is_some());
    let shard_head = if sharded { "<th>Shard</th>" } else { "" };
    let rows: String = banks.iter().map(|bank| bank_row(bank, sharded)).collect();
    format!(
        "<div class=\"scroll\"><table>\n<thead><tr><th>Bank</th><th class=\"num\">Balance</th>\
         <th class=\"num\">Owed</th><th class=\"num\">Owing</th><th class=\"num\">In flight</th>\
         <th class=\"num\">Accounts</th><th class=\"num\">Accounts' money</th>{shard_head}</tr>\
         </thead>\n<tbody>\n{rows}</tbody>\n</table></div>\n"
    )
}

fn bank_row(bank: &BankLine, sharded: bool) -> String {
    let shard = if sharded {
        format!("<td>{}</td>", bank.shard.as_deref().map_or_else(|| "—".to_string(), text))
    } else {
        String::new()
    };
    format!(
        "<tr><th scope=\"row\" class=\"text\">{}</th><td class=\"num\">{}</td>\
         <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
         <td class=\"num\">{}</td><td class=\"num\">{}</td>{shard}</tr>\n",
        text(&bank.name),
        maybe_cents(bank.balance_cents),
        cents(bank.owed_cents),
        cents(bank.owing_cents),
        maybe_cents(bank.in_flight_cents),
        count(bank.accounts),
        cents(bank.accounts_cents)
    )
}

/// The interbank net positions as a table of coloured cells.
fn heatmap(overview: &Overview) -> String {
    let banks = &overview.banks;
    if banks.is_empty() {
        return section("Interbank net positions", "<p>No banks, so no positions.</p>\n");
    }
    let matrix = &overview.matrix;
    let head: String = banks
        .iter()
        .map(|b| format!("<th scope=\"col\" title=\"{}\">{}</th>", text(&b.name), text(&b.short)))
        .collect();
    let rows: String = banks
        .iter()
        .zip(&matrix.cells)
        .enumerate()
        .map(|(a, (bank, row))| {
            heat_row(a, bank, row, banks, matrix.row_totals.get(a), matrix.max_abs_cents)
        })
        .collect();
    let body = format!(
        "<p class=\"note\">Row a, column b: bank a's net position with bank b (positive: b owes a). \
         Hover a cell for the exact figure.</p>\n<div class=\"scroll\"><table class=\"heat\">\n\
         <thead><tr><th>a \\ b</th>{head}<th class=\"num\">Row total</th></tr></thead>\n<tbody>\n\
         {rows}</tbody>\n</table></div>\n{}",
        heat_legend(banks, matrix.max_abs_cents)
    );
    section("Interbank net positions", &body)
}

/// Bank a's row: its position with each bank, then its total (its balance when they agree).
fn heat_row(
    a: usize,
    bank: &BankLine,
    row: &[Option<i64>],
    banks: &[BankLine],
    total: Option<&i128>,
    max_abs: i64,
) -> String {
    let cells: String = row
        .iter()
        .zip(banks)
        .enumerate()
        .map(|(b, (cell, other))| heat_cell(bank, other, a == b, *cell, max_abs))
        .collect();
    let agrees = total.is_some_and(|t| bank.balance_cents.map(i128::from) == Some(*t));
    let total = total.map_or_else(|| "—".to_string(), |t| cents(*t));
    let total = if agrees {
        format!("<td class=\"num\"><b>{total}</b></td>")
    } else {
        format!(
            "<td class=\"num fail\" title=\"balance {}\"><b>{total}</b> (not the balance)</td>",
            amount(bank.balance_cents)
        )
    };
    format!("<tr><th scope=\"row\" class=\"text\">{}</th>{cells}{total}</tr>\n", text(&bank.name))
}

fn heat_cell(
    a: &BankLine,
    b: &BankLine,
    diagonal: bool,
    cell: Option<i64>,
    max_abs: i64,
) -> String {
    let (a_name, b_name) = (text(&a.name), text(&b.name));
    match cell {
        _ if diagonal => "<td class=\"diag\">—</td>".to_string(),
        None => format!(
            "<td class=\"fail\" title=\"{a_name} with {b_name}: unreadable\">unreadable</td>"
        ),
        Some(c) => {
            let who = match c {
                0 => "even".to_string(),
                c if c > 0 => format!("{b_name} owes {a_name}"),
                _ => format!("{a_name} owes {b_name}"),
            };
            let amount = cents(c.into());
            format!(
                "<td class=\"num\" style=\"{}\" title=\"{a_name} with {b_name}: {amount} ({who})\">\
                 {amount}</td>",
                heat_style(c, max_abs)
            )
        }
    }
}

/// A cell's colour: red when negative, blue when positive, white at zero; the stronger, the
/// closer |cents| is to the largest position.
fn heat_style(cents: i64, max_abs: i64) -> String {
    let intensity = if max_abs > 0 {
        (cents.unsigned_abs() as f64 / max_abs.unsigned_abs() as f64).min(1.0)
    } else {
        0.0
    };
    let rgb = if cents < 0 { NEG_RGB } else { POS_RGB };
    let ink = if intensity > 0.55 { "color:#fff;" } else { "" };
    format!("background:rgba({rgb},{intensity:.3});{ink}")
}

fn heat_legend(banks: &[BankLine], max_abs: i64) -> String {
    let names: Vec<String> =
        banks.iter().map(|b| format!("<b>{}</b> = {}", text(&b.short), text(&b.name))).collect();
    format!(
        "<p class=\"note\">Columns: {}.</p>\n<p class=\"note\">Colour:<span class=\"swatch\" \
         style=\"background:rgb({NEG_RGB})\"></span>a owes b<span class=\"swatch\"></span>zero\
         <span class=\"swatch\" style=\"background:rgb({POS_RGB})\"></span>b owes a; full colour \
         at the largest position, {}.</p>\n",
        names.join(" · "),
        cents(max_abs.into())
    )
}

/// Transfers decided per second over the run, as a chart and its peak and mean.
fn rates(timeline: &Timeline) -> String {
    const TITLE: &str = "Transfers per second";
    let rates = if timeline.bucket_ms == 0 { Vec::new() } else { timeline.rates() };
    if rates.is_empty() {
        let body = "<p>Nothing to chart: no events read by this consumer invocation.</p>\n";
        return section(TITLE, body);
    }
    let bucket_s = timeline.bucket_ms as f64 / 1000.0;
    let body =
        format!("{}{}", rate_chart(&rates, bucket_s), rate_summary(timeline, &rates, bucket_s));
    section(TITLE, &body)
}

/// A numeric axis from 0 to a round top at least `max`, drawn from `from` to `to`.
struct Axis {
    step: f64,
    steps: u32,
    from: f64,
    to: f64,
}

impl Axis {
    /// About five steps of 1, 2 or 5 × 10^k.
    fn new(max: f64, from: f64, to: f64) -> Axis {
        let max = if max.is_finite() && max > 0.0 { max } else { 1.0 };
        let magnitude = 10_f64.powf((max / 5.0).log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .into_iter()
            .map(|m| m * magnitude)
            .find(|step| max / step <= 5.0)
            .unwrap_or(10.0 * magnitude);
        let steps = (1_u32..=5).find(|&k| f64::from(k) * step >= max).unwrap_or(5);
        Axis { step, steps, from, to }
    }

    /// Where `value` is drawn.
    fn at(&self, value: f64) -> f64 {
        let top = f64::from(self.steps) * self.step;
        self.from + (self.to - self.from) * (value / top).clamp(0.0, 1.0)
    }

    fn ticks(&self) -> impl Iterator<Item = f64> + '_ {
        (0..=self.steps).map(|k| f64::from(k) * self.step)
    }

    /// A tick's label, with as many decimals as the step needs.
    fn label(&self, value: f64) -> String {
        let mut decimals = 0;
        let mut step = self.step;
        while step < 1.0 && decimals < 9 {
            step *= 10.0;
            decimals += 1;
        }
        format!("{value:.decimals$}")
    }
}

/// The rates as two step lines (completed, cancelled) over labelled axes.
fn rate_chart(rates: &[(u64, f64, f64)], bucket_s: f64) -> String {
    let span = bucket_s * rates.len() as f64;
    let peak = rates.iter().map(|&(_, done, cancelled)| done.max(cancelled)).fold(0.0, f64::max);
    let x = Axis::new(span, PLOT_LEFT, PLOT_RIGHT);
    let y = Axis::new(peak, PLOT_BOTTOM, PLOT_TOP);
    let completed = step_points(rates.iter().map(|r| r.1), bucket_s, &x, &y);
    let cancelled = step_points(rates.iter().map(|r| r.2), bucket_s, &x, &y);
    format!(
        "<figure><svg class=\"chart\" viewBox=\"0 0 {CHART_W} {RATE_H}\" role=\"img\" \
         aria-label=\"Transfers per second over the run\">\n{}{}\
         <polyline class=\"completed\" points=\"{completed}\"/>\n\
         <polyline class=\"cancelled\" points=\"{cancelled}\"/>\n</svg></figure>\n\
         <p class=\"note\">Series:<span class=\"key\"></span>completed (solid)\
         <span class=\"key cancelled\"></span>cancelled (dashed)</p>\n",
        y_axis(&y),
        x_axis(&x)
    )
}

/// The y axis: gridlines, tick labels and its title.
fn y_axis(y: &Axis) -> String {
    let ticks: String = y
        .ticks()
        .map(|value| {
            let at = y.at(value);
            format!(
                "<line class=\"grid\" x1=\"{PLOT_LEFT}\" y1=\"{at:.1}\" x2=\"{PLOT_RIGHT}\" \
                 y2=\"{at:.1}\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
                PLOT_LEFT - 6.0,
                at + 4.0,
                y.label(value)
            )
        })
        .collect();
    let middle = (PLOT_TOP + PLOT_BOTTOM) / 2.0;
    format!(
        "{ticks}<line class=\"axis\" x1=\"{PLOT_LEFT}\" y1=\"{PLOT_TOP}\" x2=\"{PLOT_LEFT}\" \
         y2=\"{PLOT_BOTTOM}\"/>\n<text transform=\"translate(14 {middle}) rotate(-90)\" \
         text-anchor=\"middle\">transfers/s</text>\n"
    )
}

/// The x axis: ticks, their labels and its title.
fn x_axis(x: &Axis) -> String {
    let ticks: String = x
        .ticks()
        .map(|value| {
            let at = x.at(value);
            format!(
                "<line class=\"axis\" x1=\"{at:.1}\" y1=\"{PLOT_BOTTOM}\" x2=\"{at:.1}\" \
                 y2=\"{:.1}\"/><text x=\"{at:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
                PLOT_BOTTOM + 4.0,
                PLOT_BOTTOM + 18.0,
                x.label(value)
            )
        })
        .collect();
    format!(
        "{ticks}<line class=\"axis\" x1=\"{PLOT_LEFT}\" y1=\"{PLOT_BOTTOM}\" x2=\"{PLOT_RIGHT}\" \
         y2=\"{PLOT_BOTTOM}\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">time from \
         start (s)</text>\n",
        (PLOT_LEFT + PLOT_RIGHT) / 2.0,
        RATE_H - 6.0
    )
}

/// A polyline's points: each interval's rate held flat across the interval.
fn step_points(values: impl Iterator<Item = f64>, bucket_s: f64, x: &Axis, y: &Axis) -> String {
    let points: Vec<String> = (0_u32..)
        .zip(values)
        .map(|(i, value)| {
            let start = f64::from(i) * bucket_s;
            let at = y.at(value);
            format!("{:.1},{at:.1} {:.1},{at:.1}", x.at(start), x.at(start + bucket_s))
        })
        .collect();
    points.join(" ")
}

/// The peak and mean rates, in words.
fn rate_summary(timeline: &Timeline, rates: &[(u64, f64, f64)], bucket_s: f64) -> String {
    let (peak_ms, peak) = rates
        .iter()
        .map(|&(ms, done, cancelled)| (ms, done + cancelled))
        .fold((timeline.start_ms, 0.0), |best, r| if r.1 > best.1 { r } else { best });
    let span = bucket_s * rates.len() as f64;
    let total = timeline.total();
    let decided = total.completed.saturating_add(total.cancelled);
    let mean = decided as f64 / span;
    format!(
        "<p>Peak: <b>{peak:.1}</b> transfers/s (completed and cancelled) in the interval \
         starting {:.0} s after the start. Mean: <b>{mean:.1}</b> transfers/s over {span:.0} s \
         from {}: {} completed, {} cancelled, counted in intervals of {bucket_s} s.</p>\n",
        peak_ms.saturating_sub(timeline.start_ms) as f64 / 1000.0,
        utc(timeline.start_ms),
        count(total.completed),
        count(total.cancelled)
    )
}

/// The broker runs the data set has seen.
fn runs(runs: &[RunLine]) -> String {
    if runs.is_empty() {
        return section("Runs", "<p>No run recorded.</p>\n");
    }
    let rows: String = runs.iter().map(run_row).collect();
    let body = format!(
        "<div class=\"scroll\"><table>\n<thead><tr><th class=\"num\">Run</th><th>Strategy</th>\
         <th class=\"num\">Workers</th><th>Status</th><th class=\"num\">Planned</th>\
         <th class=\"num\">Applied</th><th>Started</th><th>Ended</th><th>Error</th></tr>\
         </thead>\n<tbody>\n{rows}</tbody>\n</table></div>\n"
    );
    section("Runs", &body)
}

fn run_row(run: &RunLine) -> String {
    let status = run.status.as_str();
    let class = if run.status == RunStatus::Failed { " class=\"fail\"" } else { "" };
    format!(
        "<tr><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td{class}>{status}</td>\
         <td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td>\
         <td class=\"text\">{}</td></tr>\n",
        run.run,
        run.strategy.as_str(),
        run.workers,
        count(run.planned),
        run.applied.map_or_else(|| "—".to_string(), count),
        utc(run.started_ms),
        run.ended_ms.map_or_else(|| "—".to_string(), utc),
        run.error.as_deref().map_or_else(String::new, text)
    )
}

/// Everything that went wrong, in one place.
fn anomalies(overview: &Overview, verdict: &Verdict) -> String {
    let failed_checks: String = verdict
        .checks
        .iter()
        .filter(|check| !check.passed)
        .map(|check| {
            format!(
                "<h3>Check {}: {} failures</h3>\n{}\n",
                text(&check.name),
                count(check.failures),
                failure_list(check.failures, &check.first_failures)
            )
        })
        .collect();
    let failed_invariants: String = overview
        .conservation
        .checks
        .iter()
        .filter(|check| !check.passed)
        .map(|check| {
            format!(
                "<h3>Invariant {}</h3>\n<p class=\"text\">{}</p>\n",
                text(check.name),
                text(&check.detail)
            )
        })
        .collect();
    let body = [failed_checks, failed_invariants, problem_list(overview)].concat();
    let body = if body.is_empty() {
        "<p>None: every check passed and every key could be read.</p>\n".to_string()
    } else {
        body
    };
    section("Anomalies", &body)
}

/// The keys that could not be read as they should be.
fn problem_list(overview: &Overview) -> String {
    if overview.problems.is_empty() && overview.more_problems == 0 {
        return String::new();
    }
    let items: String =
        overview.problems.iter().map(|p| format!("<li class=\"text\">{}</li>", text(p))).collect();
    let more = if overview.more_problems > 0 {
        format!("<li>and {} more</li>", count(overview.more_problems))
    } else {
        String::new()
    };
    format!("<h3>Keys not read as they should be</h3>\n<ul>{items}{more}</ul>\n")
}

fn foot(overview: &Overview) -> String {
    format!(
        "<footer>Written by <code>interbank consume --report</code> from the data set \
         <code>{}</code>, figures read at {}. This file is self-contained: no script, no \
         external reference.</footer>\n</main>\n</body>\n</html>\n",
        text(&overview.prefix),
        utc(overview.read_at_ms)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::runs::{RunRecord, Strategy};
    use crate::ledger::verify::Value;
    use crate::view::facts::{BankFacts, Facts, Loaded, RunFacts};
    use crate::view::overview::overview;
    use crate::view::timeline::Bucket;

    const EVIL: &str = "<script>alert(\"x\")</script>";

    fn bank(name: &str, balance: Value) -> BankFacts {
        BankFacts {
            name: name.to_string(),
            accounts: 2,
            accounts_cents: 5_000,
            bad_accounts: Vec::new(),
            bad_account_count: 0,
            balance,
            in_flight: Value::Missing,
            in_flight_to_cents: Vec::new(),
            credited_unsettled_cents: 0,
            shard: None,
        }
    }

    fn facts(banks: Vec<BankFacts>, interbank: Vec<Value>) -> Facts {
        let record = RunRecord {
            id: 1,
            strategy: Strategy::Atomic,
            workers: 4,
            producers: 4,
            planned: 100,
            started_ms: 1_764_000_000_000,
            status: RunStatus::Failed,
            ended_ms: Some(1_764_000_060_000),
            events: Some(90),
            error: Some("lost <connection> to \"node\" (https://example)".to_string()),
        };
        Facts {
            read_at_ms: 1_764_000_100_000,
            prefix: "banks_transfers".to_string(),
            layout: Layout::Single,
            loaded: Loaded {
                file: "accounts.csv".to_string(),
                accounts: 4,
                total_cents: 10_000,
                loaded_at_ms: 1_763_999_000_000,
            },
            banks,
            interbank,
            runs: vec![RunFacts { record, applied: None }],
            streams: Vec::new(),
            consumers: Vec::new(),
            verdict: None,
            consistent: true,
        }
    }

    /// Santander and a bank with a hostile name, 12.00 apart.
    fn two_banks() -> Overview {
        let banks = vec![bank("Santander", Value::Int(-1_200)), bank(EVIL, Value::Int(1_200))];
        let interbank = vec![Value::Missing, Value::Int(-1_200), Value::Int(1_200), Value::Missing];
        overview(&facts(banks, interbank))
    }

    fn verdict(checks: Vec<CheckResult>) -> Verdict {
        Verdict {
            at_ms: 1_764_000_000_000,
            consumer: "consumer".to_string(),
            verified: checks.iter().all(|c| c.passed),
            events: 1_234_567,
            completed: 1_200_000,
            cancelled: 34_567,
            checks,
        }
    }

    fn check(name: &str, passed: bool, failures: Vec<String>) -> CheckResult {
        CheckResult {
            name: name.to_string(),
            passed,
            detail: format!("{name} detail"),
            failures: u64::try_from(failures.len()).unwrap_or(0) * 3,
            first_failures: failures,
        }
    }

    fn timeline() -> Timeline {
        let mut timeline = Timeline::default();
        for i in 0..50_u64 {
            timeline.add(1_764_000_000_000 + i * 100, Bucket::one(!i.is_multiple_of(5)));
        }
        timeline
    }

    #[test]
    fn data_appears_escaped_never_as_markup() {
        let failing = check("accounts", false, vec!["key \"ES12\" < 0".to_string()]);
        let html = render(&two_banks(), &verdict(vec![failing]), &timeline());
        assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
        assert!(html.contains("key &quot;ES12&quot; &lt; 0"));
        assert!(html.contains("lost &lt;connection&gt;"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("<connection>"));
    }

    #[test]
    fn refers_to_nothing_outside_itself() {
        let mut overview = two_banks();
        overview.banks[0].name = "http://bank.example".to_string();
        overview.problems.push("key https://x and HTTP://Y".to_string());
        let html = render(&overview, &verdict(Vec::new()), &timeline());
        assert!(html.starts_with("<!doctype html>"));
        assert!(html.contains("<meta charset=\"utf-8\">"));
        assert!(html.contains("<svg"));
        assert!(html.contains("&#104;ttp://bank.example"));
        assert!(html.contains("&#72;TTP://Y"));
        let lower = html.to_ascii_lowercase();
        for absent in ["http", "<link", "<img", "xmlns", "<script", "url("] {
            assert!(!lower.contains(absent), "{absent} in the report");
        }
    }

    #[test]
    fn says_verified_or_not_verified_in_words() {
        let passing =
            render(&two_banks(), &verdict(vec![check("a", true, Vec::new())]), &timeline());
        assert!(passing.contains("VERIFIED"));
        assert!(!passing.contains("NOT VERIFIED"));
        assert!(passing.contains("PASS"));

        let checks = vec![check("a", true, Vec::new()), check("b", false, vec!["x".into()])];
        let failing = render(&two_banks(), &verdict(checks), &timeline());
        assert!(failing.contains("NOT VERIFIED"));
        assert!(failing.contains("1 of 2 checks passed"));
        assert!(failing.contains("FAIL"));
        assert!(failing.contains("and 2 more"));
    }

    #[test]
    fn shows_the_figures() {
        let overview = two_banks();
        let html = render(&overview, &verdict(Vec::new()), &timeline());
        assert!(html.contains("-12.00"));
        assert!(html.contains("2025-11-24 16:00:00 UTC"));
        assert!(html.contains("1,234,567"));
        assert!(html.contains("<polyline class=\"completed\""));
        assert!(html.contains("transfers/s"));
        assert!(html.contains("Peak: <b>10.0</b>"));
        assert!(html.contains("Mean: <b>10.0</b> transfers/s over 5 s"));
        let short = &overview.banks[0].short;
        assert!(html.contains(&format!("<b>{short}</b> = Santander")));
    }

    #[test]
    fn empty_and_unreadable_inputs_do_not_panic() {
        let empty = overview(&facts(Vec::new(), Vec::new()));
        let html = render(&empty, &verdict(Vec::new()), &Timeline::default());
        assert!(html.contains("no events read by this consumer invocation"));
        assert!(html.contains("The verdict holds no checks."));

        let banks = vec![
            bank("A", Value::Invalid("x".into())),
            bank("B", Value::Int(i64::MIN)),
            bank("C", Value::Int(0)),
        ];
        let mut interbank = vec![Value::Missing; 9];
        interbank[1] = Value::Error("WRONGTYPE".into());
        let zero = overview(&facts(banks, interbank));
        assert_eq!(zero.matrix.max_abs_cents, 0);
        let odd_timeline =
            Timeline { start_ms: 5, bucket_ms: 0, buckets: vec![Default::default()] };
        let html = render(&zero, &verdict(Vec::new()), &odd_timeline);
        assert!(html.contains("unreadable"));
        assert!(html.contains("no events read by this consumer invocation"));
        assert!(!html.contains("NaN"));
    }

    #[test]
    fn writes_the_verdict_time_in_utc() {
        let expected = [
            (0, "1970-01-01 00:00:00 UTC"),
            (1_764_000_000_000, "2025-11-24 16:00:00 UTC"),
            (951_782_400_000, "2000-02-29 00:00:00 UTC"),
            (1_735_689_599_999, "2024-12-31 23:59:59 UTC"),
        ];
        for (at_ms, text) in expected {
            let verdict = Verdict { at_ms, ..verdict(Vec::new()) };
            let html = render(&two_banks(), &verdict, &Timeline::default());
            assert!(html.contains(&format!("<td>{text}</td>")), "{at_ms}");
        }
        let far = Verdict { at_ms: u64::MAX, ..verdict(Vec::new()) };
        assert!(render(&two_banks(), &far, &Timeline::default()).contains(" UTC</td>"));
    }

    #[test]
    fn axes_are_round_and_hold_the_maximum() {
        let axis = Axis::new(47.0, 0.0, 100.0);
        assert_eq!(axis.ticks().collect::<Vec<_>>(), vec![0.0, 10.0, 20.0, 30.0, 40.0, 50.0]);
        assert_eq!(axis.label(20.0), "20");
        let small = Axis::new(0.3, 0.0, 100.0);
        assert_eq!(small.label(0.1), "0.1");
        assert!(Axis::new(0.0, 0.0, 1.0).at(0.0).is_finite());
        assert_eq!(count(1_234_567), "1,234,567");
    }
}
