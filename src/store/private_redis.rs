//! A private `redis-server` for `interbank bench`: started on a free loopback port in a temporary
//! folder, with no persistence, and killed when dropped, so a benchmark never touches anyone
//! else's Redis and always starts from the same empty state.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long the server may take to answer after it was started.
const START_TIMEOUT_MS: u64 = 10_000;
/// How many free ports to try when one is taken between choosing it and binding it.
const START_ATTEMPTS: u32 = 5;

pub struct PrivateRedis {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl PrivateRedis {
    /// Starts `redis-server` (found on the PATH) on a free port of 127.0.0.1.
    pub fn start() -> Result<PrivateRedis> {
        let dir = tempfile::tempdir().context("creating a folder for the private redis-server")?;
        for _ in 0..START_ATTEMPTS {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
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
                .args(["--dir", &dir.path().display().to_string(), "--logfile", "redis.log"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context(
                    "starting redis-server: is it installed? (apt-get install redis-server)",
                )?;
            let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
            while Instant::now() < deadline {
                if child.try_wait()?.is_some() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Ok(PrivateRedis { child, port, _dir: dir });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        bail!("could not start a private redis-server after {START_ATTEMPTS} attempts")
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's process id, for reading its CPU time.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
