//! Governance of registered models: owners, group, risk tier and tags; a lifecycle for each version with
//! reviews and approvals; policies on its transitions and deployments; evaluations and signatures;
//! deployments to serving environments; evidence bundles; named aliases; and an outbox of events.
//!
//! Contract:
//! - [`lifecycle`] is the state machine; a move it does not list is [`GovernanceError::Illegal`] (409).
//! - [`policy`] (Cedar) decides whether a legal move, or a version's share of a serving environment's
//!   traffic, may go ahead; a refusal is [`GovernanceError::Refused`] (422) with every reason, the
//!   policy that gave it and the policy version. The facts it decides on include [`evaluations`]
//!   (computed pass or fail against the suites' thresholds for the model's risk tier) and
//!   [`signatures`] (model-signing bundles verified against trusted keys).
//! - Nobody reviews a version they submitted ([`GovernanceError::Forbidden`]); a reviewer reviews once per
//!   round (a round starts when the version enters `submitted` or `staging`); approvals count only in
//!   their round.
//! - [`store::GovernanceStore`] makes every change in one transaction with its audit entry
//!   ([`crate::audit`]) and its event ([`crate::store::outbox`], written when a webhook subscription
//!   wants it), so a crash loses neither. Retiring a version sets its Kubeflow state to `ARCHIVED` in the
//!   same transaction (and logs it for the catalog); a [`deployments`] split writes its Kubeflow
//!   inference services in its own.
//! - [`evidence`] packs a version's record into a deterministic archive signed by the server, which
//!   [`cli`] verifies offline.
//! - What the Kubeflow API may no longer do to a governed version ([`kubeflow_guard`]): un-archive a
//!   retired one, or change, add or delete the artifacts of one under review or past it.
//!
//! Who may do what is the HTTP layer's ([`crate::api::governance`]): reading needs read on the model;
//! transitions, reviews, evaluations, signatures, aliases and deployments need edit; the model's
//! governance fields need manage; policies and evaluation suites are an admin's.

pub mod cli;
pub mod deployments;
pub mod evaluations;
pub mod evidence;
pub mod kubeflow_guard;
pub mod lifecycle;
pub mod policy;
pub mod signatures;
pub mod store;

use serde::{Deserialize, Serialize};

use crate::store::DbError;
use lifecycle::{Decision, RiskTier, Stage, State};
use policy::Refusal;

/// Why a governance request failed.
#[derive(Debug, thiserror::Error)]
pub enum GovernanceError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    /// A move the lifecycle does not allow, or a second review in one round.
    #[error("{0}")]
    Illegal(String),
    #[error("{0}")]
    Forbidden(String),
    /// The policies refused a legal move or a deployment; `asked` says which ("the move to production").
    #[error("{asked} was refused: {}", refusals.iter().map(|refusal| refusal.reason.as_str()).collect::<Vec<_>>().join("; "))]
    Refused { asked: String, refusals: Vec<Refusal>, policy_version: String },
    /// A policy set that does not validate: every problem.
    #[error("the policies were not accepted: {}", .0.join("; "))]
    InvalidPolicies(Vec<String>),
    /// A body that is not a model-signing bundle.
    #[error(transparent)]
    Bundle(#[from] signatures::BundleError),
    #[error("database error: {0}")]
    Db(#[from] DbError),
    /// A registry write made as part of a governance change (a deployment's inference services).
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
}

/// A registered model's governance fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelGovernance {
    pub registered_model_id: String,
    pub owners: Vec<String>,
    pub group: Option<String>,
    pub risk_tier: RiskTier,
    pub tags: Vec<String>,
    /// Who changed them last, and when; absent while they are the defaults.
    pub updated_by: Option<String>,
    pub updated_at: Option<String>,
}

/// A change to a model's governance fields: the fields given replace the stored ones.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelPatch {
    pub owners: Option<Vec<String>>,
    /// `null` clears the group.
    #[serde(default, deserialize_with = "crate::nullable::deserialize")]
    pub group: Option<Option<String>>,
    pub risk_tier: Option<RiskTier>,
    pub tags: Option<Vec<String>>,
}

