//! Connecting to Redis: URLs from `REDIS_URL` or `--redis-url`, TLS, timeouts, and URLs with
//! their passwords hidden before they are ever printed.

use std::fmt;
use std::path::PathBuf;
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

/// PEM files for `rediss://`: a CA to trust instead of the system's, and a client certificate
/// and key for servers that require them (`tls-auth-clients yes`).
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    pub ca_cert: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// Where Redis is: a URL and, for TLS, the certificate files. Prints without the password.
#[derive(Clone)]
pub struct Target {
    url: String,
    tls: TlsFiles,
}

impl Target {
    pub fn new(url: &str) -> Target {
        Target { url: url.to_string(), tls: TlsFiles::default() }
    }

    pub fn with_tls(url: &str, tls: TlsFiles) -> Target {
        Target { url: url.to_string(), tls }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL as it may be shown: password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact(&self.url)
    }

    /// Any text (an error message, say) with this target's URL and password hidden.
    pub fn scrub(&self, text: &str) -> String {
        let mut text = text.replace(&self.url, &self.redacted());
        if let Some(password) = password_of(&self.url).filter(|p| !p.is_empty()) {
            text = text.replace(password, "***");
        }
        text
    }

    /// A Redis client for this target. The error never shows the password.
    pub fn client(&self) -> Result<Client> {
        // rustls needs one process-wide crypto provider; a second install is refused harmlessly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let bad_url = |e: redis::RedisError| {
            anyhow!(
                "{} is not a usable Redis URL: {}. Expected redis://[user:password@]host:port[/db], \
                 rediss:// for TLS or unix:///path",
                self.redacted(),
                self.scrub(&e.to_string())
            )
        };
        let TlsFiles { ca_cert, client_cert, client_key } = &self.tls;
        if ca_cert.is_none() && client_cert.is_none() && client_key.is_none() {
            return Client::open(self.url.as_str()).map_err(bad_url);
        }
        let read = |path: &PathBuf, what: &str| {
            std::fs::read(path)
                .with_context(|| format!("cannot read the {what} {}", path.display()))
        };
        let client_tls = match (client_cert, client_key) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: read(cert, "TLS client certificate")?,
                client_key: read(key, "TLS client key")?,
            }),
            (None, None) => None,
            _ => anyhow::bail!("--tls-cert and --tls-key go together: give both or neither"),
        };
        let root_cert =
            ca_cert.as_ref().map(|path| read(path, "TLS CA certificate")).transpose()?;
        Client::build_with_tls(self.url.as_str(), redis::TlsCertificates { client_tls, root_cert })
            .map_err(bad_url)
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target").field("url", &self.redacted()).field("tls", &self.tls).finish()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The password of a URL, if it has one.
fn password_of(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    Some(userinfo.split_once(':').map_or(userinfo, |(_, password)| password))
}

fn explain(target: &Target, err: redis::RedisError) -> anyhow::Error {
    let shown = target.redacted();
    let text = target.scrub(&err.to_string());
    let hint = if text.contains("certificate") || text.contains("Certificate") {
        "for a server with a private CA, pass its certificate with --tls-ca-cert (REDIS_TLS_CA_CERT)"
    } else if err.is_connection_refusal() || err.is_timeout() || err.is_io_error() {
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

async fn ping(target: &Target, conn: &mut impl redis::aio::ConnectionLike) -> Result<()> {
    redis::cmd("PING")
        .query_async::<String>(conn)
        .await
        .map_err(|e| explain(target, e))
        .with_context(|| format!("Redis at {target} did not answer PING"))?;
    Ok(())
}

/// How many times an idempotent request is sent again after transient errors before giving up:
/// with [`backoff_ms`], about 25 s, enough for a Redis restart.
pub const RETRY_LIMIT: u32 = 30;

/// Exponential backoff with a cap: 20, 40, 80... up to 1,000 ms for attempt 1, 2, 3...
pub fn backoff_ms(attempt: u32) -> u64 {
    const BASE_MS: u64 = 10;
    const CAP_MS: u64 = 1_000;
    BASE_MS.saturating_mul(1 << attempt.min(16)).min(CAP_MS)
}

/// Sends a request again after each transient error, at most [`RETRY_LIMIT`] times.
async fn retrying<T>(
    mut send: impl AsyncFnMut() -> redis::RedisResult<T>,
) -> redis::RedisResult<T> {
    let mut attempt = 0;
    loop {
        match send().await {
            Err(err) if is_transient(&err) && attempt < RETRY_LIMIT => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(backoff_ms(attempt))).await;
            }
            result => return result,
        }
    }
}

/// Sends a command that is safe to repeat (a read, or a write that sets what it sets), again
/// after a transient error, at most [`RETRY_LIMIT`] times.
pub async fn query_retrying<T: redis::FromRedisValue>(
    conn: &mut impl redis::aio::ConnectionLike,
    cmd: &redis::Cmd,
) -> redis::RedisResult<T> {
    retrying(async || cmd.query_async(conn).await).await
}

/// [`query_retrying`] for a pipeline of commands that are all safe to repeat.
pub async fn pipe_retrying<T: redis::FromRedisValue>(
    conn: &mut impl redis::aio::ConnectionLike,
    pipe: &redis::Pipeline,
) -> redis::RedisResult<T> {
    retrying(async || pipe.query_async(conn).await).await
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
        assert_eq!(redact("rediss://alice:s3cret@host:1"), "rediss://alice:***@host:1");
        assert_eq!(redact("redis://s3cret@host"), "redis://***@host");
        assert_eq!(redact("redis://alice:p@ss@host/2"), "redis://alice:***@host/2");
        assert_eq!(redact("unix:///tmp/redis.sock"), "unix:///tmp/redis.sock");
    }

    #[test]
    fn a_bad_url_is_explained_without_its_password() {
        let err = Target::new("http://bob:hunter2@host").client().unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("rediss://"), "{err}");
        let target = Target::new("redis://bob:hunter2@host:1");
        assert_eq!(format!("{target} {target:?}").matches("hunter2").count(), 0);
        assert_eq!(target.scrub("auth hunter2 failed"), "auth *** failed");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff_ms(1), 20);
        assert_eq!(backoff_ms(3), 80);
        assert_eq!(backoff_ms(30), 1_000);
    }

    #[test]
    fn half_a_client_certificate_is_refused() {
        let tls = TlsFiles { client_cert: Some("c.pem".into()), ..TlsFiles::default() };
        let err = Target::with_tls("rediss://host:1", tls).client().unwrap_err().to_string();
        assert!(err.contains("--tls-cert and --tls-key go together"), "{err}");
    }
}
