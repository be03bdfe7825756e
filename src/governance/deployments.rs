//! Deployments: which versions of a registered model take what share of a serving environment's
//! traffic, and the history of each environment's splits.
//!
//! Contract:
//! - A split gives each of 1 to 10 distinct versions of one model a whole-number weight from 0 to 100;
//!   the weights sum to 100 ([`check_splits`]).
//! - Each version's share is asked of the policies (`deploy`); every refusal is listed.
//! - A deployment is projected onto Kubeflow inference services in the environment, one per version
//!   (`modelcat-<model>-<version>`, custom property `traffic_weight`, `desiredState` `DEPLOYED` while
//!   its weight is above 0), in the deployment's own transaction.
//! - A rollback returns to the last good split: the newest earlier deployment that was not itself
//!   rolled back, skipping what a rollback restored, so rolling back twice goes two steps back.

use serde::{Deserialize, Serialize};

use super::GovernanceError;

/// The most versions one split may name.
pub const MAX_SPLITS: usize = 10;

/// One version's share of the traffic, as a client asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SplitRequest {
    pub model_version_id: String,
    pub weight: u8,
}

/// One version's share, as deployed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Split {
    pub model_version_id: String,
    pub weight: u8,
    /// The Kubeflow inference service that serves it.
    pub inference_service_id: String,
}

/// A deployment, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub id: String,
    pub serving_environment_id: String,
    pub registered_model_id: String,
    pub splits: Vec<Split>,
    /// `deploy` or `rollback`.
    pub kind: String,
    /// `active` (the split in force), `superseded`, or `rolled_back`.
    pub status: String,
    /// For a rollback: the deployment whose split it restored.
    pub restores: Option<String>,
    pub policy_version: String,
    pub actor: String,
    pub comment: Option<String>,
    pub at: String,
}

/// Checks a requested split; returns the version ids and weights.
pub fn check_splits(splits: &[SplitRequest]) -> Result<Vec<(i64, u8)>, GovernanceError> {
    let invalid = |message: String| Err(GovernanceError::Invalid(message));
    if splits.is_empty() || splits.len() > MAX_SPLITS {
        return invalid(format!("splits: 1 to {MAX_SPLITS} versions"));
    }
    let mut checked = Vec::with_capacity(splits.len());
    for split in splits {
        let id = split.model_version_id.parse::<i64>().ok().filter(|id| *id > 0);
        let Some(id) = id else {
            return invalid(format!("splits: invalid modelVersionId {:?}", split.model_version_id));
        };
        if split.weight > 100 {
            return invalid(format!("splits: the weight of model version {id} is above 100"));
        }
        if checked.iter().any(|(seen, _)| *seen == id) {
            return invalid(format!("splits: model version {id} appears twice"));
        }
        checked.push((id, split.weight));
    }
    let total: u32 = checked.iter().map(|(_, weight)| u32::from(*weight)).sum();
    if total != 100 {
        return invalid(format!("splits: the weights sum to {total}, not 100"));
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(id: &str, weight: u8) -> SplitRequest {
        SplitRequest { model_version_id: id.to_owned(), weight }
    }

    #[test]
    fn weights_sum_to_100_over_distinct_versions() {
        assert_eq!(check_splits(&[split("7", 90), split("8", 10)]).unwrap(), [(7, 90), (8, 10)]);
        assert!(check_splits(&[split("7", 100), split("8", 0)]).is_ok(), "a version may drain to 0");
        let message = |splits: &[SplitRequest]| check_splits(splits).unwrap_err().to_string();
        assert_eq!(message(&[split("7", 90), split("8", 20)]), "splits: the weights sum to 110, not 100");
        assert_eq!(message(&[split("7", 50), split("7", 50)]), "splits: model version 7 appears twice");
        assert!(message(&[split("x", 100)]).contains("invalid modelVersionId"));
        assert!(message(&[split("7", 101)]).contains("above 100"));
        assert!(message(&[]).contains("1 to 10"));
    }
}
