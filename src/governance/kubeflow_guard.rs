//! What the Kubeflow registry API may no longer do once governance has a say, checked before its writes:
//!
//! - a retired version stays `ARCHIVED`;
//! - from submission until changes are requested (or the version is retired), a version's artifacts are
//!   frozen: none is changed, added or deleted, so what was reviewed is what ships;
//! - a version under review or in use (submitted through deprecated) is not deleted, nor is its model:
//!   retire it first.
//!
//! The governance fields themselves are not Kubeflow fields, so a Kubeflow body naming one is refused by
//! the wire decoder ([`crate::api::registry::wire`]) with a pointer to the governance API.

use super::GovernanceError;
use super::lifecycle::State;
use super::store::GovernanceStore;
use crate::registry::schema::{MODEL_VERSION, REGISTERED_MODEL};
use crate::registry::{Draft, Record, Scalar};

/// The top-level keys that are governance fields, not Kubeflow ones.
pub const GOVERNANCE_KEYS: [&str; 6] = ["owners", "group", "riskTier", "tags", "lifecycleState", "aliases"];

/// Checks a Kubeflow update of `stored` with `draft`.
pub async fn check_update(governance: &GovernanceStore, stored: &Record, draft: &Draft) -> Result<(), GovernanceError> {
    if stored.kind == &MODEL_VERSION {
        let unarchives = matches!(draft.values.get("state"), Some(Scalar::Text(state)) if state != "ARCHIVED");
        if unarchives && governance.state(stored.id).await? == State::Retired {
            return Err(GovernanceError::Illegal(format!(
                "model version {} is retired: its state stays ARCHIVED",
                stored.id
            )));
        }
    } else if stored.kind.is_artifact()
        && let Some(version) = stored.parent
    {
        check_artifacts_open(governance, version).await?;
    }
    Ok(())
}

/// Checks that the artifacts of `version` may change (be updated, added or deleted).
pub async fn check_artifacts_open(governance: &GovernanceStore, version: i64) -> Result<(), GovernanceError> {
    let state = governance.state(version).await?;
    if state.freezes_artifacts() {
        return Err(GovernanceError::Illegal(format!(
            "model version {version} is {state}: its artifacts are frozen from submission on \
             (a reviewer can request changes to reopen them)"
        )));
    }
    Ok(())
}

/// Checks a Kubeflow delete of `stored`.
pub async fn check_delete(governance: &GovernanceStore, stored: &Record) -> Result<(), GovernanceError> {
    if stored.kind == &MODEL_VERSION {
        let state = governance.state(stored.id).await?;
        if in_use(state) {
            return Err(GovernanceError::Illegal(format!(
                "model version {} is {state}: retire it before deleting it",
                stored.id
            )));
        }
    } else if stored.kind == &REGISTERED_MODEL {
        if let Some((version, state)) = governance.version_in_use(stored.id).await? {
            return Err(GovernanceError::Illegal(format!(
                "registered model {} has model version {version} {state}: retire its versions before deleting it",
                stored.id
            )));
        }
    } else if stored.kind.is_artifact()
        && let Some(version) = stored.parent
    {
        check_artifacts_open(governance, version).await?;
    }
    Ok(())
}

/// Whether a version in `state` is under review or in use.
pub fn in_use(state: State) -> bool {
    !matches!(state, State::Draft | State::ChangesRequested | State::Retired)
}
