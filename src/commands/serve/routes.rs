//! The dashboard's HTTP endpoints (`docs/DASHBOARD.md`): the page and its assets, embedded in the
//! binary; `/api/state`, `/api/stream` (Server-Sent Events), `/api/events` and `/metrics`. Only
//! `GET` (and `HEAD`); nothing here writes to Redis. With a token, every request must carry it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use futures_util::Stream;

use super::events::{self, EventsQuery};
use super::hub::Hub;
use crate::store::connection::Connection;
use crate::store::keys::Keys;
use crate::view::metrics;

const INDEX_HTML: &str = include_str!("../../../assets/dashboard/index.html");
const APP_JS: &str = include_str!("../../../assets/dashboard/app.js");
const STYLE_CSS: &str = include_str!("../../../assets/dashboard/style.css");
/// The cookie a browser keeps the token in, once `/?token=` gave it.
const TOKEN_COOKIE: &str = "interbank_token";
/// How long a page of events may take, waiting for the connection included.
const EVENTS_TIMEOUT_MS: u64 = 5_000;
/// The shortest time between two events of one stream.
const MIN_EVENT_INTERVAL_MS: u64 = 250;
/// How often an idle event stream sends a comment, so proxies keep it open.
const KEEP_ALIVE_MS: u64 = 15_000;

/// What every handler shares.
pub struct App {
    pub hub: Arc<Hub>,
    pub keys: Keys,
    /// A connection for `/api/events` (opened on first use, read-only).
    pub events_conn: tokio::sync::Mutex<Option<Connection>>,
    pub target: crate::store::target::Target,
    pub token: Option<String>,
    /// The address listened on (a `Host` naming it is this machine).
    pub listen: std::net::SocketAddr,
}

/// Every route, behind the token check and the security headers.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/assets/style.css", get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/api/state", get(state))
        .route("/api/stream", get(stream))
        .route("/api/events", get(events))
        .route("/metrics", get(metrics_text))
        .layer(middleware::from_fn_with_state(Arc::clone(&app), guard))
        .with_state(app)
}

/// Refuses a request without the token (when there is one), and adds the headers that keep the
/// page from being framed, sniffed or fed foreign scripts.
async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let mut response = admit(&app, request, next).await;
    let headers = response.headers_mut();
    let fixed = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The request's answer, or why it is refused: without the token (when there is one), or,
/// without a token, a `Host` that is not this machine's (a page elsewhere that had its name
/// point here, DNS rebinding, must not read the data).
async fn admit(app: &App, request: Request, next: Next) -> Response {
    match &app.token {
        Some(token) if !carries(request.headers(), token) => {
            let given = request.uri().query().and_then(query_token);
            if request.uri().path() == "/" && given.as_deref().is_some_and(|g| same(g, token)) {
                return with_cookie(token);
            }
            let why = "a bearer token is required: open /?token=<token> or send Authorization: Bearer <token>\n";
            (StatusCode::UNAUTHORIZED, why).into_response()
        }
        None if !local_host(request.headers(), app.listen) => (
            StatusCode::FORBIDDEN,
            "this dashboard answers requests for 127.0.0.1 or localhost only\n",
        )
            .into_response(),
        _ => next.run(request).await,
    }
}

/// Whether the request's `Host` names this machine: `localhost`, a loopback address, or the
/// address listened on.
fn local_host(headers: &HeaderMap, listen: std::net::SocketAddr) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else { return false };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback() || ip == listen.ip())
}

fn carries(headers: &HeaderMap, token: &str) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| same(given, token));
    let cookie = headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(name, value)| name == TOKEN_COOKIE && same(value, token))
    });
    bearer || cookie
}

fn query_token(query: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| v.to_string())
}

/// Compares in time independent of where the texts differ.
fn same(given: &str, token: &str) -> bool {
    let (a, b) = (given.as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// Keeps the token in a cookie and sends the browser to `/`, so it leaves the address bar.
fn with_cookie(token: &str) -> Response {
    let mut response = Redirect::to("/").into_response();
    let cookie = format!("{TOKEN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body)
        .into_response()
}

fn json(value: &impl serde::Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => (
            [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")],
            body,
        )
            .into_response(),
        Err(err) => {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot serialize: {err}")).into_response()
        }
    }
}

async fn state(State(app): State<Arc<App>>) -> Response {
    json(&app.hub.snapshot())
}

/// The state at once, then at every change (at most one event per change; a slow reader gets
/// the newest). A reconnecting browser sends `Last-Event-ID` and, with the state at once, has
/// missed nothing: each event carries the whole state.
async fn stream(State(app): State<Arc<App>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = app.hub.subscribe();
    let updates = futures_util::stream::unfold(
        (app, receiver, true),
        |(app, mut receiver, first)| async move {
            if !first {
                // At most one event per interval: a fast follower changes the state far more often
                // than a person can read it, and each event carries the whole state.
                tokio::time::sleep(Duration::from_millis(MIN_EVENT_INTERVAL_MS)).await;
                if receiver.changed().await.is_err() {
                    return None;
                }
            }
            receiver.borrow_and_update();
            let state = app.hub.snapshot();
            let event = Event::default()
                .event("state")
                .id(state.seq.to_string())
                .json_data(&state)
                .unwrap_or_else(|_| Event::default().comment("unserializable"));
            Some((Ok(event), (app, receiver, false)))
        },
    );
    Sse::new(updates).keep_alive(KeepAlive::new().interval(Duration::from_millis(KEEP_ALIVE_MS)))
}

async fn events(State(app): State<Arc<App>>, Query(query): Query<EventsQuery>) -> Response {
    let page =
        tokio::time::timeout(Duration::from_millis(EVENTS_TIMEOUT_MS), events_page(&app, &query));
    match page.await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Redis did not answer within {EVENTS_TIMEOUT_MS} ms\n"),
        )
            .into_response(),
    }
}

/// One page of events, on the one connection kept for them (requests wait their turn, within
/// [`EVENTS_TIMEOUT_MS`]).
async fn events_page(app: &App, query: &EventsQuery) -> Response {
    let mut slot = app.events_conn.lock().await;
    if slot.is_none() {
        match Connection::open(&app.target).await {
            Ok(conn) => *slot = Some(conn),
            Err(err) => {
                return (StatusCode::SERVICE_UNAVAILABLE, format!("{err:#}")).into_response();
            }
        }
    }
    let conn = slot.as_mut().expect("just opened");
    match events::page(conn, &app.keys, query).await {
        Ok(page) => json(&page),
        Err(events::PageError::Bad(why)) => (StatusCode::BAD_REQUEST, why).into_response(),
        Err(events::PageError::Redis(err)) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("{err:#}")).into_response()
        }
    }
}

async fn metrics_text(State(app): State<Arc<App>>) -> Response {
    let state = app.hub.snapshot();
    let body = metrics::render(state.overview.as_ref(), &state.live, state.redis.ok);
    (
        [
            (header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abd", "abc"));
        assert!(!same("ab", "abc"));
        assert_eq!(query_token("a=1&token=xyz"), Some("xyz".to_string()));
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("x=1; interbank_token=s3cret"));
        assert!(carries(&headers, "s3cret"));
        assert!(!carries(&headers, "other"));
    }
}
