//! Retrying what is safe to send again: a bound on the attempts, a backoff between them, and which
//! failures are worth another attempt.

use std::time::Duration;

use crate::store::error::CallError;

/// How many times an idempotent request is sent again after transient errors before giving up:
/// with [`backoff_ms`], about 25 s, enough for a Redis restart.
pub const RETRY_LIMIT: u32 = 30;

/// Exponential backoff with a cap: 20, 40, 80... up to 1,000 ms for attempt 1, 2, 3...
pub fn backoff_ms(attempt: u32) -> u64 {
    const BASE_MS: u64 = 10;
    const CAP_MS: u64 = 1_000;
    BASE_MS.saturating_mul(1 << attempt.min(16)).min(CAP_MS)
}

/// An error that may go away if the same request is sent again after a pause.
pub trait Transient {
    fn is_transient(&self) -> bool;
}

impl Transient for redis::RedisError {
    fn is_transient(&self) -> bool {
        is_transient(self)
    }
}

impl Transient for CallError {
    fn is_transient(&self) -> bool {
        matches!(self, CallError::Transient(_))
    }
}

/// The retry policy as a loop around one expression: up to [`RETRY_LIMIT`] more tries after a
/// transient error, [`backoff_ms`] apart. A loop, not a closure, so that a future built with it
/// stays `Send` (spawned tasks, such as the dashboard's readers).
macro_rules! retry_loop {
    ($send:expr) => {{
        let mut attempt = 0;
        loop {
            match $send.await {
                Err(err) if Transient::is_transient(&err) && attempt < RETRY_LIMIT => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(backoff_ms(attempt))).await;
                }
                result => break result,
            }
        }
    }};
}

/// Sends a request that is safe to repeat, again after each transient error, at most
/// [`RETRY_LIMIT`] times with [`backoff_ms`] between. (Its future is not `Send`, an async closure
/// being what it is: a spawned task retries with a loop of its own.)
pub async fn retrying<T, E: Transient>(
    mut send: impl AsyncFnMut() -> Result<T, E>,
) -> Result<T, E> {
    retry_loop!(send())
}

/// Sends a command that is safe to repeat (a read, or a write that sets what it sets), again
/// after a transient error, at most [`RETRY_LIMIT`] times.
pub async fn query_retrying<T: redis::FromRedisValue>(
    conn: &mut impl redis::aio::ConnectionLike,
    cmd: &redis::Cmd,
) -> redis::RedisResult<T> {
    retry_loop!(cmd.query_async(conn))
}

/// [`query_retrying`] for a pipeline of commands that are all safe to repeat.
pub async fn pipe_retrying<T: redis::FromRedisValue>(
    conn: &mut impl redis::aio::ConnectionLike,
    pipe: &redis::Pipeline,
) -> redis::RedisResult<T> {
    retry_loop!(pipe.query_async(conn))
}

/// The error codes of a server that is busy, loading, read-only or changing roles for a moment.
/// `UNBLOCKED` is what a blocked command (`WAIT`, a blocking `XREAD`) gets when its master is
/// turned into a replica mid-wait: a failover.
const TRANSIENT_CODES: [&str; 7] =
    ["BUSY", "LOADING", "TRYAGAIN", "MASTERDOWN", "READONLY", "CLUSTERDOWN", "UNBLOCKED"];

/// Whether a failed request may be sent again after a pause: the connection broke or timed out,
/// or the server is busy, loading, read-only or changing roles for a moment. A failed pipeline
/// is, when every command of it that failed is. Safe only for idempotent requests.
pub fn is_transient(err: &redis::RedisError) -> bool {
    if err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
    {
        return true;
    }
    // A pipeline's error has a code only when redis-rs knows the first failure's (not
    // `UNBLOCKED`): its failures' own codes are in the list of them.
    match err.clone().into_server_errors() {
        Some(failures) => {
            !failures.is_empty()
                && failures.iter().all(|(_, failure)| TRANSIENT_CODES.contains(&failure.code()))
        }
        None => err.code().is_some_and(|code| TRANSIENT_CODES.contains(&code)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff_ms(1), 20);
        assert_eq!(backoff_ms(3), 80);
        assert_eq!(backoff_ms(30), 1_000);
    }
}
