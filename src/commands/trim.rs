//! Keeps the destinations' inboxes small. A credit leaves its answer in the destination's inbox
//! (`P:{B}:inbox`, field `A|id`) so that a repeated credit gets the same answer instead of moving
//! money again; without this pass an inbox would gain a field per cross-bank transfer, forever.
//!
//! An answer may go once nobody can send that credit again:
//! - its transfer is settled, and the settlement is on a replica of the source's shard (or the
//!   shard has no replica): no failover can bring the transfer back into the outbox, where the
//!   recovery pass would credit it a second time;
//! - the `forget` step that removes it raises the inbox's epoch, and a credit carries the epoch
//!   its sender read before it made sure the debit was still in the outbox: a sender that saw
//!   the transfer in flight before its settlement is refused (stale), and one that looks after
//!   it finds the outbox without it.
//!
//! Every recovery pass ends with this one (the broker's before, during and after its run, and
//! `interbank recover`), so what a killed broker left is trimmed by the next one.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::store::connection::Connection;
use crate::store::cross_bank::{self, CrossBankScript};
use crate::store::keys::Keys;
use crate::store::retry::retrying;
use crate::store::script::MAX_BATCH;

/// Answers one pass looks at, at most, over all inboxes; what is left waits for the next pass.
const MAX_ANSWERS_PER_PASS: usize = 1 << 18;
/// Pages of one inbox's `HSCAN` one pass reads, at most.
const MAX_PAGES_PER_INBOX: usize = 4_096;

/// What a trimming pass did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Trimmed {
    /// Answers of settled transfers removed from inboxes.
    pub forgotten: u64,
    /// Answers kept: their transfer is still in its source's outbox.
    pub in_flight: u64,
    /// Answers kept: settled, but no replica of the source's shard acknowledged it in time.
    pub unconfirmed: u64,
    /// Answers kept: from a bank not in the data set (nothing of ours sends those).
    pub unknown_source: u64,
}

impl Trimmed {
    pub fn add(&mut self, other: &Trimmed) {
        self.forgotten += other.forgotten;
        self.in_flight += other.in_flight;
        self.unconfirmed += other.unconfirmed;
        self.unknown_source += other.unknown_source;
    }
}

/// One pass over the inboxes of `banks`: the answers in them, which of their transfers are
/// settled on a replica of their source's shard, and those forgotten, one call per destination
/// and [`MAX_BATCH`] answers.
pub async fn trim_inboxes(conn: &mut Connection, keys: &Keys, banks: &[String]) -> Result<Trimmed> {
    let mut trimmed = Trimmed::default();
    let answers = read_answers(conn, keys, banks, &mut trimmed).await?;
    let mut settled: Vec<Vec<String>> = vec![Vec::new(); banks.len()];
    for (source, answers) in answers.iter().enumerate() {
        let bank = &banks[source];
        let wait = retrying(async || cross_bank::shard_has_replicas(conn, keys, bank).await)
            .await
            .with_context(|| format!("asking bank {bank}'s shard for its replicas"))?;
        for chunk in answers.chunks(MAX_BATCH) {
            let ids: Vec<&str> = chunk.iter().map(|(_, id)| id.as_str()).collect();
            let found = retrying(async || {
                cross_bank::settled_on_replica(conn, keys, bank, &ids, wait).await
            })
            .await
            .with_context(|| format!("reading {}", keys.outbox(bank)))?;
            let Some(found) = found else {
                trimmed.unconfirmed += u64::try_from(chunk.len()).expect("at most MAX_BATCH");
                continue;
            };
            for ((destination, id), is_settled) in chunk.iter().zip(found) {
                if is_settled {
                    settled[*destination].push(format!("{bank}|{id}"));
                } else {
                    trimmed.in_flight += 1;
                }
            }
        }
    }
    let script = CrossBankScript::default();
    for (bank, fields) in banks.iter().zip(&settled) {
        for chunk in fields.chunks(MAX_BATCH) {
            retrying(async || script.forget(conn, keys, bank, chunk).await)
                .await
                .with_context(|| format!("forgetting settled transfers in {}", keys.inbox(bank)))?;
            trimmed.forgotten += u64::try_from(chunk.len()).expect("at most MAX_BATCH");
        }
    }
    Ok(trimmed)
}

/// The answers in every inbox, by source bank (its index in `banks`): each answer's destination
/// (an index too) and transfer id. At most [`MAX_ANSWERS_PER_PASS`].
async fn read_answers(
    conn: &mut Connection,
    keys: &Keys,
    banks: &[String],
    trimmed: &mut Trimmed,
) -> Result<Vec<Vec<(usize, String)>>> {
    let index: BTreeMap<&str, usize> =
        banks.iter().enumerate().map(|(i, b)| (b.as_str(), i)).collect();
    let mut answers: Vec<Vec<(usize, String)>> = vec![Vec::new(); banks.len()];
    let mut count = 0;
    for (destination, bank) in banks.iter().enumerate() {
        let mut cursor = 0;
        for _ in 0..MAX_PAGES_PER_INBOX {
            let (next, fields) =
                retrying(async || cross_bank::inbox_page(conn, keys, bank, cursor).await)
                    .await
                    .with_context(|| format!("reading {}", keys.inbox(bank)))?;
            for field in fields {
                // Read from the right: a transfer id has no '|', a bank name may.
                let source = field.rsplit_once('|').and_then(|(a, id)| Some((*index.get(a)?, id)));
                match source {
                    Some((source, id)) => answers[source].push((destination, id.to_string())),
                    None => trimmed.unknown_source += 1,
                }
                count += 1;
            }
            if next == 0 || count >= MAX_ANSWERS_PER_PASS {
                break;
            }
            cursor = next;
        }
    }
    Ok(answers)
}
