//! The gates a transition must pass, as pure checks over [`Facts`] gathered inside the transition's
//! transaction. A refusal names the rule that gave it, so a 422 lists every reason with its rule.
//!
//! The rules (version [`RULES_VERSION`]):
//! - `artifacts-complete`, on submission: the version has a model artifact, and every model artifact
//!   has a `sha256` (64 hex digits) and a `size` (a positive integer) among its custom properties, and a
//!   license (its `license` property, or the registered model's license);
//! - `approvals`, on `approved_staging` and `approved_prod`: distinct approvals given in the current
//!   review round, by someone other than the submitter: two for a high-risk model, one otherwise.

use super::lifecycle::{RiskTier, State};

/// The version of the rules below, recorded with each decision.
pub const RULES_VERSION: &str = "builtin-1";

/// What the gates look at.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub risk_tier: RiskTier,
    /// The registered model's license, if it has one.
    pub model_license: Option<String>,
    /// Distinct approvals of the current review round.
    pub approvals: usize,
    pub artifacts: Vec<ArtifactFacts>,
}

/// One model artifact of the version.
#[derive(Debug, Clone, Default)]
pub struct ArtifactFacts {
    pub name: String,
    pub sha256: Option<String>,
    pub size: Option<String>,
    pub license: Option<String>,
}

/// Why a gate refused a transition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Refusal {
    /// The rule that refused.
    pub rule: &'static str,
    pub reason: String,
}

/// The approvals a model of `tier` needs per stage.
pub fn approvals_needed(tier: RiskTier) -> usize {
    if tier == RiskTier::High { 2 } else { 1 }
}

/// Every reason a move to `target` is refused; empty when it may go ahead.
pub fn check(target: State, facts: &Facts) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    match target {
        State::Submitted => artifacts_complete(facts, &mut refusals),
        State::ApprovedStaging | State::ApprovedProd => {
            let needed = approvals_needed(facts.risk_tier);
            if facts.approvals < needed {
                refusals.push(Refusal {
                    rule: "approvals",
                    reason: format!(
                        "a {}-risk model needs {needed} distinct approval{} in this review round, it has {}",
                        facts.risk_tier.as_str(),
                        if needed == 1 { "" } else { "s" },
                        facts.approvals
                    ),
                });
            }
        }
        _ => {}
    }
    refusals
}

fn artifacts_complete(facts: &Facts, refusals: &mut Vec<Refusal>) {
    let mut refuse = |reason: String| refusals.push(Refusal { rule: "artifacts-complete", reason });
    if facts.artifacts.is_empty() {
        refuse("the version has no model artifact".to_owned());
    }
    for artifact in &facts.artifacts {
        let name = &artifact.name;
        match artifact.sha256.as_deref() {
            None => refuse(format!("model artifact {name:?} has no sha256 property")),
            Some(digest) if digest.len() != 64 || !digest.bytes().all(|byte| byte.is_ascii_hexdigit()) => {
                refuse(format!("model artifact {name:?} has a sha256 that is not 64 hex digits"));
            }
            Some(_) => {}
        }
        match artifact.size.as_deref().map(str::parse::<u64>) {
            None => refuse(format!("model artifact {name:?} has no size property")),
            Some(Ok(1..)) => {}
            Some(_) => refuse(format!("model artifact {name:?} has a size that is not a positive integer")),
        }
        let licensed = artifact.license.as_deref().or(facts.model_license.as_deref());
        if licensed.is_none_or(|license| license.trim().is_empty()) {
            refuse(format!("model artifact {name:?} has no license, and neither has the registered model"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(name: &str) -> ArtifactFacts {
        ArtifactFacts {
            name: name.to_owned(),
            sha256: Some("a".repeat(64)),
            size: Some("10".to_owned()),
            license: Some("apache-2.0".to_owned()),
        }
    }

    #[test]
    fn submission_lists_every_missing_fact() {
        let facts = Facts {
            artifacts: vec![
                complete("weights"),
                ArtifactFacts { name: "tokenizer".to_owned(), sha256: Some("xyz".to_owned()), ..Default::default() },
            ],
            ..Default::default()
        };
        let reasons: Vec<_> = check(State::Submitted, &facts).into_iter().map(|refusal| refusal.reason).collect();
        assert_eq!(
            reasons,
            [
                "model artifact \"tokenizer\" has a sha256 that is not 64 hex digits",
                "model artifact \"tokenizer\" has no size property",
                "model artifact \"tokenizer\" has no license, and neither has the registered model",
            ]
        );
        let licensed = Facts { model_license: Some("mit".to_owned()), ..facts };
        assert_eq!(check(State::Submitted, &licensed).len(), 2, "the model's license covers its artifacts");
        assert_eq!(check(State::Submitted, &Facts::default())[0].reason, "the version has no model artifact");
    }

    #[test]
    fn high_risk_needs_two_approvals() {
        let mut facts = Facts { risk_tier: RiskTier::High, approvals: 1, ..Default::default() };
        assert_eq!(check(State::ApprovedProd, &facts)[0].rule, "approvals");
        facts.approvals = 2;
        assert!(check(State::ApprovedProd, &facts).is_empty());
        let medium = Facts { approvals: 1, ..Default::default() };
        assert!(check(State::ApprovedStaging, &medium).is_empty());
        assert!(check(State::Staging, &Facts::default()).is_empty(), "no gate on other moves");
    }
}
