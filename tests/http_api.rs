//! The dashboard's HTTP API (`docs/DASHBOARD.md`) against real `redis-server`s, with no browser:
//! what `/metrics` says equals what Redis holds (money, each bank's balance, positions, stream
//! lengths, the verdict, the runs) in a well-formed Prometheus text; `/api/events` pages back to
//! the first entry without a gap or a repeat, and its filters keep exactly the rows they name;
//! `/api/state` and `/api/stream` carry the same state, at once on connect and on reconnect; the
//! security headers and the 404/405 answers; on a Redis Cluster each bank names its shard and
//! the per-bank streams merge into one list; and a dead Redis is reported, never fatal, without
//! the password of its URL in any answer.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::RedisCluster;
use common::serve::serve;
use common::*;
use serde_json::Value;

/// How long a test waits for the server to show what Redis holds.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
/// The most pages a walk through `/api/events` may take.
const MAX_PAGES: usize = 500;
const STREAM: &str = "banks_transfers:events";

/// One HTTP answer.
struct Reply {
    status: u16,
    /// Header names in lower case.
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        assert_eq!(self.status, 200, "{}", self.body);
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// A request with curl (`method` and `path` on `address`), headers and body of the answer.
fn http(address: &str, method: &str, path: &str) -> Reply {
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "10", "-X", method])
        .arg(format!("http://{address}{path}"))
        .output()
        .expect("curl runs");
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) =
        raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{method} {path}: answered {raw:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: no status line in {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply { status, headers, body: body.to_string() }
}

fn get(address: &str, path: &str) -> Reply {
    http(address, "GET", path)
}

/// Calls `probe` until it gives a value, for at most `timeout`; panics with its last complaint.
fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(why) if Instant::now() >= deadline => {
                panic!("{what}: not within {timeout:?}; last: {why}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The overview of `/api/state`, once there is one and `accept` takes it.
fn overview_when(address: &str, accept: impl Fn(&Value) -> bool) -> Value {
    wait_for("an overview in /api/state", SETTLE_TIMEOUT, || {
        let state = get(address, "/api/state").json();
        let overview = &state["overview"];
        if overview.is_object() && accept(overview) {
            Ok(overview.clone())
        } else {
            Err(state.to_string())
        }
    })
}

/// A reply of redis-cli as a number; an empty reply (a missing key or field) is 0.
fn number(reply: &str) -> i64 {
    let reply = reply.trim();
    if reply.is_empty() {
        return 0;
    }
    reply.parse().unwrap_or_else(|_| panic!("redis answered {reply:?}, not a number"))
}

fn banks(server: &RedisServer) -> Vec<String> {
    let list = server.cli(&["LRANGE", "banks_transfers:banks", "0", "-1"]);
    let banks: Vec<String> = list.lines().map(str::to_string).filter(|l| !l.is_empty()).collect();
    assert!(banks.len() > 2, "banks: {list:?}");
    banks
}

/// A work folder with `accounts` accounts loaded into `url`.
fn loaded(url: &str, accounts: u64) -> tempfile::TempDir {
    let dir = workdir_with_accounts(url, accounts);
    let file = format!("data/accounts_{accounts}.csv");
    ok(url, dir.path(), &["init", "--accounts", &file]);
    dir
}

// ---------------------------------------------------------------------------------------------
// The Prometheus text format.

/// One sample: its name, its labels (unescaped) and its value as written.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: String,
}

/// Parses the text format, checking its shape on the way: every sample comes after the `# TYPE`
/// of its own family, each family is typed once as a counter or a gauge, and counters end in
/// `_total`.
fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut family: Option<String> = None;
    let mut typed = BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<&str> = comment.split_whitespace().collect();
            match words.as_slice() {
                ["TYPE", name, kind] => {
                    assert!(typed.insert(name.to_string()), "{name} is typed twice");
                    assert!(matches!(*kind, "counter" | "gauge"), "{line}");
                    if *kind == "counter" {
                        assert!(name.ends_with("_total"), "a counter without _total: {line}");
                    } else {
                        assert!(!name.ends_with("_total"), "a gauge named like a counter: {line}");
                    }
                    family = Some(name.to_string());
                }
                ["HELP", name, ..] => {
                    assert!(!typed.contains(*name), "HELP after TYPE of {name}");
                    family = None;
                }
                _ => {}
            }
            continue;
        }
        let sample = parse_sample(line);
        assert_eq!(
            family.as_deref(),
            Some(sample.name.as_str()),
            "a sample outside the family typed before it: {line}"
        );
        samples.push(sample);
    }
    samples
}

