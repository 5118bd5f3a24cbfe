//! The transfer script (`src/store/lua/transfer.lua`) as a Rust call: builds its keys and arguments for
//! a batch of transfers and reads its reply. Loaded once; called by SHA (`EVALSHA`), and loaded
//! again transparently if the server lost it (`NOSCRIPT` after a restart or `SCRIPT FLUSH`).

use redis::Script;

use crate::ledger::events::Outcome;
use crate::store::error::{CallError, ScriptStop, StopCode};
use crate::store::keys::Keys;

/// The most transfers one call may carry (the script refuses more).
pub const MAX_BATCH: usize = 8192;

/// One transfer to submit; banks are indices into the bank list the caller passes.
#[derive(Debug, Clone, Copy)]
pub struct TransferRequest<'a> {
    pub from_bank: usize,
    pub to_bank: usize,
    pub from: &'a str,
    pub to: &'a str,
    pub amount_cents: i64,
}

/// Where a call records its events and outcomes: the one stream and producer key of the single
/// layout, or, in the sharded layout (Redis Cluster), those of the one bank every transfer of the
/// call belongs to (a cluster runs a script on one slot only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    Global,
    Bank(&'a str),
}

impl Scope<'_> {
    fn events(self, keys: &Keys) -> String {
        match self {
            Scope::Global => keys.events(),
            Scope::Bank(bank) => keys.events_of(bank),
        }
    }

    fn producer(self, keys: &Keys, producer: &str) -> String {
        match self {
            Scope::Global => keys.producer(producer),
            Scope::Bank(bank) => keys.producer_in(bank, producer),
        }
    }
}

/// What the script decided: one outcome per transfer, in order, and, if it stopped early, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchReply {
    pub outcomes: Vec<Outcome>,
    pub stop: Option<ScriptStop>,
}

/// The loaded transfer script: ours (`transfer.lua`), or the Go demo's keys and events made
/// atomic (`seed_transfer.lua`, the seed layout). Both answer in the same outcome letters and
/// stop codes, so the broker drives either the same way.
#[derive(Debug, Clone)]
pub struct TransferScript {
    script: Script,
    seed: bool,
}

impl Default for TransferScript {
    fn default() -> Self {
        TransferScript { script: Script::new(include_str!("lua/transfer.lua")), seed: false }
    }
}

impl TransferScript {
    /// The script's SHA1, as `EVALSHA` and `redis-benchmark` use it.
    pub fn sha1(&self) -> &str {
        self.script.get_hash()
    }

