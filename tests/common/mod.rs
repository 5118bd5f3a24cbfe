//! Test support: a private `redis-server` on a free port, and the `interbank` binary.
//!
//! Every test starts its own server (never the shared one on 6379) in a temporary folder and the
//! server is killed when the test ends, pass or fail.

#![allow(dead_code)]

pub mod browser;
pub mod cluster;
pub mod serve;

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
    /// What redis-cli needs to reach this server: port, and TLS and password if any.
    cli_args: Vec<String>,
    /// The server's command line, to start it again the same way (same port, same folder).
    server_args: Vec<String>,
    scheme: &'static str,
    password: Option<String>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A test CA and a server certificate for localhost and 127.0.0.1, as PEM files in `dir`.
pub struct TestCerts {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

pub fn make_certs(dir: &Path) -> TestCerts {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "interbank test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
    let certs = TestCerts {
        ca_cert: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
    };
    std::fs::write(&certs.ca_cert, ca_cert.pem()).unwrap();
    std::fs::write(&certs.server_cert, server_cert.pem()).unwrap();
    std::fs::write(&certs.server_key, server_key.serialize_pem()).unwrap();
    certs
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Starts a server with extra `--name value` settings.
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        RedisServer::launch(
            dir,
            extra,
            |port| vec!["--port".into(), port.to_string()],
            Vec::new(),
            "redis",
            None,
        )
    }

    /// Starts a TLS-only server with a password; its certificates are made in its folder.
    pub fn start_tls(password: &str) -> (RedisServer, TestCerts) {
        let dir = tempfile::tempdir().unwrap();
        let certs = make_certs(dir.path());
        let path = |p: &Path| p.to_str().unwrap().to_string();
        let (cert, key, ca) =
            (path(&certs.server_cert), path(&certs.server_key), path(&certs.ca_cert));
        let server_args = move |port: u16| {
            [
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--tls-cert-file",
                &cert,
                "--tls-key-file",
                &key,
            ]
            .iter()
            .chain(&["--tls-ca-cert-file", &ca, "--tls-auth-clients", "no"])
            .map(|s| s.to_string())
            .collect()
        };
        let cli = ["--tls", "--cacert", &path(&certs.ca_cert), "-a", password, "--no-auth-warning"];
        let cli = cli.iter().map(|s| s.to_string()).collect();
        let extra = ["--requirepass", password];
        (RedisServer::launch(dir, &extra, server_args, cli, "rediss", Some(password)), certs)
    }

    fn launch(
        dir: tempfile::TempDir,
        extra: &[&str],
        listen: impl Fn(u16) -> Vec<String>,
        cli_extra: Vec<String>,
        scheme: &'static str,
        password: Option<&str>,
    ) -> RedisServer {
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let mut server_args = listen(port);
            server_args.extend(
                ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"].map(String::from),
            );
            server_args.extend(
                ["--dir", dir.path().to_str().unwrap(), "--logfile", "redis.log"].map(String::from),
            );
            server_args.extend(extra.iter().map(|s| s.to_string()));
            let mut cli_args = vec!["-p".to_string(), port.to_string()];
            cli_args.extend(cli_extra.iter().cloned());
            if let Some(child) = spawn_and_wait(&server_args, &cli_args) {
                let password = password.map(str::to_string);
                return RedisServer { child, port, dir, cli_args, server_args, scheme, password };
            }
        }
        panic!("could not start redis-server on a free port after {START_ATTEMPTS} attempts");
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Stops the server with `SHUTDOWN NOSAVE`, as an operator would.
    pub fn shutdown_nosave(&mut self) {
        self.cli(&["SHUTDOWN", "NOSAVE"]);
        self.child.wait().unwrap();
    }

