//! Checks the whole audit log: positions without gaps, each entry chained to the one before, each hash
//! matching its entry's content, and every checkpoint signed by a trusted key and matching the chain.
//! The first problem found is reported, naming the entry.
//!
//! After retention removed the oldest entries, the chain starts at the horizon: a signed checkpoint must
//! vouch for the last removed entry's hash, and an `audit.prune` entry in the chain must record that
//! horizon, so removing entries any other way is still caught.

use super::checkpoint;
use crate::store::audit::{self as store, Checkpoint};
use crate::store::sql::{Backend, DbError};

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Chained entries checked.
    pub entries: i64,
    /// Checkpoints whose signature was checked against a trusted key.
    pub checkpoints_verified: usize,
    /// Checkpoints signed by keys not given to the verifier (not checked).
    pub checkpoints_unknown: usize,
    /// Entries not yet chained (PostgreSQL chains within a second or two).
    pub unsealed: i64,
    /// The position through which retention removed entries (0: none removed).
    pub pruned_through: i64,
    /// The first problem, naming the entry; `None` when the log is intact.
    pub problem: Option<String>,
}

/// Verifies the log; `trusted` are raw Ed25519 public keys whose checkpoints count.
pub async fn verify(backend: &dyn Backend, trusted: &[Vec<u8>]) -> Result<Report, DbError> {
    let checkpoints = store::checkpoints(backend).await?;
    let mut report = Report {
        entries: 0,
        checkpoints_verified: 0,
        checkpoints_unknown: 0,
        unsealed: store::unsealed(backend).await?,
        pruned_through: 0,
        problem: None,
    };
    let mut pending: std::collections::BTreeMap<i64, &Checkpoint> = Default::default();
    for checkpoint in &checkpoints {
        match trusted.iter().find(|key| checkpoint::key_id(key) == checkpoint.key_id) {
            None => report.checkpoints_unknown += 1,
            Some(key) if !checkpoint::signed_by(checkpoint, key) => {
                report.problem = Some(format!("the checkpoint at entry {} has a bad signature", checkpoint.seq));
                return Ok(report);
            }
            Some(_) => {
                report.checkpoints_verified += 1;
                pending.insert(checkpoint.seq, checkpoint);
            }
        }
    }
    let mut previous_seq = 0;
    let mut previous_hash = store::GENESIS.to_owned();
    let horizon = store::horizon(backend).await?;
    let mut prune_recorded = horizon.is_none();
    if let Some((seq, hash)) = &horizon {
        if pending.remove(seq).is_none_or(|anchor| anchor.hash != *hash) {
            report.problem = Some(format!(
                "entries through {seq} were removed, but no trusted signed checkpoint vouches for entry {seq}"
            ));
            return Ok(report);
        }
        pending.retain(|position, _| position > seq);
        (previous_seq, previous_hash) = (*seq, hash.clone());
        report.pruned_through = *seq;
    }
    let prune_prefix = horizon.as_ref().map(|(seq, _)| format!("through {seq}:"));
    loop {
        let batch = store::chain_after(backend, previous_seq, 5000).await?;
        if batch.is_empty() {
            break;
        }
        for (stored, named_previous) in batch {
            let seq = stored.entry.seq;
            let problem = if seq != previous_seq + 1 {
                Some(format!("entry {} is missing (deleted, or the log was reordered)", previous_seq + 1))
            } else if named_previous != previous_hash {
                Some(format!("entry {seq} does not follow entry {previous_seq} (reordered, or an entry was replaced)"))
            } else if store::hash(&previous_hash, &stored.entry) != stored.hash {
                Some(format!("entry {seq} was altered (its content does not match its hash)"))
            } else if pending.get(&seq).is_some_and(|checkpoint| checkpoint.hash != stored.hash) {
                Some(format!("entry {seq} does not match its signed checkpoint (the log was rewritten)"))
            } else {
                None
            };
            if problem.is_some() {
                report.problem = problem;
                return Ok(report);
            }
            pending.remove(&seq);
            if stored.entry.action == store::PRUNE_ACTION
                && let (Some(detail), Some(prefix)) = (&stored.entry.detail, &prune_prefix)
            {
                prune_recorded |= detail.starts_with(prefix.as_str());
            }
            report.entries += 1;
            previous_seq = seq;
            previous_hash = stored.hash;
        }
    }
    if !prune_recorded {
        report.problem = Some(format!(
            "entries through {} were removed without an audit.prune entry recording it",
            report.pruned_through
        ));
        return Ok(report);
    }
    if let Some((seq, _)) = pending.iter().next() {
        report.problem = Some(format!(
            "the log ends at entry {previous_seq}, but a signed checkpoint covers entry {seq} (entries were removed from its end)"
        ));
    }
    Ok(report)
}
