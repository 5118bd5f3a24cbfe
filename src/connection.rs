//! Connecting to Redis: URLs from `REDIS_URL` or `--redis-url`, TLS, timeouts, and URLs with
//! their passwords hidden before they are ever printed.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client};

/// The seed's server.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// How long to wait for a TCP (and TLS) connection before saying Redis is unreachable.
pub const CONNECT_TIMEOUT_MS: u64 = 2_000;
/// How long to wait for any single reply before treating the connection as broken.
pub const RESPONSE_TIMEOUT_MS: u64 = 10_000;

/// The URL with any password replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    let redacted = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None if userinfo.is_empty() => String::new(),
        None => "***".to_string(),
    };
    format!("{}://{redacted}{}", &url[..scheme_end], &rest[at..])
}

/// A Redis client for `url`. The error never shows the password.
pub fn client(url: &str) -> Result<Client> {
    // rustls needs one process-wide crypto provider; a second install is refused harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::open(url).map_err(|e| {
        anyhow!(
            "{} is not a usable Redis URL: {}. Expected redis://[user:password@]host:port[/db] or rediss:// for TLS",
            redact(url),
            e.to_string().replace(url, &redact(url))
        )
    })
}

fn explain(url: &str, err: redis::RedisError) -> anyhow::Error {
    let shown = redact(url);
    let text = err.to_string().replace(url, &shown);
    let hint = if err.is_connection_refusal() || err.is_timeout() || err.is_io_error() {
        "is redis-server running there? Set REDIS_URL or --redis-url to point at it"
    } else if matches!(err.kind(), redis::ErrorKind::AuthenticationFailed)
        || text.contains("WRONGPASS")
    {
        "check the user name and password in the URL"
    } else {
        "check the URL and the server"
    };
    anyhow!("cannot connect to Redis at {shown}: {text} ({hint})")
}

/// A self-healing multiplexed connection: many tasks share it, and it reconnects after a
/// failure. Commands that failed are not resent by it: the caller decides what is safe to retry.
pub async fn manager(url: &str) -> Result<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(CONNECT_TIMEOUT_MS)))
        .set_response_timeout(Some(Duration::from_millis(RESPONSE_TIMEOUT_MS)))
        .set_number_of_retries(2);
    let connect = ConnectionManager::new_with_config(client(url)?, config);
    let mut conn = tokio::time::timeout(Duration::from_millis(3 * CONNECT_TIMEOUT_MS), connect)
        .await
        .map_err(|_| {
            anyhow!(
                "cannot connect to Redis at {}: no answer within {} ms",
                redact(url),
                3 * CONNECT_TIMEOUT_MS
            )
        })?
        .map_err(|e| explain(url, e))?;
    ping(url, &mut conn).await?;
    Ok(conn)
}

/// A plain multiplexed connection, for one task that needs its own (WATCH is per connection).
pub async fn dedicated(url: &str) -> Result<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(CONNECT_TIMEOUT_MS)))
        .set_response_timeout(Some(Duration::from_millis(RESPONSE_TIMEOUT_MS)));
    let mut conn = client(url)?
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| explain(url, e))?;
    ping(url, &mut conn).await?;
    Ok(conn)
}

async fn ping(url: &str, conn: &mut impl redis::aio::ConnectionLike) -> Result<()> {
    redis::cmd("PING")
        .query_async::<String>(conn)
        .await
        .map_err(|e| explain(url, e))
        .with_context(|| format!("Redis at {} did not answer PING", redact(url)))?;
    Ok(())
}

/// Whether a failed request may be sent again after a pause: the connection broke or timed out,
/// or the server is busy, loading or read-only for a moment. Safe only for idempotent requests.
pub fn is_transient(err: &redis::RedisError) -> bool {
    if err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
    {
        return true;
    }
    matches!(
        err.code(),
        Some("BUSY" | "LOADING" | "TRYAGAIN" | "MASTERDOWN" | "READONLY" | "CLUSTERDOWN")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact("redis://:s3cret@host:1/0"), "redis://:***@host:1/0");
        assert_eq!(
            redact("rediss://alice:s3cret@host:1"),
            "rediss://alice:***@host:1"
        );
        assert_eq!(redact("redis://s3cret@host"), "redis://***@host");
        assert_eq!(
            redact("redis://alice:p@ss@host/2"),
            "redis://alice:***@host/2"
        );
        assert_eq!(redact("unix:///tmp/redis.sock"), "unix:///tmp/redis.sock");
    }

    #[test]
    fn a_bad_url_is_explained_without_its_password() {
        let err = client("http://bob:hunter2@host").unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("rediss://"), "{err}");
    }
}