/// `name{a="x",b="y"} value [timestamp]`, label values unescaped (`\\`, `\"`, `\n`).
fn parse_sample(line: &str) -> Sample {
    let end = line.find(['{', ' ']).unwrap_or_else(|| panic!("no value: {line}"));
    let name = line[..end].to_string();
    assert!(
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "a bad metric name: {line}"
    );
    let mut labels = BTreeMap::new();
    let mut chars = line[end..].chars().peekable();
    if chars.peek() == Some(&'{') {
        chars.next();
        loop {
            match chars.peek() {
                Some('}') => {
                    chars.next();
                    break;
                }
                Some(',') => {
                    chars.next();
                }
                Some(_) => {}
                None => panic!("unclosed labels: {line}"),
            }
            if chars.peek() == Some(&'}') {
                continue;
            }
            let label: String = chars.by_ref().take_while(|&c| c != '=').collect();
            assert_eq!(chars.next(), Some('"'), "a label value without quotes: {line}");
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => panic!("a bad escape {other:?}: {line}"),
                    },
                    Some(c) => value.push(c),
                    None => panic!("an unterminated label value: {line}"),
                }
            }
            assert!(
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "a bad label name {label:?}: {line}"
            );
            assert!(labels.insert(label, value).is_none(), "a label twice: {line}");
        }
    }
    let rest: String = chars.collect();
    let value = rest.split_whitespace().next().unwrap_or_else(|| panic!("no value: {line}"));
    assert!(value.parse::<f64>().is_ok(), "a value that is not a number: {line}");
    Sample { name, labels, value: value.to_string() }
}

/// The samples by name and labels.
struct Metrics(Vec<Sample>);

