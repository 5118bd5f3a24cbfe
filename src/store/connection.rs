//! Connecting to Redis, with timeouts, and [`Connection`]: the one type every command reaches
//! Redis through, whatever runs behind it. Today that is a single server (over TCP, TLS or a unix
//! socket); Redis Cluster becomes a second variant of the enum, and the code that sends commands
//! through a `Connection` does not change.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
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
}

impl Connection {
    /// Connects to the Redis at `target` and checks it answers.
    pub async fn open(target: &Target) -> Result<Connection> {
        Ok(Connection::Single(manager(target).await?))
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(conn) => conn.req_packed_command(cmd),
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
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(conn) => conn.get_db(),
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
