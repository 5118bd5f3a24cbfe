//! A transfer between banks on different shards of a Redis Cluster, as three calls of
//! `lua/cross_bank.lua` (debit on the source's shard, credit on the destination's, settle on the
//! source's), the outbox that keeps every transfer in flight visible until it is settled, and the
//! wait for a replica between the debit and the credit. Each call touches the keys of one bank
//! (one slot) and can be sent again safely: see the script for what each step does.

use redis::Script;
use redis::aio::ConnectionLike;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};

use crate::ledger::events::CancelReason;
use crate::store::connection::Connection;
use crate::store::error::{CallError, ScriptStop, StopCode};
use crate::store::keys::{ANCHOR_FIELD, Keys, cluster_slot};
use crate::store::script::MAX_BATCH;

/// How long the broker waits for a replica to acknowledge a step before it leaves the transfer
/// in flight for the recovery pass.
pub const REPLICA_WAIT_MS: u64 = 1_000;

/// How many times a credit refused as stale ([`CallError::StaleEpoch`]) has its debit made sure
/// of again and is sent with the new epoch, before the transfer is left in flight for the
/// recovery pass. A trim raises an epoch once per pass, every few seconds: the second round
/// passes.
pub const CREDIT_ROUNDS: usize = 3;

/// What the source's shard decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Debit {
    /// Debited: the transfer is in flight until it is settled.
    Debited,
    /// Refused at the source; nothing moved.
    Cancelled(CancelReason),
}

/// What the destination's shard decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credit {
    Credited,
    /// Nothing moved at the destination; the settlement refunds the source.
    Rejected(CancelReason),
}

impl Credit {
    fn letter(self) -> &'static str {
        match self {
            Credit::Credited => "C",
            Credit::Rejected(CancelReason::Overflow) => "O",
            Credit::Rejected(_) => "U",
        }
    }
}

/// How a settlement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Out of flight: the credit is final.
    Settled,
    /// Refunded to the source after a rejection.
    Voided,
    /// Settled before (by another call, or the recovery pass).
    AlreadySettled,
}

/// The field of a credit's answer in the destination's inbox.
pub fn inbox_field(t: &InFlight) -> String {
    format!("{}|{}", t.from_bank, t.id)
}

/// A transfer in flight, as the source's outbox holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    pub from_bank: String,
    pub to_bank: String,
    /// The transfer id, unique among the source bank's transfers (`r<run>-w<producer>-<seq>`).
    pub id: String,
    pub from: String,
    pub to: String,
    pub amount_cents: i64,
}

/// The loaded cross-bank script.
#[derive(Debug, Clone)]
pub struct CrossBankScript {
    script: Script,
}

impl Default for CrossBankScript {
    fn default() -> Self {
        CrossBankScript { script: Script::new(Self::source()) }
    }
}