impl Metrics {
    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<&Sample> {
        self.0.iter().find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// An integer sample, which must be there.
    fn int(&self, name: &str, labels: &[(&str, &str)]) -> i64 {
        let sample = self.find(name, labels).unwrap_or_else(|| panic!("no {name} {labels:?}"));
        sample.value.parse().unwrap_or_else(|_| panic!("{name} {labels:?} = {}", sample.value))
    }
}

/// Whether `text` holds an IBAN of this data set: `ES` and 22 digits.
fn has_iban(text: &str) -> bool {
    let bytes = text.as_bytes();
    (0..bytes.len()).any(|i| {
        bytes[i..].starts_with(b"ES")
            && bytes.len() >= i + 24
            && bytes[i + 2..i + 24].iter().all(u8::is_ascii_digit)
    })
}

#[test]
fn metrics_equal_what_redis_holds() {
    let server = RedisServer::start();
    let url = server.url();
    let dir = loaded(&url, 200);
    broker(&url, dir.path(), &["--workers", "4", "--transfers", "500"]);
    verified(&url, dir.path(), "data/accounts_200.csv");
    let xlen = number(&server.cli(&["XLEN", STREAM]));
    assert!(xlen > 0);
    let served = serve(&url, dir.path(), &["--refresh", "0.3"]);

    let metrics = wait_for("/metrics counting every entry", SETTLE_TIMEOUT, || {
        let reply = get(&served.address, "/metrics");
        if reply.status != 200 {
            return Err(format!("{}: {}", reply.status, reply.body));
        }
        let content_type = reply.header("content-type").unwrap_or_default();
        assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
        let metrics = Metrics(parse_metrics(&reply.body));
        let decided: i64 = ["completed", "cancelled"]
            .iter()
            .filter_map(|o| metrics.find("interbank_transfers_total", &[("outcome", o)]))
            .map(|s| s.value.parse::<i64>().unwrap())
            .sum();
        let has_overview = metrics.find("interbank_verification_passed", &[]).is_some();
        if decided == xlen && has_overview { Ok(metrics) } else { Err(reply.body) }
    });

    for sample in &metrics.0 {
        assert!(sample.name.starts_with("interbank_"), "{sample:?}");
        for value in sample.labels.values() {
            assert!(!has_iban(value), "an IBAN in a label: {sample:?}");
        }
    }
    assert_eq!(metrics.int("interbank_redis_up", &[]), 1);
    assert_eq!(metrics.int("interbank_transfer_steps_total", &[]), 0, "no cross-bank steps");

    let loaded = number(&server.cli(&["HGET", "banks_transfers:meta", "total_cents"]));
    assert!(loaded > 0);
    assert_eq!(metrics.int("interbank_money_loaded_cents", &[]), loaded);
    assert_eq!(metrics.int("interbank_money_accounts_cents", &[]), loaded);
    assert_eq!(metrics.int("interbank_money_difference_cents", &[]), 0);
    assert_eq!(metrics.int("interbank_money_conserved", &[]), 1);
    assert_eq!(metrics.int("interbank_conservation_state", &[("state", "conserved")]), 1);
    assert_eq!(metrics.int("interbank_stream_entries", &[("stream", STREAM)]), xlen);

    let banks = banks(&server);
    let balances = metrics.0.iter().filter(|s| s.name == "interbank_bank_balance_cents").count();
    assert_eq!(balances, banks.len(), "one balance per bank");
    for bank in &banks {
        let key = format!("banks_transfers:{{{bank}}}:balance");
        let held = number(&server.cli(&["GET", &key]));
        assert_eq!(metrics.int("interbank_bank_balance_cents", &[("bank", bank)]), held, "{bank}");
    }
    let positions = metrics.0.iter().filter(|s| s.name == "interbank_position_cents").count();
    assert_eq!(positions, banks.len() * (banks.len() - 1), "one position per ordered pair");
    let last = banks.last().unwrap();
    let pairs =
        [(&banks[0], &banks[1]), (&banks[1], &banks[0]), (&banks[2], last), (last, &banks[0])];
    for (a, b) in pairs {
        let key = format!("banks_transfers:{{{a}}}:interbank");
        let held = number(&server.cli(&["HGET", &key, b]));
        let labels = [("bank", a.as_str()), ("counterparty", b.as_str())];
        assert_eq!(metrics.int("interbank_position_cents", &labels), held, "{a} with {b}");
    }

    assert_eq!(metrics.int("interbank_verification_passed", &[]), 1);
    assert_eq!(metrics.int("interbank_verification_events", &[]), xlen);
    assert_eq!(metrics.int("interbank_runs", &[("status", "ended")]), 1);
    for status in ["running", "failed", "interrupted"] {
        assert_eq!(metrics.int("interbank_runs", &[("status", status)]), 0, "{status}");
    }
}

// ---------------------------------------------------------------------------------------------
// /api/events

/// Every row `/api/events?<query>` gives, following `next` until it is null.
fn all_events(address: &str, query: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut before: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let path = match &before {
            None => format!("/api/events?{query}"),
            Some(cursor) => format!("/api/events?{query}&before={cursor}"),
        };
        let page = get(address, &path).json();
        let events = page["events"].as_array().unwrap_or_else(|| panic!("{path}: {page}"));
        let limit: usize = query
            .split('&')
            .find_map(|p| p.strip_prefix("limit="))
            .map_or(50, |l| l.parse().unwrap());
        assert!(events.len() <= limit, "{path}: {} rows", events.len());
        rows.extend(events.iter().cloned());
        match &page["next"] {
            Value::Null => return rows,
            Value::String(next) => {
                assert_ne!(before.as_ref(), Some(next), "{path}: the cursor did not move");
                before = Some(next.replace('|', "%7C"));
            }
            other => panic!("{path}: next is {other}"),
        }
    }
    panic!("/api/events?{query}: still a next page after {MAX_PAGES} pages");
}

