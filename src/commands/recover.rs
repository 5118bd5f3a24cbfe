//! `interbank recover`: carries every cross-bank transfer still in flight to its end, after a
//! broker was killed or lost its connections between the steps of a transfer (see
//! `store/lua/cross_bank.lua`). For each transfer in a bank's outbox it makes sure a replica of
//! the source's shard has the debit, then sends the credit to the destination and the
//! settlement to the source; both steps answer a repeat with their first answer, so a transfer
//! that a live broker is finishing at the same time is still applied once. The broker runs the
//! same pass before and after its own transfers on a cluster.

use anyhow::{Context, Result};
use serde::Serialize;

use crate::store::connection::Connection;
use crate::store::cross_bank::{self, CrossBankScript, Settlement};
use crate::store::keys::Keys;
use crate::store::meta;
use crate::store::retry::retrying;
use crate::store::target::Target;

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
    /// Left in flight: the source's shard has replicas and none acknowledged the debit in time.
    pub left_in_flight: u64,
}

impl Recovered {
    /// Adds another pass's figures.
    pub fn add(&mut self, other: &Recovered) {
        self.found += other.found;
        self.settled += other.settled;
        self.voided += other.voided;
        self.already_settled += other.already_settled;
        self.left_in_flight += other.left_in_flight;
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
    let script = CrossBankScript::default();
    let mut recovered = Recovered::default();
    for bank in banks {
        let pending = cross_bank::in_flight(conn, keys, bank).await?;
        if pending.is_empty() {
            continue;
        }
        recovered.found += u64::try_from(pending.len()).expect("an outbox fits in memory");
        let replicated = retrying(async || cross_bank::replicas_have_all(conn, keys, bank).await)
            .await
            .with_context(|| format!("waiting for a replica of bank {bank}'s shard"))?;
        if !replicated {
            recovered.left_in_flight += u64::try_from(pending.len()).expect("as above");
            continue;
        }
        for transfer in &pending {
            let what = || format!("recovering transfer {}:{}", transfer.from_bank, transfer.id);
            let credit = retrying(async || script.credit(conn, keys, transfer).await)
                .await
                .with_context(what)?;
            match retrying(async || script.settle(conn, keys, transfer, credit).await)
                .await
                .with_context(what)?
            {
                Settlement::Settled => recovered.settled += 1,
                Settlement::Voided => recovered.voided += 1,
                Settlement::AlreadySettled => recovered.already_settled += 1,
            }
        }
    }
    Ok(recovered)
}