impl CrossBankScript {
    pub fn source() -> &'static str {
        include_str!("lua/cross_bank.lua")
    }

    /// Debits the source of transfer `seq` of `producer` in the source bank's shard.
    pub async fn debit(
        &self,
        conn: &mut impl ConnectionLike,
        keys: &Keys,
        producer: &str,
        seq: u64,
        t: &InFlight,
    ) -> Result<Debit, CallError> {
        let debits = self.debit_batch(conn, keys, producer, seq, std::slice::from_ref(t)).await?;
        Ok(debits[0])
    }

    /// Debits the sources of transfers `first_seq..` of `producer`, all out of one bank (the
    /// first's), in its shard, in one call; one answer per transfer, in order.
    pub async fn debit_batch(
        &self,
        conn: &mut impl ConnectionLike,
        keys: &Keys,
        producer: &str,
        first_seq: u64,
        batch: &[InFlight],
    ) -> Result<Vec<Debit>, CallError> {
        let a = &batch[0].from_bank;
        assert!(batch.len() <= MAX_BATCH && batch.iter().all(|t| &t.from_bank == a));
        let mut call = self.script.prepare_invoke();
        call.key(keys.events_of(a))
            .key(keys.producer_in(a, producer))
            .key(keys.bank_balance(a))
            .key(keys.interbank(a))
            .key(keys.outbox(a))
            .key(keys.in_flight(a));
        call.arg("debit").arg(producer).arg(first_seq).arg(a).arg(batch.len());
        for t in batch {
            call.key(keys.account(a, &t.from));
            call.arg(&t.to_bank).arg(&t.from).arg(&t.to).arg(t.amount_cents);
        }
        let letters = letters_or_stop(call.invoke_async(conn).await?, batch.len())?;
        letters
            .bytes()
            .map(|letter| match letter {
                b'D' => Ok(Debit::Debited),
                b'F' => Ok(Debit::Cancelled(CancelReason::InsufficientFunds)),
                b'U' => Ok(Debit::Cancelled(CancelReason::UnknownAccount)),
                b'A' => Ok(Debit::Cancelled(CancelReason::BadAmount)),
                other => Err(unexpected(&char::from(other).to_string())),
            })
            .collect()
    }

    /// Credits the destination of a transfer in flight, in the destination bank's shard, with
    /// the epoch of its inbox read before the debit was made sure of (see [`Self::credit_batch`]).
    pub async fn credit(
        &self,
        conn: &mut impl ConnectionLike,
        keys: &Keys,
        epoch: u64,
        t: &InFlight,
    ) -> Result<Credit, CallError> {
        Ok(self.credit_batch(conn, keys, epoch, std::slice::from_ref(t)).await?[0])
    }

    /// Credits the destinations of transfers in flight, all into one bank (the first's), in its
    /// shard, in one call; one answer per transfer, in order. `epoch` is the destination inbox's
    /// epoch as read before the caller made sure the debits were in their outboxes (any value
    /// read earlier will do, 0 included): if the inbox has forgotten settled transfers since,
    /// the call is refused whole with [`CallError::StaleEpoch`], and the caller makes sure of
    /// the debits again before it credits with the epoch that error carries.
    pub async fn credit_batch(
        &self,
        conn: &mut impl ConnectionLike,
        keys: &Keys,
        epoch: u64,
        batch: &[InFlight],
    ) -> Result<Vec<Credit>, CallError> {
        let b = &batch[0].to_bank;
        assert!(batch.len() <= MAX_BATCH && batch.iter().all(|t| &t.to_bank == b));
        let mut call = self.script.prepare_invoke();
        call.key(keys.events_of(b))
            .key(keys.inbox(b))
            .key(keys.bank_balance(b))
            .key(keys.interbank(b));
        call.arg("credit").arg(b).arg(epoch).arg(batch.len());
        for t in batch {
            call.key(keys.account(b, &t.to));
            call.arg(&t.from_bank).arg(&t.id).arg(&t.from).arg(&t.to).arg(t.amount_cents);
        }
        let reply = call.invoke_async(conn).await?;
        if let Some(current) = stale_epoch(&reply) {
            return Err(CallError::StaleEpoch { inbox: keys.inbox(b), current });
        }
        let letters = letters_or_stop(reply, batch.len())?;
        letters.bytes().map(|letter| credit_of(&char::from(letter).to_string())).collect()
    }

    /// Removes `fields` (`A|id`, see [`inbox_field`]) from bank `bank`'s inbox and raises its
    /// epoch, in one call; the new epoch. Only for transfers whose settlement a replica of the
    /// source's shard has (`trim.rs`): a credit sent for them afterwards is refused as stale.
    pub async fn forget(
        &self,
        conn: &mut impl ConnectionLike,
        keys: &Keys,
        bank: &str,
        fields: &[String],
    ) -> Result<u64, CallError> {
        assert!(fields.len() <= MAX_BATCH && fields.iter().all(|f| f.contains('|')));
        let mut call = self.script.prepare_invoke();
        call.key(keys.inbox(bank)).arg("forget").arg(fields.len()).arg(fields);
        match call.invoke_async(conn).await? {
            redis::Value::Int(epoch) => u64::try_from(epoch).map_err(|_| unexpected("an epoch")),
            other => Err(letters_or_stop(other, 0).err().unwrap_or_else(|| unexpected("letters"))),
        }
    }

    /// Settles a transfer in flight in the source bank's shard, after its credit's answer.
    pub async fn settle(
        &self,
        conn: &mut impl ConnectionLike,
        keys: &Keys,
        t: &InFlight,
        credit: Credit,
    ) -> Result<Settlement, CallError> {
        Ok(self.settle_batch(conn, keys, &[(t, credit)]).await?[0])
    }

    /// Settles transfers in flight, all out of one bank (the first's), in its shard, in one call,
    /// after their credits' answers; one answer per transfer, in order.
    pub async fn settle_batch(
        &self,
        conn: &mut impl ConnectionLike,
        keys: &Keys,
        batch: &[(&InFlight, Credit)],
    ) -> Result<Vec<Settlement>, CallError> {
        let a = &batch[0].0.from_bank;
        assert!(batch.len() <= MAX_BATCH && batch.iter().all(|(t, _)| &t.from_bank == a));
        let mut call = self.script.prepare_invoke();
        call.key(keys.events_of(a))
            .key(keys.outbox(a))
            .key(keys.in_flight(a))
            .key(keys.bank_balance(a))
            .key(keys.interbank(a));
        let answers: String = batch.iter().map(|(_, credit)| credit.letter()).collect();
        call.arg("settle").arg(a).arg(batch.len()).arg(answers);
        for (t, credit) in batch {
            if *credit != Credit::Credited {
                call.key(keys.account(a, &t.from));
            }
            call.arg(&t.id);
        }
        let letters = letters_or_stop(call.invoke_async(conn).await?, batch.len())?;
        letters
            .bytes()
            .map(|letter| match letter {
                b'S' => Ok(Settlement::Settled),
                b'V' => Ok(Settlement::Voided),
                b'N' => Ok(Settlement::AlreadySettled),
                other => Err(unexpected(&char::from(other).to_string())),
            })
            .collect()
    }
}