/// Where a version stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionStatus {
    pub model_version_id: String,
    pub registered_model_id: String,
    pub state: State,
    pub submitted_by: Option<String>,
    /// The states a transition may move it to next.
    pub next_states: Vec<State>,
    /// While under review: the stage reviewed, the approvals given in this round and how many the
    /// policies in force need.
    pub review: Option<ReviewRound>,
    /// The aliases pointing at the version.
    pub aliases: Vec<String>,
}

/// The review round a version is in.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewRound {
    pub stage: Stage,
    /// The fewest distinct approvals with which the policies would allow the approval; absent when no
    /// count would (another fact is missing).
    pub approvals_needed: Option<usize>,
    pub approvals: Vec<Review>,
}

/// One transition of a version, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    pub id: String,
    pub from: State,
    pub to: State,
    pub actor: String,
    pub comment: Option<String>,
    pub at: String,
    /// The policy version that allowed it (absent for a review's request for changes).
    pub policy_version: Option<String>,
}

/// What the policies would decide about a move now (a dry run).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyCheck {
    pub from: State,
    pub to: State,
    /// Whether the lifecycle allows the move at all (the policies are asked either way).
    pub legal: bool,
    pub allowed: bool,
    pub refusals: Vec<Refusal>,
    pub policy_version: String,
    /// The facts the policies were given.
    pub facts: serde_json::Value,
}

/// One review of a version, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    pub id: String,
    pub stage: Stage,
    pub reviewer: String,
    pub decision: Decision,
    pub comment: Option<String>,
    pub at: String,
}

/// A model's aliases and every change to them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Aliases {
    pub aliases: Vec<Alias>,
    pub history: Vec<AliasChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alias {
    pub alias: String,
    pub model_version_id: String,
    pub set_by: String,
    pub set_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AliasChange {
    pub alias: String,
    pub previous_version_id: Option<String>,
    /// `None` when the alias was removed.
    pub model_version_id: Option<String>,
    pub actor: String,
    pub at: String,
}

/// Checks an alias name: 1–64 characters, a lowercase letter first, then lowercase letters, digits, `-`
/// and `_` (so an alias never looks like a version id).
pub fn check_alias(alias: &str) -> Result<(), GovernanceError> {
    let mut bytes = alias.bytes();
    let starts = bytes.next().is_some_and(|byte| byte.is_ascii_lowercase());
    let rest = bytes.all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-' || byte == b'_');
    if starts && rest && alias.len() <= 64 {
        return Ok(());
    }
    Err(GovernanceError::Invalid(format!(
        "invalid alias {alias:?}: 1 to 64 characters, a lowercase letter first, then lowercase letters, digits, '-' or '_'"
    )))
}

/// RFC 3339 UTC time of milliseconds since the epoch.
fn timestamp(millis: i64) -> String {
    modelcat_sources::hf::format_hub_time(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_lowercase_words() {
        for good in ["champion", "challenger-2", "a", "prod_eu"] {
            assert!(check_alias(good).is_ok(), "{good}");
        }
        for bad in ["", "Champion", "1st", "-x", "has space", &"x".repeat(65)] {
            assert!(check_alias(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_patch_tells_null_from_absent() {
        let cleared: ModelPatch = serde_json::from_str(r#"{"group": null}"#).unwrap();
        assert_eq!(cleared.group, Some(None));
        let untouched: ModelPatch = serde_json::from_str(r#"{"riskTier": "high"}"#).unwrap();
        assert_eq!((untouched.group, untouched.risk_tier), (None, Some(RiskTier::High)));
        assert!(serde_json::from_str::<ModelPatch>(r#"{"riskTier": "extreme"}"#).is_err());
        assert!(serde_json::from_str::<ModelPatch>(r#"{"state": "production"}"#).is_err());
    }
}
