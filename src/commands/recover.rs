//! `interbank recover`: carries every cross-bank transfer still in flight to its end, after a
//! broker was killed or lost its connections between the steps of a transfer (see
//! `store/lua/cross_bank.lua`). For each transfer in a bank's outbox it makes sure a replica of
//! the source's shard has the debit, then sends the credit to the destination and the
//! settlement to the source; both steps answer a repeat with their first answer, so a transfer
//! that a live broker is finishing at the same time is still applied once. The broker runs the
//! same pass before and after its own transfers on a cluster, and every few seconds during them
//! over the transfers of other runs (its own workers carry theirs). Each pass ends by removing
//! the answers of settled transfers from the inboxes (`trim.rs`).

use anyhow::{Context, Result};
use serde::Serialize;

use crate::commands::trim::{Trimmed, trim_inboxes};
use crate::store::connection::Connection;
use crate::store::cross_bank::{
    self, CREDIT_ROUNDS, CrossBankScript, Durability, InFlight, Settlement,
};
use crate::store::error::CallError;
use crate::store::keys::Keys;
use crate::store::meta;
use crate::store::retry::retrying;
use crate::store::target::Target;

/// How many failures a pass names; the others are counted.
const MAX_ERRORS: usize = 10;

/// What a recovery pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Recovered {
    /// Transfers found in flight.
    pub found: u64,
    /// Credited and settled.
    pub settled: u64,
    /// Rejected by the destination and refunded to the source.
    pub voided: u64,
    /// Settled by someone else meanwhile.
    pub already_settled: u64,
    /// Gone from the outbox before this pass could make sure of its debit: settled meanwhile by
    /// a broker, or lost with its debit in a failover (which moved no money).
    pub vanished: u64,
    /// Left in flight: the source's shard has replicas and none acknowledged the debit in time.
    pub left_in_flight: u64,
    /// Transfers a step of which failed for good (a key of the wrong type, say); the pass went
    /// on with the others.
    pub failed: u64,
    /// Why, for the first few of them.
    pub errors: Vec<String>,
    /// What the passes removed from the inboxes, and what they kept.
    pub trimmed: Trimmed,
}

impl Recovered {
    /// Adds another pass's figures.
    pub fn add(&mut self, other: &Recovered) {
        self.found += other.found;
        self.settled += other.settled;
        self.voided += other.voided;
        self.already_settled += other.already_settled;
        self.vanished += other.vanished;
        self.left_in_flight += other.left_in_flight;
        self.failed += other.failed;
        self.trimmed.add(&other.trimmed);
        let room = MAX_ERRORS.saturating_sub(self.errors.len());
        self.errors.extend(other.errors.iter().take(room).cloned());
    }
}

/// Connects and recovers every bank of the loaded data set.
pub async fn recover(target: &Target, keys: &Keys) -> Result<Recovered> {
    let mut conn = Connection::open(target).await?;
    let meta = meta::read(&mut conn, keys).await?;
    recover_banks(&mut conn, keys, &meta.banks).await
}

/// One pass over the outboxes of `banks`.
pub async fn recover_banks(
    conn: &mut Connection,
    keys: &Keys,
    banks: &[String],
) -> Result<Recovered> {
    recover_except(conn, keys, banks, None).await
}

/// One pass over the outboxes of `banks`, leaving alone the transfers of run `live` (a broker's
/// pass while its own workers are still carrying them).
pub async fn recover_except(
    conn: &mut Connection,
    keys: &Keys,
    banks: &[String],
    live: Option<u64>,
) -> Result<Recovered> {
    let mut recovered = Recovered::default();
    let live_prefix = live.map(|run| format!("r{run}-"));
    for bank in banks {
        let mut pending = cross_bank::in_flight(conn, keys, bank).await?;
        if let Some(prefix) = &live_prefix {
            pending.retain(|t| !t.as_ref().is_ok_and(|t| t.id.starts_with(prefix.as_str())));
        }
        recovered.found += u64::try_from(pending.len()).expect("an outbox fits in memory");
        for transfer in &pending {
            // One transfer that cannot be finished does not keep the others in flight.
            let finished = match transfer {
                Ok(transfer) => recover_one(conn, keys, transfer, &mut recovered)
                    .await
                    .with_context(|| format!("transfer {}:{}", transfer.from_bank, transfer.id)),
                Err(bad) => Err(anyhow::anyhow!("{bad:#}")),
            };
            if let Err(err) = finished {
                recovered.failed += 1;
                if recovered.errors.len() < MAX_ERRORS {
                    recovered.errors.push(format!("{err:#}"));
                }
            }
        }
    }
    recovered.trimmed = trim_inboxes(conn, keys, banks).await?;
    Ok(recovered)
}

/// Credits and settles one transfer in flight, each step only once the one before it is on a
/// replica of its shard (or on the shard's only server).
async fn recover_one(
    conn: &mut Connection,
    keys: &Keys,
    transfer: &InFlight,
    recovered: &mut Recovered,
) -> Result<()> {
    let script = CrossBankScript::default();
    let (a, b) = (&transfer.from_bank, &transfer.to_bank);
    let outbox = keys.outbox(a);
    let mut answer = None;
    for _ in 0..CREDIT_ROUNDS {
        // The inbox's epoch before the debit is made sure of: see `CrossBankScript::credit_batch`.
        let epoch = retrying(async || cross_bank::inbox_epoch(conn, keys, b).await).await?;
        match durable(conn, keys, a, &outbox, &transfer.id).await? {
            Durability::Replicated => {}
            Durability::NotYetReplicated => {
                recovered.left_in_flight += 1;
                return Ok(());
            }
            Durability::Missing { .. } => {
                recovered.vanished += 1;
                return Ok(());
            }
        }
        match retrying(async || script.credit(conn, keys, epoch, transfer).await).await {
            Err(CallError::StaleEpoch { .. }) => {}
            credited => {
                answer = Some(credited?);
                break;
            }
        }
    }
    let Some(credit) = answer else {
        recovered.left_in_flight += 1;
        return Ok(());
    };
    let inbox = keys.inbox(b);
    if durable(conn, keys, b, &inbox, &cross_bank::inbox_field(transfer)).await?
        != Durability::Replicated
    {
        recovered.left_in_flight += 1;
        return Ok(());
    }
    match retrying(async || script.settle(conn, keys, transfer, credit).await).await? {
        Settlement::Settled => recovered.settled += 1,
        Settlement::Voided => recovered.voided += 1,
        Settlement::AlreadySettled => recovered.already_settled += 1,
    }
    Ok(())
}

/// [`cross_bank::durability`], with the shard's only server counting as a replica: a shard
/// without replicas keeps what its master has.
async fn durable(
    conn: &mut Connection,
    keys: &Keys,
    bank: &str,
    record: &str,
    field: &str,
) -> Result<Durability> {
    let fields = [field];
    if !retrying(async || cross_bank::shard_has_replicas(conn, keys, bank).await).await? {
        let missing =
            retrying(async || cross_bank::first_missing(conn, record, &fields).await).await?;
        return Ok(match missing {
            None => Durability::Replicated,
            Some(index) => Durability::Missing { index },
        });
    }
    Ok(retrying(async || cross_bank::durability(conn, keys, bank, record, &fields).await).await?)
}