    /// The script's source.
    pub fn source() -> &'static str {
        include_str!("lua/transfer.lua")
    }

    /// The seed layout's script: the demo's keys and events.
    pub fn seed() -> TransferScript {
        TransferScript { script: Script::new(SEED_SOURCE), seed: true }
    }

    /// Loads the script into the server's cache (`SCRIPT LOAD`), so the first calls find it.
    pub async fn load(&self, conn: &mut impl redis::aio::ConnectionLike) -> anyhow::Result<()> {
        let source = if self.seed { SEED_SOURCE } else { TransferScript::source() };
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(source)
            .query_async(conn)
            .await
            .map_err(|e| anyhow::anyhow!("loading the transfer script: {e}"))?;
        anyhow::ensure!(sha == self.sha1(), "the server hashed the transfer script as {sha}");
        Ok(())
    }

    /// The command that makes one transfer, as `redis-benchmark` takes it on its command line:
    /// `EVALSHA sha 8 keys... args...`.
    pub fn command_line(
        &self,
        keys: &Keys,
        banks: &[String],
        producer: &str,
        seq: u64,
        transfer: &TransferRequest<'_>,
    ) -> Vec<String> {
        let (call_keys, args) = single_call(keys, banks, Scope::Global, producer, seq, transfer);
        let mut line =
            vec!["EVALSHA".to_string(), self.sha1().to_string(), call_keys.len().to_string()];
        line.extend(call_keys);
        line.extend(args);
        line
    }

    /// Submits transfers `first_seq..` of `producer`. Sending the same call again after an error
    /// is safe: transfers already applied are answered from their first outcome.
    #[allow(clippy::too_many_arguments)]
    pub async fn submit(
        &self,
        conn: &mut impl redis::aio::ConnectionLike,
        keys: &Keys,
        banks: &[String],
        scope: Scope<'_>,
        producer: &str,
        first_seq: u64,
        transfers: &[TransferRequest<'_>],
    ) -> Result<BatchReply, CallError> {
        assert!(!transfers.is_empty() && transfers.len() <= MAX_BATCH);
        assert!(first_seq >= 1);
        let mut call = self.script.prepare_invoke();
        if self.seed {
            seed_call(&mut call, keys, banks, producer, first_seq, transfers);
        } else if let [t] = transfers {
            let (call_keys, args) = single_call(keys, banks, scope, producer, first_seq, t);
            for key in call_keys {
                call.key(key);
            }
            for arg in args {
                call.arg(arg);
            }
        } else {
            // Only the banks this batch touches are passed, numbered from 1 in the order first met.
            let mut used: Vec<usize> = Vec::with_capacity(4);
            let mut local = |bank: usize| match used.iter().position(|&b| b == bank) {
                Some(i) => i + 1,
                None => {
                    used.push(bank);
                    used.len()
                }
            };
            call.key(scope.events(keys)).key(scope.producer(keys, producer));
            let local_ids: Vec<(usize, usize)> =
                transfers.iter().map(|t| (local(t.from_bank), local(t.to_bank))).collect();
            for &bank in &used {
                call.key(keys.bank_balance(&banks[bank])).key(keys.interbank(&banks[bank]));
            }
            for t in transfers {
                call.key(keys.account(&banks[t.from_bank], t.from))
                    .key(keys.account(&banks[t.to_bank], t.to));
            }
            call.arg(producer).arg(first_seq).arg(used.len());
            for &bank in &used {
                call.arg(&banks[bank]);
            }
            call.arg(transfers.len());
            for (t, (from_bank, to_bank)) in transfers.iter().zip(&local_ids) {
                call.arg(from_bank).arg(to_bank).arg(t.from).arg(t.to).arg(t.amount_cents);
            }
        }
        let reply: redis::Value = call.invoke_async(conn).await?;
        Ok(parse_reply(reply, transfers.len())?)
    }
}

const SEED_SOURCE: &str = include_str!("lua/seed_transfer.lua");