/// The inbox's epoch a credit was refused with (`{ 'STALE', epoch }`), if it was.
fn stale_epoch(reply: &redis::Value) -> Option<u64> {
    let redis::Value::Array(parts) = reply else { return None };
    match parts.as_slice() {
        [redis::Value::BulkString(code), redis::Value::Int(epoch)] if code == b"STALE" => {
            u64::try_from(*epoch).ok()
        }
        _ => None,
    }
}

/// The epoch of bank `bank`'s inbox: how many times it forgot settled transfers. A sender reads
/// it before it makes sure of the debits it will credit there.
pub async fn inbox_epoch(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    bank: &str,
) -> Result<u64, CallError> {
    let epoch: Option<u64> =
        redis::cmd("HGET").arg(keys.inbox(bank)).arg("epoch").query_async(conn).await?;
    Ok(epoch.unwrap_or(0))
}

/// A credit's answer, as the script writes it.
fn credit_of(letter: &str) -> Result<Credit, CallError> {
    match letter {
        "C" => Ok(Credit::Credited),
        "U" => Ok(Credit::Rejected(CancelReason::UnknownAccount)),
        "O" => Ok(Credit::Rejected(CancelReason::Overflow)),
        other => Err(unexpected(other)),
    }
}

/// The step's letters, one per transfer of the batch, or why it stopped.
fn letters_or_stop(reply: redis::Value, expected: usize) -> Result<String, CallError> {
    let letters: String = match reply {
        redis::Value::Array(parts) => {
            let [code, message] = <[redis::Value; 2]>::try_from(parts)
                .map_err(|parts| unexpected(&format!("{} values", parts.len())))?;
            let code: String = redis::from_redis_value(code).map_err(redis::RedisError::from)?;
            let message = redis::from_redis_value(message).map_err(redis::RedisError::from)?;
            let code = StopCode::parse(&code).ok_or_else(|| unexpected(&code))?;
            return Err(CallError::Stopped(ScriptStop { code, message }));
        }
        single => redis::from_redis_value(single).map_err(redis::RedisError::from)?,
    };
    if letters.len() != expected {
        return Err(unexpected(&format!("{} answers for {expected} transfers", letters.len())));
    }
    Ok(letters)
}

fn unexpected(what: &str) -> CallError {
    CallError::Refused(redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "cross-bank script reply",
        what.to_string(),
    )))
}

