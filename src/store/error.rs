//! The failures code acts on, as types: which are worth another attempt, which mean Redis lost
//! writes, which mean the Redis user lacks a permission. Decided on by variant, never by the text
//! of a message; the messages stay for the person who reads them.

use crate::store::retry::is_transient;

/// Why a call of the transfer script got no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The connection broke or timed out, or the server was busy, loading or read-only for a
    /// moment: the call may or may not have run, and sending it again is safe (it is idempotent).
    #[error("{0}")]
    Transient(redis::RedisError),
    /// Redis is out of memory (`maxmemory`): the script was refused before it started.
    #[error("{0}")]
    OutOfMemory(redis::RedisError),
    /// The producer's record ends before transfers it was told of: Redis lost acknowledged writes
    /// (a restart without `appendfsync always`, or a failover).
    #[error("{0}")]
    SequenceGap(redis::RedisError),
    /// Anything else Redis refused (a malformed call, a missing permission, a script error).
    #[error("{0}")]
    Refused(redis::RedisError),
    /// A script stopped before it wrote anything (a key of the wrong type, a denied command).
    #[error("{}", .0.message)]
    Stopped(ScriptStop),
    /// A credit carried an epoch of its destination's inbox older than the inbox's own: the
    /// inbox forgot settled transfers since the sender made sure of its debits. Nothing was
    /// written; make sure of the debits again, then credit with `current`.
    #[error(
        "{inbox} moved on to epoch {current} (it forgot settled transfers): check the debits again"
    )]
    StaleEpoch { inbox: String, current: u64 },
}

/// The error code the transfer script answers when a sequence is past what its producer applied.
pub const SEQUENCE_GAP_CODE: &str = "SEQGAP";
/// The error code the transfer script answers when its keys and arguments make no call.
pub const BAD_CALL_CODE: &str = "BADCALL";

impl From<redis::RedisError> for CallError {
    fn from(err: redis::RedisError) -> CallError {
        if is_transient(&err) {
            CallError::Transient(err)
        } else if err.code() == Some("OOM") {
            CallError::OutOfMemory(err)
        } else if err.code() == Some(SEQUENCE_GAP_CODE) {
            CallError::SequenceGap(err)
        } else {
            CallError::Refused(err)
        }
    }
}

/// Why the transfer script stopped a call before its end, as it answered (see `transfer.lua`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCode {
    /// The Redis user may not run one of the call's commands on its key (ACL).
    NoPermission,
    /// An account key holds something that is not an integer balance.
    NotABalance,
    /// A command failed for another reason (a key of the wrong type, say).
    Failed,
}

impl StopCode {
    /// The code as the script writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            StopCode::NoPermission => "NOPERM",
            StopCode::NotABalance => "BADKEY",
            StopCode::Failed => "FAILED",
        }
    }

    /// The code the script wrote, if it is one.
    pub fn parse(text: &str) -> Option<StopCode> {
        [StopCode::NoPermission, StopCode::NotABalance, StopCode::Failed]
            .into_iter()
            .find(|code| code.as_str() == text)
    }
}

/// A call the transfer script stopped: why, and the message (the key and Redis's own words).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptStop {
    pub code: StopCode,
    pub message: String,
}