/// The keys and arguments of a call of `seed_transfer.lua` (the seed layout).
fn seed_call(
    call: &mut redis::ScriptInvocation<'_>,
    keys: &Keys,
    banks: &[String],
    producer: &str,
    first_seq: u64,
    transfers: &[TransferRequest<'_>],
) {
    call.key(keys.seed_stream())
        .key(keys.producer(producer))
        .key(keys.seed_people())
        .key(keys.seed_initial());
    for t in transfers {
        let (from_bank, to_bank) = (&banks[t.from_bank], &banks[t.to_bank]);
        call.key(keys.seed_account(t.from))
            .key(keys.seed_account(t.to))
            .key(keys.seed_bank(from_bank))
            .key(keys.seed_bank(to_bank))
            .key(keys.seed_pair(from_bank, to_bank))
            .key(keys.seed_pair(to_bank, from_bank));
    }
    call.arg(producer).arg(first_seq).arg(transfers.len());
    for t in transfers {
        call.arg(t.from)
            .arg(t.to)
            .arg(&banks[t.from_bank])
            .arg(&banks[t.to_bank])
            .arg(t.amount_cents);
    }
}

/// The keys and arguments of a call of one transfer, the script's first shape: no counts or bank
/// numbers, since each argument costs Redis time.
fn single_call(
    keys: &Keys,
    banks: &[String],
    scope: Scope<'_>,
    producer: &str,
    seq: u64,
    t: &TransferRequest<'_>,
) -> ([String; 8], [String; 7]) {
    let (from_bank, to_bank) = (&banks[t.from_bank], &banks[t.to_bank]);
    let call_keys = [
        scope.events(keys),
        scope.producer(keys, producer),
        keys.bank_balance(from_bank),
        keys.interbank(from_bank),
        keys.bank_balance(to_bank),
        keys.interbank(to_bank),
        keys.account(from_bank, t.from),
        keys.account(to_bank, t.to),
    ];
    let args = [
        producer.to_string(),
        seq.to_string(),
        from_bank.clone(),
        to_bank.clone(),
        t.from.to_string(),
        t.to.to_string(),
        t.amount_cents.to_string(),
    ];
    (call_keys, args)
}

/// Reads the script's reply: the outcome letters, or an array of them, a stop code and a message.
fn parse_reply(reply: redis::Value, expected: usize) -> redis::RedisResult<BatchReply> {
    let bad = |what: String| {
        redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "transfer script reply",
            what,
        ))
    };
    let (codes, stop): (String, Option<ScriptStop>) = match reply {
        redis::Value::Array(parts) => match <[redis::Value; 3]>::try_from(parts) {
            Ok([codes, code, message]) => {
                let code: String = redis::from_redis_value(code)?;
                let code = StopCode::parse(&code)
                    .ok_or_else(|| bad(format!("unknown stop code {code:?}")))?;
                let message = redis::from_redis_value(message)?;
                (redis::from_redis_value(codes)?, Some(ScriptStop { code, message }))
            }
            Err(parts) => return Err(bad(format!("{} values, expected 3", parts.len()))),
        },
        single => (redis::from_redis_value(single)?, None),
    };
    let outcomes = codes
        .bytes()
        .map(|c| {
            Outcome::from_code(c)
                .ok_or_else(|| bad(format!("unknown outcome letter {:?}", char::from(c))))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if outcomes.len() > expected || (stop.is_none() && outcomes.len() != expected) {
        return Err(bad(format!("{} outcomes for {expected} transfers", outcomes.len())));
    }
    Ok(BatchReply { outcomes, stop })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::events::CancelReason;

    #[test]
    fn replies_are_parsed_and_checked() {
        let text = |s: &str| redis::Value::BulkString(s.as_bytes().to_vec());
        let stopped = |a: &str, code: &str| {
            redis::Value::Array(vec![text(a), text(code), text("INCRBY k: WRONGTYPE")])
        };
        let ok = parse_reply(text("CF"), 2).unwrap();
        assert_eq!(
            ok.outcomes,
            vec![Outcome::Completed, Outcome::Cancelled(CancelReason::InsufficientFunds)]
        );
        let reply = parse_reply(stopped("C", "FAILED"), 3).unwrap();
        let stop = ScriptStop { code: StopCode::Failed, message: "INCRBY k: WRONGTYPE".into() };
        assert_eq!((reply.outcomes.len(), reply.stop), (1, Some(stop)));
        assert_eq!(
            parse_reply(stopped("", "NOPERM"), 1).unwrap().stop.unwrap().code,
            StopCode::NoPermission
        );
        assert!(parse_reply(stopped("C", "WHATEVER"), 3).is_err());
        assert!(parse_reply(redis::Value::Array(vec![text("C"), text("FAILED")]), 3).is_err());
        assert!(parse_reply(text("C"), 2).is_err());
        assert!(parse_reply(text("CZ"), 2).is_err());
        assert!(parse_reply(redis::Value::Array(vec![text("C")]), 1).is_err());
        assert!(parse_reply(redis::Value::Int(1), 1).is_err());
    }

    /// A `local NAME = value` line of the script, as its value text.
    fn lua_constant(name: &str) -> &'static str {
        let prefix = format!("local {name} = ");
        TransferScript::source()
            .lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("transfer.lua defines no {name}"))
    }

    #[test]
    fn the_script_and_the_rust_side_share_their_constants() {
        assert_eq!(lua_constant("MAX_BATCH"), MAX_BATCH.to_string());
        assert_eq!(
            lua_constant("MAX_SAFE_CENTS"),
            crate::ledger::money::MAX_TOTAL_CENTS.to_string()
        );
        let source = TransferScript::source();
        assert!(source.contains("return 'C', nil, amount"), "the completed letter");
        for letter in b"FUSAO" {
            let Some(Outcome::Cancelled(reason)) = Outcome::from_code(*letter) else {
                panic!("{} is not a cancel letter", char::from(*letter));
            };
            let decided = format!("return '{}', '{}'", char::from(*letter), reason.as_str());
            assert!(source.contains(&decided), "transfer.lua lacks {decided:?}");
        }
        for code in [StopCode::NoPermission, StopCode::NotABalance, StopCode::Failed] {
            assert!(source.contains(&format!("'{}'", code.as_str())), "stop code {code:?}");
        }
        for code in [crate::store::error::SEQUENCE_GAP_CODE, crate::store::error::BAD_CALL_CODE] {
            assert!(source.contains(&format!("redis.error_reply('{code} ")), "error code {code}");
        }
    }
}