/// An entry id as `(ms, sequence)`.
fn id_of(row: &Value) -> (u64, u64) {
    let id = row["id"].as_str().unwrap_or_else(|| panic!("a row without id: {row}"));
    let (ms, seq) = id.split_once('-').unwrap_or_else(|| panic!("id {id}"));
    (ms.parse().unwrap(), seq.parse().unwrap())
}

#[test]
fn events_page_back_without_gaps_and_filter() {
    let server = RedisServer::start();
    let url = server.url();
    let dir = loaded(&url, 200);
    broker(&url, dir.path(), &["--workers", "4", "--transfers", "500"]);
    broker(&url, dir.path(), &["--workers", "2", "--transfers", "150"]);
    let xlen = number(&server.cli(&["XLEN", STREAM]));
    assert_eq!(xlen, 4 * 500 + 2 * 150);
    let served = serve(&url, dir.path(), &["--refresh", "0.3"]);
    let address = served.address.as_str();

    let all = all_events(address, "limit=100");
    let ids: Vec<(u64, u64)> = all.iter().map(id_of).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "ids are not strictly decreasing");
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), ids.len(), "an id twice");
    assert_eq!(all.len() as i64, xlen, "rows of every page = XLEN");
    let first = server.cli(&["XRANGE", STREAM, "-", "+", "COUNT", "1"]);
    let oldest = all.last().unwrap()["id"].as_str().unwrap();
    assert!(first.lines().next().unwrap().trim() == oldest, "the last row is the first entry");
    for row in &all {
        assert_eq!(row["stream"], STREAM, "{row}");
        assert!(matches!(row["status"].as_str(), Some("completed" | "cancelled")), "{row}");
    }

    // Each filter keeps exactly the rows it names, over every page.
    let kept = |query: &str, keep: &dyn Fn(&Value) -> bool| {
        let rows = all_events(address, query);
        let expected: Vec<&Value> = all.iter().filter(|r| keep(r)).collect();
        assert!(!expected.is_empty(), "{query}: nothing to keep in this data set");
        assert_eq!(rows.len(), expected.len(), "{query}: rows kept");
        for (row, want) in rows.iter().zip(&expected) {
            assert_eq!(row, *want, "{query}");
        }
        rows
    };
    let cancelled = kept("outcome=cancelled&limit=50", &|r| r["status"] == "cancelled");
    for row in &cancelled {
        assert!(row["reason"].as_str().is_some_and(|r| !r.is_empty()), "no reason: {row}");
    }
    kept("bank=ING&limit=50", &|r| r["from_bank"] == "ING" || r["to_bank"] == "ING");
    kept("run=1", &|r| r["run"] == 1);
    kept("run=2&limit=500", &|r| r["run"] == 2);
    kept("outcome=completed&bank=ING&run=2&limit=20", &|r| {
        r["status"] == "completed"
            && r["run"] == 2
            && (r["from_bank"] == "ING" || r["to_bank"] == "ING")
    });
    let none = get(address, "/api/events?bank=NoSuchBank&limit=10").json();
    assert_eq!(none["events"].as_array().map(Vec::len), Some(0), "{none}");
    assert!(none["scanned"].as_u64().is_some_and(|s| s > 0), "{none}");

    for bad in ["before=garbage", "run=x", "before=1-1%7C2-2", "run=-1"] {
        let reply = get(address, &format!("/api/events?{bad}"));
        assert_eq!(reply.status, 400, "{bad}: {}", reply.body);
        assert!(!reply.body.is_empty(), "{bad}: a 400 says why");
    }
}

// ---------------------------------------------------------------------------------------------
// /api/state, /api/stream and the HTTP basics

/// One event of a Server-Sent Events stream.
#[derive(Debug, Default)]
struct SseEvent {
    event: Option<String>,
    id: Option<String>,
    data: String,
}

