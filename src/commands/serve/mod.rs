//! `interbank serve`: a read-only web dashboard of the data set, live, with its JSON API and
//! `/metrics` (`docs/DASHBOARD.md`). Two tasks read Redis ([`poll`]) into a shared state
//! ([`hub`]) that the HTTP handlers ([`routes`]) serve; a dead Redis is shown, never fatal.
//!
//! Safe by default: it binds a loopback address unless told otherwise, and an address that other
//! machines can reach needs `public` and a bearer token.

mod events;
mod hub;
mod poll;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, ensure};

use crate::commands::now_ms;
use crate::store::keys::Keys;
use crate::store::target::Target;

/// The fewest ms between two reads of the overview.
pub const MIN_REFRESH_MS: u64 = 200;
/// The shortest accepted token: long enough not to be guessed.
pub const MIN_TOKEN_CHARS: usize = 16;

/// What `serve` is asked to do.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub target: Target,
    pub keys: Keys,
    pub listen: SocketAddr,
    /// Allow an address other machines can reach.
    pub public: bool,
    /// The bearer token every request must carry; required with `public`.
    pub token: Option<String>,
    pub refresh_ms: u64,
}

/// Checks the configuration: a reachable address needs `public` and a token.
pub fn check(config: &ServeConfig) -> Result<()> {
    ensure!(config.refresh_ms >= MIN_REFRESH_MS, "--refresh must be at least {MIN_REFRESH_MS} ms");
    if !config.listen.ip().is_loopback() {
        ensure!(
            config.public,
            "{} can be reached from other machines: pass --public (with --token-file) to serve there, or listen on 127.0.0.1",
            config.listen
        );
        ensure!(
            config.token.is_some(),
            "--public needs --token-file: a dashboard reachable from other machines must ask for a token"
        );
    }
    if let Some(token) = &config.token {
        ensure!(
            token.chars().count() >= MIN_TOKEN_CHARS,
            "the token must have at least {MIN_TOKEN_CHARS} characters"
        );
        ensure!(
            token.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-')),
            "the token may hold letters, digits and . _ ~ - only (it travels in a cookie and an address)"
        );
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM (a service manager, a script's clean-up): the server then
/// stops taking connections and ends with exit code 0.
async fn stopped() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// Binds, tells `on_ready` the address it listens on, and serves until Ctrl-C or SIGTERM.
pub async fn serve(config: ServeConfig, on_ready: impl FnOnce(SocketAddr)) -> Result<()> {
    check(&config)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr().context("reading the address listened on")?;
    let hub = Arc::new(hub::Hub::new(now_ms()));
    let readers = [
        tokio::spawn(poll::overview_loop(
            Arc::clone(&hub),
            config.target.clone(),
            config.keys.clone(),
            config.refresh_ms,
        )),
        tokio::spawn(poll::follow_loop(
            Arc::clone(&hub),
            config.target.clone(),
            config.keys.clone(),
            config.refresh_ms,
        )),
    ];
    let app = Arc::new(routes::App {
        hub,
        keys: config.keys.clone(),
        events_conn: tokio::sync::Mutex::new(None),
        target: config.target.clone(),
        token: config.token.clone(),
        listen: address,
    });
    on_ready(address);
    let served = axum::serve(listener, routes::router(app))
        .with_graceful_shutdown(stopped())
        .await
        .context("serving the dashboard");
    for reader in readers {
        reader.abort();
    }
    served
}
