//! Connecting to Redis, with timeouts, and [`Connection`]: the one type every command reaches
//! Redis through, whatever runs behind it: a single server (over TCP, TLS or a unix socket) or a
//! Redis Cluster. Which one is found by asking the server named in the URL (`INFO cluster`), so
//! the same URL flag serves both. Code that sends single-slot commands through a `Connection`
//! does not care which; what must differ (scanning every master) asks [`Connection::masters`].

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, Value};

use crate::store::target::Target;

/// How long to wait for a TCP (and TLS) connection before saying Redis is unreachable.
pub const CONNECT_TIMEOUT_MS: u64 = 2_000;
/// How long to wait for any single reply before treating the connection as broken.
pub const RESPONSE_TIMEOUT_MS: u64 = 10_000;

/// A connection to the store, shared by many tasks (clone it: clones share one link).
#[derive(Clone)]
pub enum Connection {
    /// One Redis server: a self-healing multiplexed connection. Commands of many tasks are
    /// pipelined on it, and it reconnects after a failure; a command that failed is not resent by
    /// it, the caller decides what is safe to send again.
    Single(ConnectionManager),
    /// A Redis Cluster: redis-rs routes each command by its key's slot, follows `MOVED` and
    /// `ASK`, and learns the new topology after a failover. Every command or pipeline sent
    /// through it must touch one slot.
    Cluster {
        conn: ClusterConnection,
        /// The host of the URL the cluster was reached through: a node that has never met
        /// another (a one-node cluster) names no host of its own in `CLUSTER NODES`.
        entry_host: String,
    },
}

/// One server of the store that holds data: the only one, or one master of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Server {
    Only,
    Master { host: String, port: u16 },
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Server::Only => f.write_str("the server"),
            Server::Master { host, port } => write!(f, "the master at {host}:{port}"),
        }
    }
}

impl Connection {
    /// Connects to the Redis at `target`, checks it answers, and finds whether it is a member of
    /// a cluster (then connects to the cluster through it).
    pub async fn open(target: &Target) -> Result<Connection> {
        let mut single = manager(target).await?;
        let info = redis::cmd("INFO").arg("cluster").query_async::<String>(&mut single).await;
        let cluster_enabled = match info {
            Ok(info) => info.lines().any(|line| line.trim() == "cluster_enabled:1"),
            // A user allowed only what one server needs (no INFO) is on one server: a cluster
            // user needs INFO, and the README's ACL rules for a cluster grant it.
            Err(err) if err.code() == Some("NOPERM") => false,
            Err(err) => return Err(explain(target, err)),
        };
        if !cluster_enabled {
            return Ok(Connection::Single(single));
        }
        let client = target.cluster_client()?;
        let entry_host = match client_host(target)? {
            Some(host) => host,
            None => bail!("{target} is a Redis Cluster node: reach it over TCP, not a unix socket"),
        };
        let connect = client.get_async_connection();
        let cluster = tokio::time::timeout(Duration::from_millis(3 * CONNECT_TIMEOUT_MS), connect)
            .await
            .map_err(|_| anyhow!("cannot connect to the Redis Cluster of {target}: no answer"))?
            .map_err(|e| explain(target, e))?;
        Ok(Connection::Cluster { conn: cluster, entry_host })
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Connection::Cluster { .. })
    }

    /// The servers that hold data: the one server, or every master of the cluster now.
    pub async fn masters(&mut self) -> Result<Vec<Server>> {
        match self {
            Connection::Single(_) => Ok(vec![Server::Only]),
            Connection::Cluster { conn, entry_host } => {
                let nodes: String = redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async(conn)
                    .await
                    .context("asking the cluster for its nodes (CLUSTER NODES)")?;
                parse_masters(&nodes, entry_host)
            }
        }
    }

    /// On a cluster, which master serves each range of slots now (`CLUSTER SLOTS`): `(first
    /// slot, last slot, "host:port")`; nothing on a single server.
    pub async fn slot_owners(&mut self) -> Result<Vec<(u16, u16, String)>> {
        let Connection::Cluster { conn, entry_host } = self else { return Ok(Vec::new()) };
        let reply: redis::Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(conn)
            .await
            .context("asking the cluster which node serves which slots (CLUSTER SLOTS)")?;
        parse_slot_owners(&reply, entry_host)
    }

    /// Sends `cmd` to one server (a command that is not routed by a key, such as `SCAN`).
    pub async fn query_on<T: redis::FromRedisValue>(
        &mut self,
        server: &Server,
        cmd: &Cmd,
    ) -> redis::RedisResult<T> {
        match (self, server) {
            (Connection::Cluster { conn, .. }, Server::Master { host, port }) => {
                let node = SingleNodeRoutingInfo::ByAddress { host: host.clone(), port: *port };
                let value = conn.route_command(cmd.clone(), RoutingInfo::SingleNode(node)).await?;
                Ok(redis::from_redis_value(value)?)
            }
            (conn, _) => cmd.query_async(conn).await,
        }
    }
}