/// Opens `/api/stream` with curl for at most 3 s, sending `headers`; the events it got and how
/// long the first took to arrive.
fn stream_events(address: &str, headers: &[&str]) -> (Vec<SseEvent>, Option<Duration>) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-N", "--max-time", "3"]);
    for header in headers {
        cmd.args(["-H", header]);
    }
    let started = Instant::now();
    let mut child =
        cmd.arg(format!("http://{address}/api/stream")).stdout(Stdio::piped()).spawn().unwrap();
    let reader = BufReader::new(child.stdout.take().unwrap());
    let mut events = Vec::new();
    let mut current = SseEvent::default();
    let mut first = None;
    for line in reader.lines() {
        let line = line.unwrap();
        if line.is_empty() {
            if current.event.is_some() || !current.data.is_empty() {
                first.get_or_insert_with(|| started.elapsed());
                events.push(std::mem::take(&mut current));
            }
            continue;
        }
        if let Some(value) = line.strip_prefix("event: ") {
            current.event = Some(value.to_string());
        } else if let Some(value) = line.strip_prefix("id: ") {
            current.id = Some(value.to_string());
        } else if let Some(value) = line.strip_prefix("data: ") {
            current.data.push_str(value);
        }
    }
    let _ = child.wait();
    (events, first)
}

#[test]
fn state_and_stream_carry_the_same_state() {
    let server = RedisServer::start();
    let url = server.url();
    let dir = loaded(&url, 200);
    broker(&url, dir.path(), &["--workers", "4", "--transfers", "500"]);
    let loaded = number(&server.cli(&["HGET", "banks_transfers:meta", "total_cents"]));
    // A long refresh: once read, the state stays still, so an event is the one sent on connect.
    let served = serve(&url, dir.path(), &["--refresh", "60"]);
    let address = served.address.as_str();

    let state = wait_for("a state read and caught up", SETTLE_TIMEOUT, || {
        let state = get(address, "/api/state").json();
        let ready = state["overview"].is_object() && state["live"]["caught_up"] == true;
        if ready { Ok(state) } else { Err(state.to_string()) }
    });
    assert_eq!(state["redis"]["ok"], true, "{state}");
    assert_eq!(state["redis"]["error"], Value::Null, "{state}");
    let overview = &state["overview"];
    assert_eq!(overview["layout"], "single");
    assert_eq!(overview["conservation"]["state"], "conserved", "{overview}");
    assert_eq!(overview["money"]["difference_cents"], 0, "{overview}");
    assert_eq!(overview["loaded"]["total_cents"], loaded);
    let live = &state["live"];
    let decided = live["completed"].as_i64().unwrap() + live["cancelled"].as_i64().unwrap();
    assert_eq!(decided, number(&server.cli(&["XLEN", STREAM])), "{live}");
    let seq = state["seq"].as_u64().unwrap();

    let with_id = "Last-Event-ID: 5".to_string();
    let (fresh, reconnect) = std::thread::scope(|s| {
        let fresh = s.spawn(|| stream_events(address, &[]));
        let reconnect = s.spawn(|| stream_events(address, &[with_id.as_str()]));
        (fresh.join().unwrap(), reconnect.join().unwrap())
    });
    for (what, (events, first)) in [("connect", fresh), ("reconnect", reconnect)] {
        let event = events.first().unwrap_or_else(|| panic!("{what}: no event within 3 s"));
        let took = first.unwrap();
        assert!(took < Duration::from_secs(2), "{what}: the first event took {took:?}");
        assert_eq!(event.event.as_deref(), Some("state"), "{what}: {event:?}");
        let id: u64 = event
            .id
            .as_deref()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("{what}: id {:?}", event.id));
        let data: Value = serde_json::from_str(&event.data)
            .unwrap_or_else(|e| panic!("{what}: {e}: {}", event.data));
        assert_eq!(data["seq"].as_u64(), Some(id), "{what}: id is the state's seq");
        assert!(id >= seq, "{what}: id {id} older than the state read before ({seq})");
        assert_eq!(data["overview"]["loaded"], overview["loaded"], "{what}");
        assert_eq!(data["overview"]["loaded"]["total_cents"], loaded, "{what}");
        assert_eq!(data["overview"]["money"], overview["money"], "{what}");
        assert_eq!(data["live"]["completed"], live["completed"], "{what}");
        assert_eq!(data["redis"]["ok"], true, "{what}");
    }

    let page = get(address, "/");
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").expect("a CSP");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert!(page.header("content-type").is_some_and(|t| t.starts_with("text/html")));
    for path in ["/api/state", "/metrics", "/api/events"] {
        let reply = get(address, path);
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"), "{path}");
    }
    for (method, path) in [("POST", "/api/state"), ("PUT", "/metrics"), ("DELETE", "/api/events")] {
        assert_eq!(http(address, method, path).status, 405, "{method} {path}");
    }
    assert_eq!(get(address, "/nothing").status, 404);
    assert_eq!(get(address, "/api/nothing").status, 404);
}