/// Every transfer in flight out of `bank`: its outbox, read whole (one entry per transfer in
/// flight: a few per worker at most, and what crashed runs left). Each entry, or why it is not
/// one (the key and field named), so that one bad entry holds back no other.
pub async fn in_flight(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    bank: &str,
) -> anyhow::Result<Vec<anyhow::Result<InFlight>>> {
    use anyhow::Context;
    let key = keys.outbox(bank);
    let entries: Vec<(String, String)> =
        crate::store::retry::query_retrying(conn, redis::cmd("HGETALL").arg(&key))
            .await
            .with_context(|| format!("reading {key}"))?;
    Ok(entries
        .into_iter()
        .filter(|(id, _)| id != ANCHOR_FIELD)
        .map(|(id, value)| parse_entry(bank, id, &value).with_context(|| format!("{key} field")))
        .collect())
}

/// An outbox entry: field = transfer id, value = `B,source IBAN,destination IBAN,amount`.
fn parse_entry(bank: &str, id: String, value: &str) -> anyhow::Result<InFlight> {
    // Read from the right: IBANs and amounts have no comma, a bank name may.
    let parts: Vec<&str> = value.rsplitn(4, ',').collect();
    let [amount, to, from, to_bank] = parts[..] else {
        anyhow::bail!("{id} holds {value:?}, not `bank,source,destination,amount`");
    };
    anyhow::ensure!(
        ![to_bank, from, to].contains(&""),
        "{id} holds {value:?}, not `bank,source,destination,amount`"
    );
    // Canonical digits only, as the script reads them (no sign, no leading zero).
    let canonical = !amount.starts_with('0') && amount.bytes().all(|b| b.is_ascii_digit());
    let amount_cents = Some(amount)
        .filter(|_| canonical)
        .and_then(|a| a.parse::<i64>().ok())
        .filter(|a| *a >= 1)
        .ok_or_else(|| anyhow::anyhow!("{id} holds the amount {amount:?}"))?;
    Ok(InFlight {
        from_bank: bank.to_string(),
        to_bank: to_bank.to_string(),
        id,
        from: from.to_string(),
        to: to.to_string(),
        amount_cents,
    })
}

/// Whether `bank`'s shard has a replica configured, as its master's own node table says
/// (`CLUSTER NODES` sent to it): every node that names it as its master counts, connected or
/// failing. A master cut off from its replica still counts it, so its writes are never taken as
/// safe just because no replica answers; a master promoted after its old master died, with no
/// replica of its own, has none, and what it has is as safe as a shard without replicas gets.
/// A node reached that is not the master of the shard (routing gone stale after a failover) is
/// an error worth another attempt.
pub async fn shard_has_replicas(
    conn: &mut Connection,
    keys: &Keys,
    bank: &str,
) -> Result<bool, CallError> {
    let Connection::Cluster { conn, .. } = conn else { return Ok(false) };
    let mut nodes = redis::cmd("CLUSTER");
    nodes.arg("NODES");
    let value = conn.route_command(nodes, shard_of(&keys.bank_balance(bank))).await?;
    let nodes: String =
        redis::from_redis_value(value.extract_error()?).map_err(redis::RedisError::from)?;
    configured_replicas(&nodes).map(|replicas| replicas > 0).ok_or_else(|| {
        CallError::Transient(redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::TryAgain),
            "the node asked for its replicas is not a master any more",
        )))
    })
}

/// The replicas of the node that wrote a `CLUSTER NODES` reply (the line flagged `myself`),
/// whatever their state; `None` when that node is not a master.
fn configured_replicas(nodes: &str) -> Option<usize> {
    let lines: Vec<Vec<&str>> = nodes.lines().map(|l| l.split_whitespace().collect()).collect();
    let myself = lines.iter().find(|f| f.get(2).is_some_and(|flags| flags.contains("myself")))?;
    if !myself[2].split(',').any(|flag| flag == "master") {
        return None;
    }
    Some(lines.iter().filter(|f| f.get(3) == Some(&myself[0])).count())
}