    /// Starts the stopped server again, same port, same folder, same settings.
    pub fn restart(&mut self) {
        self.child =
            spawn_and_wait(&self.server_args, &self.cli_args).expect("redis-server restarts");
    }

    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("{}://:{password}@127.0.0.1:{}", self.scheme, self.port),
            None => format!("{}://127.0.0.1:{}", self.scheme, self.port),
        }
    }

    /// Runs a command with redis-cli and returns its output (errors included, as text).
    pub fn cli(&self, args: &[&str]) -> String {
        redis_cli(&self.cli_args, args).expect("redis-cli runs")
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

/// Starts redis-server and waits until it answers; `None` if it exits or stays silent.
fn spawn_and_wait(server_args: &[String], cli_args: &[String]) -> Option<Child> {
    let mut child = Command::new("redis-server")
        .args(server_args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed (apt-get install redis-server)");
    let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        let reply = redis_cli(cli_args, &["PING"]).unwrap_or_default();
        if reply.trim() == "PONG" || reply.contains("NOAUTH") || reply.contains("LOADING") {
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn redis_cli(cli_args: &[String], args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli").args(cli_args).args(args).output().ok()?;
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
    cmd.current_dir(dir).env("REDIS_URL", url).env_remove("INTERBANK_PREFIX");
    cmd
}

/// Runs the binary and returns its output, whatever the exit code.
pub fn run(url: &str, dir: &Path, args: &[&str]) -> Output {
    interbank(url, dir).args(args).output().unwrap()
}

pub fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Runs the binary and panics with its output unless it succeeded.
pub fn ok(url: &str, dir: &Path, args: &[&str]) -> String {
    let out = run(url, dir, args);
    assert!(out.status.success(), "interbank {args:?} failed:\n{}", text(&out));
    text(&out)
}

/// The repository's copy of the seed's sample files.
pub fn seed_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed").join(name)
}

/// A work folder with generated data: `data/accounts_<n>.csv` and `data/banks.csv`.
pub fn workdir_with_accounts(url: &str, accounts: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ok(url, dir.path(), &["gen", "--accounts", &accounts.to_string(), "--seed", "7"]);
    dir
}

/// A bank name that would be markup if a page did not escape it.
pub const HOSTILE_BANK: &str = "<script>alert(1)</script>\"x";

/// A work folder like [`workdir_with_accounts`] (100 accounts) where the bank Kutxa is renamed
/// [`HOSTILE_BANK`] in the accounts and banks files.
pub fn workdir_with_hostile_bank(url: &str) -> tempfile::TempDir {
    let dir = workdir_with_accounts(url, 100);
    let quoted = format!("\"{}\"", HOSTILE_BANK.replace('"', "\"\""));
    for file in ["data/accounts_100.csv", "data/banks.csv"] {
        let path = dir.path().join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let replaced = text
            .replace(",Kutxa,", &format!(",{quoted},"))
            .replace("\nKutxa\n", &format!("\n{quoted}\n"));
        assert_ne!(text, replaced, "{file} names Kutxa");
        std::fs::write(&path, replaced).unwrap();
    }
    dir
}

/// Runs `consume` on a finished run (short idle timeout, no progress) and returns its exit code
/// and report.
pub fn consume(url: &str, dir: &Path, accounts: &str) -> (Option<i32>, String) {
    let out = run(url, dir, &["consume", "--accounts", accounts, "--quiet", "--idle-timeout", "1"]);
    (out.status.code(), text(&out))
}

/// Runs `consume` and panics with its report unless it verified.
pub fn verified(url: &str, dir: &Path, accounts: &str) -> String {
    let (code, report) = consume(url, dir, accounts);
    assert_eq!(code, Some(0), "consume did not verify:\n{report}");
    report
}

/// Runs `broker` with these flags and no progress bar, and returns its summary.
pub fn broker(url: &str, dir: &Path, flags: &[&str]) -> String {
    let mut args = vec!["broker", "--quiet"];
    args.extend_from_slice(flags);
    ok(url, dir, &args)
}

/// A fault scenario's random generator: its seed from `FAULT_SEED`, or random and printed, so a
/// failing run can be replayed.
pub fn fault_rng(scenario: &str) -> (u64, rand_chacha::ChaCha8Rng) {
    let seed =
        std::env::var("FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("{scenario}: FAULT_SEED={seed}");
    (seed, rand::SeedableRng::seed_from_u64(seed))
}

/// Starts a broker in the background, quiet, printing its summary as JSON.
pub fn spawn_broker(url: &str, dir: &std::path::Path, flags: &[&str]) -> Child {
    interbank(url, dir)
        .args(["broker", "--quiet", "--json"])
        .args(flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}