#[test]
fn a_new_init_of_the_same_file_counts_its_events_from_zero() {
    let server = RedisServer::start();
    let url = server.url();
    let dir = loaded(&url, 100);
    broker(&url, dir.path(), &["--workers", "4", "--transfers", "300"]);
    let served = serve(&url, dir.path(), &["--refresh", "0.2"]);
    let address = served.address.as_str();
    let counted = |expected: i64| {
        let what = format!("{expected} events counted, caught up");
        wait_for(&what, SETTLE_TIMEOUT, || {
            let state = get(address, "/api/state").json();
            let live = &state["live"];
            let decided =
                live["completed"].as_i64().unwrap_or(-1) + live["cancelled"].as_i64().unwrap_or(-1);
            let done = live["caught_up"] == true && decided == expected;
            if done { Ok(()) } else { Err(live.to_string()) }
        })
    };
    counted(1200);
    // The same file again (same digest): new streams, which the dashboard counts on their own.
    ok(&url, dir.path(), &["init", "--accounts", "data/accounts_100.csv"]);
    broker(&url, dir.path(), &["--workers", "2", "--transfers", "100"]);
    assert_eq!(number(&server.cli(&["XLEN", STREAM])), 200);
    counted(200);
}

// ---------------------------------------------------------------------------------------------
// Redis Cluster

#[test]
fn on_a_cluster_each_bank_shows_its_shard() {
    let cluster = RedisCluster::single();
    let node = &cluster.nodes[0];
    let url = cluster.url();
    let dir = loaded(&url, 100);
    broker(&url, dir.path(), &["--workers", "2", "--transfers", "300"]);
    let banks = banks(node);
    let lengths: HashMap<String, i64> = banks
        .iter()
        .map(|b| {
            let key = format!("banks_transfers:{{{b}}}:events");
            let length = number(&node.cli(&["XLEN", &key]));
            (key, length)
        })
        .collect();
    let total: i64 = lengths.values().sum();
    assert!(total >= 600, "every transfer leaves at least one entry: {total}");
    let served = serve(&url, dir.path(), &["--refresh", "0.3"]);
    let address = served.address.as_str();

    let overview = overview_when(address, |o| {
        o["conservation"]["state"] == "conserved" && o["banks"].is_array()
    });
    assert_eq!(overview["layout"], "sharded");
    assert_eq!(overview["money"]["difference_cents"], 0, "{overview}");
    assert_eq!(overview["money"]["in_flight_cents"], 0, "{overview}");
    let port = format!(":{}", node.port);
    let shown = overview["banks"].as_array().unwrap();
    assert_eq!(shown.len(), banks.len());
    for bank in shown {
        let shard = bank["shard"].as_str().unwrap_or_else(|| panic!("no shard: {bank}"));
        assert!(shard.ends_with(&port), "{bank}");
    }
    let streams = overview["streams"].as_array().unwrap();
    assert_eq!(streams.len(), banks.len(), "one stream per bank: {streams:?}");
    for stream in streams {
        let key = stream["key"].as_str().unwrap();
        assert_eq!(stream["length"].as_i64(), lengths.get(key).copied(), "{stream}");
        let bank = stream["bank"].as_str().unwrap_or_else(|| panic!("{stream}"));
        assert_eq!(key, format!("banks_transfers:{{{bank}}}:events"));
    }

    let rows = all_events(address, "limit=500");
    assert_eq!(rows.len() as i64, total, "rows of every page = the streams' entries");
    let ids: Vec<(u64, u64)> = rows.iter().map(id_of).collect();
    assert!(ids.windows(2).all(|w| w[0] >= w[1]), "ids are not in decreasing order");
    let mut seen = BTreeSet::new();
    let mut per_stream: HashMap<String, i64> = HashMap::new();
    for row in &rows {
        let stream = row["stream"].as_str().unwrap().to_string();
        assert!(seen.insert((stream.clone(), id_of(row))), "shown twice: {row}");
        *per_stream.entry(stream).or_default() += 1;
    }
    for (key, length) in &lengths {
        assert_eq!(per_stream.get(key).copied().unwrap_or(0), *length, "{key}");
    }
    let steps: BTreeSet<&str> = rows.iter().filter_map(|r| r["status"].as_str()).collect();
    assert!(steps.contains("debited") && steps.contains("credited"), "{steps:?}");
}