/// Whether a replica of `bank`'s shard has every write made there so far, by any client: one
/// pipeline of a write of this client's own (`INCR P:{B}:recovery`) and `WAIT 1` for it (a
/// replica acknowledges in replication order). `consume` asks it before it replays entries it
/// read from a shard's master, so that it never replays what a failover could still take back.
pub async fn replica_has_all(
    conn: &mut Connection,
    keys: &Keys,
    bank: &str,
) -> Result<bool, CallError> {
    let mut pipe = redis::pipe();
    pipe.cmd("INCR").arg(keys.recovery_mark(bank)).ignore();
    pipe.cmd("WAIT").arg(1).arg(REPLICA_WAIT_MS);
    let (acknowledged,): (i64,) = pipe.query_async(conn).await?;
    Ok(acknowledged >= 1)
}

/// The first of `fields` that hash `record` lacks (transfers still in an outbox, credits'
/// answers in an inbox), by its index; `None` when it has them all.
pub async fn first_missing(
    conn: &mut Connection,
    record: &str,
    fields: &[&str],
) -> Result<Option<usize>, CallError> {
    let found: Vec<Option<String>> =
        redis::cmd("HMGET").arg(record).arg(fields).query_async(conn).await?;
    Ok(found.iter().position(Option::is_none))
}

/// What a shard's replica has of a step just written there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// A replica has it: a failover now keeps it.
    Replicated,
    /// The shard's master has it and no replica acknowledged within [`REPLICA_WAIT_MS`].
    NotYetReplicated,
    /// The shard's master lacks the record of `fields[index]` (the first missing): a failover
    /// lost it, or it was settled.
    Missing { index: usize },
}

/// Whether the steps recorded as `fields` of hash `record` in `bank`'s shard (debits' outbox
/// entries, credits' inbox entries) are on a replica. One round trip to the shard's master, in
/// one pipeline: a write of this client's own (`INCR P:{B}:recovery`), `WAIT 1` for it, and
/// `HMGET` of the records. A replica acknowledges in replication order, so once it has the
/// mark it has every write before it, whoever made it and even if the connection that made the
/// step was lost since; and the records read after the wait are on the master that was waited
/// on. Every record is read, not only the last: the steps may come from many calls, and a
/// failover between two of them keeps the later ones only. (A `WAIT` alone on a connection that
/// was opened again would return at once.)
pub async fn durability(
    conn: &mut Connection,
    keys: &Keys,
    bank: &str,
    record: &str,
    fields: &[&str],
) -> Result<Durability, CallError> {
    let mut pipe = redis::pipe();
    pipe.cmd("INCR").arg(keys.recovery_mark(bank)).ignore();
    pipe.cmd("WAIT").arg(1).arg(REPLICA_WAIT_MS);
    pipe.cmd("HMGET").arg(record).arg(fields);
    let (acknowledged, found): (i64, Vec<Option<String>>) = pipe.query_async(conn).await?;
    Ok(match (found.iter().position(Option::is_none), acknowledged >= 1) {
        (Some(index), _) => Durability::Missing { index },
        (None, true) => Durability::Replicated,
        (None, false) => Durability::NotYetReplicated,
    })
}

/// Fields an `HSCAN` of an inbox asks for at a time (a hint to Redis, which may give more).
const INBOX_PAGE: usize = 1_000;

/// One page of bank `bank`'s inbox: the fields of credits' answers in it (`A|id`, see
/// [`inbox_field`]) and the cursor to go on from, 0 when the scan is over (`HSCAN`, which returns
/// every field present for the whole scan at least once).
pub async fn inbox_page(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    bank: &str,
    cursor: u64,
) -> Result<(u64, Vec<String>), CallError> {
    let (next, pairs): (u64, Vec<String>) = redis::cmd("HSCAN")
        .arg(keys.inbox(bank))
        .arg(cursor)
        .arg("COUNT")
        .arg(INBOX_PAGE)
        .query_async(conn)
        .await?;
    let fields = pairs.into_iter().step_by(2).filter(|field| field.contains('|')).collect();
    Ok((next, fields))
}

