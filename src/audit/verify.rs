//! Checks the whole audit log: positions without gaps, each entry chained to the one before, each hash
//! matching its entry's content, and every checkpoint signed by a trusted key and matching the chain.
//! The first problem found is reported, naming the entry.

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
            report.entries += 1;
            previous_seq = seq;
            previous_hash = stored.hash;
        }
    }
    if let Some((seq, _)) = pending.iter().next() {
        report.problem = Some(format!(
            "the log ends at entry {previous_seq}, but a signed checkpoint covers entry {seq} (entries were removed from its end)"
        ));
    }
    Ok(report)
}