/// `CLUSTER SLOTS`' reply: per range, its first and last slot and its master's `host:port` (a
/// node that names no host of its own is reached through `entry_host`).
fn parse_slot_owners(reply: &Value, entry_host: &str) -> Result<Vec<(u16, u16, String)>> {
    let Value::Array(ranges) = reply else { bail!("CLUSTER SLOTS answered {reply:?}") };
    let mut owners = Vec::with_capacity(ranges.len());
    for range in ranges {
        let Value::Array(fields) = range else { bail!("CLUSTER SLOTS answered a range {range:?}") };
        let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(master))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            bail!("CLUSTER SLOTS answered a range {range:?}");
        };
        let host = match master.first() {
            Some(Value::BulkString(host)) if !host.is_empty() => {
                String::from_utf8_lossy(host).into_owned()
            }
            _ => entry_host.to_string(),
        };
        let Some(Value::Int(port)) = master.get(1) else {
            bail!("CLUSTER SLOTS answered a master {master:?}")
        };
        owners.push((u16::try_from(*first)?, u16::try_from(*last)?, format!("{host}:{port}")));
    }
    Ok(owners)
}

/// The host of a target's URL, `None` for a unix socket.
fn client_host(target: &Target) -> Result<Option<String>> {
    Ok(match target.client()?.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(host, _) | redis::ConnectionAddr::TcpTls { host, .. } => {
            Some(host.clone())
        }
        _ => None,
    })
}

/// The masters in a `CLUSTER NODES` reply that serve slots and are not failing:
/// `<id> <host:port@bus[,hostname]> <flags> <master id> <ping> <pong> <epoch> <link> <slots...>`.
/// A node with no host of its own yet is at `entry_host`.
fn parse_masters(nodes: &str, entry_host: &str) -> Result<Vec<Server>> {
    let mut masters = Vec::new();
    for line in nodes.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(address), Some(flags)) = (fields.get(1), fields.get(2)) else {
            anyhow::bail!("CLUSTER NODES has a line of {} fields: {line:?}", fields.len());
        };
        let flags: Vec<&str> = flags.split(',').collect();
        let serving = fields.len() > 8 && flags.contains(&"master");
        if !serving || flags.iter().any(|f| matches!(*f, "fail" | "fail?" | "noaddr" | "handshake"))
        {
            continue;
        }
        let host_port = address.split(['@', ',']).next().unwrap_or_default();
        let (host, port) = host_port
            .rsplit_once(':')
            .and_then(|(host, port)| {
                let host = if host.is_empty() { entry_host } else { host };
                Some((host.to_string(), port.parse().ok()?))
            })
            .with_context(|| format!("CLUSTER NODES names a node at {address:?}"))?;
        masters.push(Server::Master { host, port });
    }
    anyhow::ensure!(!masters.is_empty(), "the cluster has no master serving slots");
    Ok(masters)
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(conn) => conn.req_packed_command(cmd),
            Connection::Cluster { conn, .. } => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Connection::Cluster { conn, .. } => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(conn) => conn.get_db(),
            Connection::Cluster { conn, .. } => conn.get_db(),
        }
    }
}