// ---------------------------------------------------------------------------------------------
// A dead Redis

#[test]
fn a_dead_redis_is_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let password = "hunter2secret";
    let url = format!("redis://:{password}@127.0.0.1:{port}");
    let served = serve(&url, dir.path(), &["--refresh", "0.3"]);
    let address = served.address.as_str();

    let state = wait_for("a failed read in /api/state", SETTLE_TIMEOUT, || {
        let state = get(address, "/api/state").json();
        if state["redis"]["error"].is_string() { Ok(state) } else { Err(state.to_string()) }
    });
    assert_eq!(state["redis"]["ok"], false, "{state}");
    assert!(state["redis"]["error"].as_str().is_some_and(|e| !e.trim().is_empty()), "{state}");
    assert!(state["redis"]["down_since_ms"].is_u64(), "{state}");
    assert_eq!(state["overview"], Value::Null, "{state}");

    let metrics = get(address, "/metrics");
    assert_eq!(metrics.status, 200, "{}", metrics.body);
    let parsed = Metrics(parse_metrics(&metrics.body));
    assert_eq!(parsed.int("interbank_redis_up", &[]), 0);
    assert!(parsed.find("interbank_money_loaded_cents", &[]).is_none(), "no figures unread");

    let events = get(address, "/api/events?limit=10");
    assert!(events.status >= 500, "{}: {}", events.status, events.body);
    assert!(!events.body.trim().is_empty(), "the failure says why");
    let again = get(address, "/api/state").json();
    assert_eq!(again["redis"]["ok"], false, "still served after failed reads: {again}");
    let (stream, _) = stream_events(address, &[]);
    let first = stream.first().expect("a state event while Redis is down");
    assert!(first.data.contains("\"ok\":false"), "{first:?}");

    for (what, text) in [
        ("/api/state", state.to_string()),
        ("/api/state later", again.to_string()),
        ("/metrics", metrics.body.clone()),
        ("/api/events", events.body.clone()),
        ("/api/stream", first.data.clone()),
        ("serve's stderr", served.stderr()),
    ] {
        assert!(!text.contains(password), "{what} shows the password: {text}");
    }
}

#[test]
fn a_redis_without_a_data_set_is_empty_not_down() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let served = serve(&server.url(), dir.path(), &["--refresh", "0.3"]);
    let address = served.address.as_str();
    let state = wait_for("an empty read in /api/state", SETTLE_TIMEOUT, || {
        let state = get(address, "/api/state").json();
        if state["redis"]["empty"].is_string() { Ok(state) } else { Err(state.to_string()) }
    });
    assert_eq!(state["redis"]["ok"], true, "{state}");
    assert!(state["redis"]["empty"].as_str().unwrap().contains("interbank init"), "{state}");
    assert_eq!(state["overview"], Value::Null, "{state}");
    let parsed = Metrics(parse_metrics(&get(address, "/metrics").body));
    assert_eq!(parsed.int("interbank_redis_up", &[]), 1);
}
