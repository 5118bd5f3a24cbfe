//! A private `redis-server` for `interbank bench`: started on a free loopback port in a temporary
//! folder, with no persistence, and killed when dropped, so a benchmark never touches anyone
//! else's Redis and always starts from the same empty state. Also a private Redis Cluster of
//! such servers (`bench --cluster`), each its own master, joined with `redis-cli --cluster create`.

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
        PrivateRedis::start_with(&[])
    }

    /// Starts a server in cluster mode, its cluster bus on a free port of its own (the default,
    /// port + 10000, may be past 65535), not yet part of any cluster.
    pub fn start_cluster_node() -> Result<PrivateRedis> {
        let bus = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port().to_string();
        PrivateRedis::start_with(&[
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
            "--cluster-port",
            &bus,
        ])
    }

    /// Starts `redis-server` with extra `--name value` settings.
    fn start_with(extra: &[&str]) -> Result<PrivateRedis> {
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
                .args(extra)
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

/// How long a new cluster may take to agree it is whole.
const CLUSTER_READY_TIMEOUT_MS: u64 = 20_000;

/// A private Redis Cluster of masters without replicas.
pub struct PrivateCluster {
    pub nodes: Vec<PrivateRedis>,
}

impl PrivateCluster {
    /// Starts `masters` cluster nodes, joins them (`redis-cli --cluster create`, slots spread
    /// evenly) and waits until each says `cluster_state:ok`.
    pub fn start(masters: usize) -> Result<PrivateCluster> {
        let nodes =
            (0..masters).map(|_| PrivateRedis::start_cluster_node()).collect::<Result<Vec<_>>>()?;
        let addresses: Vec<String> =
            nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .arg("--cluster-yes")
            .output()
            .context("running redis-cli --cluster create: is redis-cli installed?")?;
        anyhow::ensure!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = PrivateCluster { nodes };
        let deadline = Instant::now() + Duration::from_millis(CLUSTER_READY_TIMEOUT_MS);
        while !cluster.is_whole()? {
            anyhow::ensure!(Instant::now() < deadline, "the private cluster was not whole in time");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(cluster)
    }

    /// Whether every node says the cluster is whole.
    fn is_whole(&self) -> Result<bool> {
        for node in &self.nodes {
            let out = Command::new("redis-cli")
                .args(["-p", &node.port.to_string(), "CLUSTER", "INFO"])
                .output()
                .context("running redis-cli CLUSTER INFO")?;
            if !String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok") {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