/// Which of `ids` bank `bank`'s outbox no longer holds (settled), as a replica of its shard has
/// it: one pipeline of `HMGET` of the outbox, a write of this client's own (`INCR
/// P:{B}:recovery`) after it and `WAIT 1` for that write. A settlement the `HMGET` found made was
/// written before the mark, and a replica acknowledges in replication order, so a failover can
/// no longer bring those transfers back into the outbox. `None` when `wait` and no replica
/// acknowledged within [`REPLICA_WAIT_MS`]; with `wait` false (a shard without replicas), the
/// master's word.
pub async fn settled_on_replica(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    bank: &str,
    ids: &[&str],
    wait: bool,
) -> Result<Option<Vec<bool>>, CallError> {
    let mut pipe = redis::pipe();
    pipe.cmd("HMGET").arg(keys.outbox(bank)).arg(ids);
    if wait {
        pipe.cmd("INCR").arg(keys.recovery_mark(bank)).ignore();
        pipe.cmd("WAIT").arg(1).arg(REPLICA_WAIT_MS);
    }
    let (found, acknowledged): (Vec<Option<String>>, Option<i64>) = if wait {
        let (found, acknowledged) = pipe.query_async(conn).await?;
        (found, Some(acknowledged))
    } else {
        let (found,) = pipe.query_async(conn).await?;
        (found, None)
    };
    if acknowledged.is_some_and(|replicas| replicas < 1) {
        return Ok(None);
    }
    Ok(Some(found.iter().map(Option::is_none).collect()))
}

/// The routing to the master of `key`'s slot.
fn shard_of(key: &str) -> RoutingInfo {
    let route = Route::new(cluster_slot(key), SlotAddr::Master);
    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_entries_are_read_or_named() {
        let t = parse_entry("A", "r1-w2-3".into(), "B,ES1,ES2,150").unwrap();
        assert_eq!((t.to_bank.as_str(), t.from.as_str(), t.amount_cents), ("B", "ES1", 150));
        let comma = parse_entry("A", "r1-w2-3".into(), "Bank, Inc.,ES1,ES2,150").unwrap();
        assert_eq!((comma.to_bank.as_str(), comma.to.as_str()), ("Bank, Inc.", "ES2"));
        for bad in [
            "B,ES1,ES2",
            "B,ES1,ES2,0",
            "B,ES1,ES2,x",
            ",ES1,ES2,5",
            "B,ES1,ES2,+5",
            "B,ES1,ES2,07",
        ] {
            assert!(parse_entry("A", "r1-w2-3".into(), bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn replicas_are_counted_from_the_masters_own_node_table() {
        let nodes = "\
a1 127.0.0.1:1@2 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:3@4 master - 0 0 2 connected 5461-16383
c3 127.0.0.1:5@6 slave,fail a1 0 0 1 disconnected
d4 127.0.0.1:7@8 slave b2 0 0 2 connected
";
        assert_eq!(configured_replicas(nodes), Some(1), "a failing replica still counts");
        let alone = "a1 127.0.0.1:1@2 myself,master - 0 0 1 connected 0-16383\nc3 127.0.0.1:5@6 master,fail - 0 0 1 disconnected";
        assert_eq!(configured_replicas(alone), Some(0));
        let demoted = "a1 127.0.0.1:1@2 myself,slave c3 0 0 1 connected\nc3 127.0.0.1:5@6 master - 0 0 2 connected 0-16383";
        assert_eq!(configured_replicas(demoted), None);
    }

    #[test]
    fn the_script_shares_the_rust_sides_limits() {
        let constant = |name: &str| {
            let prefix = format!("local {name} = ");
            CrossBankScript::source()
                .lines()
                .find_map(|line| line.strip_prefix(prefix.as_str()))
                .unwrap_or_else(|| panic!("cross_bank.lua defines no {name}"))
                .to_string()
        };
        assert_eq!(constant("MAX_BATCH"), MAX_BATCH.to_string());
        assert_eq!(constant("MAX_SAFE_CENTS"), crate::ledger::money::MAX_TOTAL_CENTS.to_string());
        for code in [StopCode::NoPermission, StopCode::NotABalance, StopCode::Failed] {
            assert!(
                CrossBankScript::source().contains(&format!("'{}'", code.as_str())),
                "{code:?}"
            );
        }
    }
}