/// Why a connection failed, with what to do about it; the password never shows.
fn explain(target: &Target, err: redis::RedisError) -> anyhow::Error {
    let hint = if is_certificate_error(&err) {
        "for a server with a private CA, pass its certificate with --tls-ca-cert (REDIS_TLS_CA_CERT)"
    } else if err.is_connection_refusal() || err.is_timeout() || err.is_io_error() {
        "is redis-server running there? Set REDIS_URL or --redis-url to point at it"
    } else if matches!(err.kind(), redis::ErrorKind::AuthenticationFailed)
        || err.code() == Some("WRONGPASS")
    {
        "check the user name and password in the URL"
    } else {
        "check the URL and the server"
    };
    let text = target.scrub(&err.to_string());
    anyhow!("cannot connect to Redis at {target}: {text} ({hint})")
}

/// Whether TLS refused the server's certificate: the handshake's `std::io::Error` carries a
/// `rustls` certificate error. redis-rs keeps that `io::Error` behind an `Arc` which it gives as
/// the error's source, so the chain is followed by type: `Arc`, `io::Error`, `rustls::Error`.
fn is_certificate_error(err: &redis::RedisError) -> bool {
    use std::error::Error;
    type Shared = std::sync::Arc<dyn Error + Send + Sync>;
    let io = std::error::Error::source(err)
        .and_then(|cause| cause.downcast_ref::<Shared>())
        .and_then(|shared| shared.downcast_ref::<std::io::Error>());
    let tls = io.and_then(std::io::Error::get_ref).and_then(|e| e.downcast_ref::<rustls::Error>());
    matches!(tls, Some(rustls::Error::InvalidCertificate(_)))
}

/// A self-healing multiplexed connection to one server (see [`Connection::Single`]).
pub async fn manager(target: &Target) -> Result<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(CONNECT_TIMEOUT_MS)))
        .set_response_timeout(Some(Duration::from_millis(RESPONSE_TIMEOUT_MS)))
        .set_number_of_retries(2);
    let connect = ConnectionManager::new_with_config(target.client()?, config);
    let mut conn = tokio::time::timeout(Duration::from_millis(3 * CONNECT_TIMEOUT_MS), connect)
        .await
        .map_err(|_| {
            anyhow!(
                "cannot connect to Redis at {target}: no answer within {} ms",
                3 * CONNECT_TIMEOUT_MS
            )
        })?
        .map_err(|e| explain(target, e))?;
    ping(target, &mut conn).await?;
    Ok(conn)
}

/// A plain multiplexed connection, for one task that needs its own (WATCH is per connection).
pub async fn dedicated(target: &Target) -> Result<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(CONNECT_TIMEOUT_MS)))
        .set_response_timeout(Some(Duration::from_millis(RESPONSE_TIMEOUT_MS)));
    let mut conn = target
        .client()?
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| explain(target, e))?;
    ping(target, &mut conn).await?;
    Ok(conn)
}

async fn ping(target: &Target, conn: &mut impl ConnectionLike) -> Result<()> {
    redis::cmd("PING")
        .query_async::<String>(conn)
        .await
        .map_err(|e| explain(target, e))
        .with_context(|| format!("Redis at {target} did not answer PING"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masters_serving_slots_are_read_from_cluster_nodes() {
        let nodes = "\
a1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:30002@40002,node-b master - 0 1700000000000 2 connected 5461-10922
c3 127.0.0.1:30003@40003 master,fail - 0 1700000000000 3 disconnected 10923-16383
d4 127.0.0.1:30004@40004 slave a1 0 1700000000000 1 connected
e5 127.0.0.1:30005@40005 master - 0 1700000000000 5 connected
";
        let master = |port| Server::Master { host: "127.0.0.1".into(), port };
        assert_eq!(parse_masters(nodes, "h").unwrap(), vec![master(30001), master(30002)]);
        let alone = "a1 :30001@40001 myself,master - 0 0 0 connected 0-16383";
        let at_entry = Server::Master { host: "h".into(), port: 30001 };
        assert_eq!(parse_masters(alone, "h").unwrap(), vec![at_entry]);
        assert!(parse_masters("", "h").is_err());
        assert!(parse_masters("x 127.0.0.1:notaport@1 master - 0 0 1 connected 0-1", "h").is_err());
    }
}
