//! Test support: a private `redis-server` on a free port, and the `interbank` binary.
//!
//! Every test starts its own server (never the shared one on 6379) in a temporary folder and the
//! server is killed when the test ends, pass or fail.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer PING after it was started.
const START_TIMEOUT_MS: u64 = 10_000;
/// How many ports to try when one is taken between choosing it and binding it.
const START_ATTEMPTS: u32 = 5;

pub struct RedisServer {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Starts a server with extra `--name value` settings.
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let mut child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args([
                    "--dir",
                    dir.path().to_str().unwrap(),
                    "--logfile",
                    "redis.log",
                ])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be installed (apt-get install redis-server)");
            let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if redis_cli_at(port, &["PING"])
                    .map(|out| out.trim() == "PONG")
                    .unwrap_or(false)
                {
                    return RedisServer { child, port, dir };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("could not start redis-server on a free port after {START_ATTEMPTS} attempts");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs a command with redis-cli and returns its output (errors included, as text).
    pub fn cli(&self, args: &[&str]) -> String {
        redis_cli_at(self.port, args).expect("redis-cli runs")
    }

    pub fn dbsize(&self) -> u64 {
        self.cli(&["DBSIZE"]).trim().parse().unwrap()
    }

    /// Every key, sorted, with its type and value: a fingerprint of the whole database.
    pub fn dump(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.cli(&["--scan"]).lines().map(str::to_string).collect();
        keys.sort();
        keys.into_iter()
            .map(|key| {
                let kind = self.cli(&["TYPE", &key]).trim().to_string();
                let value = match kind.as_str() {
                    "string" => self.cli(&["GET", &key]),
                    "hash" => self.cli(&["HGETALL", &key]),
                    "list" => self.cli(&["LRANGE", &key, "0", "-1"]),
                    "stream" => self.cli(&["XLEN", &key]),
                    _ => String::new(),
                };
                format!("{key} {kind} {}", value.trim())
            })
            .collect()
    }
}

fn redis_cli_at(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `interbank` binary built for these tests.
pub fn interbank(url: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_interbank"));
    cmd.current_dir(dir)
        .env("REDIS_URL", url)
        .env_remove("INTERBANK_PREFIX");
    cmd
}

/// Runs the binary and returns its output, whatever the exit code.
pub fn run(url: &str, dir: &Path, args: &[&str]) -> Output {
    interbank(url, dir).args(args).output().unwrap()
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs the binary and panics with its output unless it succeeded.
pub fn ok(url: &str, dir: &Path, args: &[&str]) -> String {
    let out = run(url, dir, args);
    assert!(
        out.status.success(),
        "interbank {args:?} failed:\n{}",
        text(&out)
    );
    text(&out)
}

/// The repository's copy of the seed's sample files.
pub fn seed_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/seed")
        .join(name)
}

/// A work folder with generated data: `data/accounts_<n>.csv` and `data/banks.csv`.
pub fn workdir_with_accounts(url: &str, accounts: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ok(
        url,
        dir.path(),
        &["gen", "--accounts", &accounts.to_string(), "--seed", "7"],
    );
    dir
}
