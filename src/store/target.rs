//! Where Redis is: a URL (from `REDIS_URL` or `--redis-url`) and, for TLS, certificate files; and
//! URLs and messages with their passwords hidden before they are ever printed.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::{Client, TlsCertificates};

use crate::store::connection::{CONNECT_TIMEOUT_MS, RESPONSE_TIMEOUT_MS};

/// The seed's server.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

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
        let client = match self.tls_certificates()? {
            None => Client::open(self.url.as_str()),
            Some(certificates) => Client::build_with_tls(self.url.as_str(), certificates),
        };
        client.map_err(|e| self.bad_url(e))
    }

    /// A client for a Redis Cluster that this target's server belongs to: the server is the
    /// first node asked for the others; the credentials and TLS files serve for every node.
    pub fn cluster_client(&self) -> Result<ClusterClient> {
        let info = self.client()?.get_connection_info().clone();
        let mut builder = ClusterClientBuilder::new([info])
            .connection_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
            .response_timeout(Duration::from_millis(RESPONSE_TIMEOUT_MS));
        if let Some(certificates) = self.tls_certificates()? {
            builder = builder.certs(certificates);
        }
        builder.build().map_err(|e| self.bad_url(e))
    }

    /// The TLS files' contents, when any is given.
    fn tls_certificates(&self) -> Result<Option<TlsCertificates>> {
        // rustls needs one process-wide crypto provider; a second install is refused harmlessly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let TlsFiles { ca_cert, client_cert, client_key } = &self.tls;
        if ca_cert.is_none() && client_cert.is_none() && client_key.is_none() {
            return Ok(None);
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
        Ok(Some(TlsCertificates { client_tls, root_cert }))
    }

    fn bad_url(&self, err: redis::RedisError) -> anyhow::Error {
        anyhow!(
            "{} is not a usable Redis URL: {}. Expected redis://[user:password@]host:port[/db], \
             rediss:// for TLS or unix:///path",
            self.redacted(),
            self.scrub(&err.to_string())
        )
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
    fn half_a_client_certificate_is_refused() {
        let tls = TlsFiles { client_cert: Some("c.pem".into()), ..TlsFiles::default() };
        let err = Target::with_tls("rediss://host:1", tls).client().unwrap_err().to_string();
        assert!(err.contains("--tls-cert and --tls-key go together"), "{err}");
    }
}
