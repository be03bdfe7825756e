//! What the policies look at: a version's facts, gathered in the transition's transaction, turned into
//! the Cedar resource's attributes and the request's context (counts), with the details behind each
//! count for the refusals that cite it.

use std::collections::HashMap;

use cedar_policy::RestrictedExpression;

use super::{Ask, string};
use crate::governance::lifecycle::{RiskTier, State};

/// A version's facts.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub registered_model: i64,
    pub state: State,
    pub risk_tier: RiskTier,
    pub group: Option<String>,
    pub owners: Vec<String>,
    pub tags: Vec<String>,
    /// The registered model's license, if it has one.
    pub model_license: Option<String>,
    /// Distinct approvals of the current review round.
    pub approvals: usize,
    pub artifacts: Vec<ArtifactFacts>,
    pub evaluations: EvaluationFacts,
    pub signatures: SignatureFacts,
}

/// One model artifact of the version.
#[derive(Debug, Clone, Default)]
pub struct ArtifactFacts {
    pub name: String,
    pub sha256: Option<String>,
    pub size: Option<String>,
    pub license: Option<String>,
}

/// The evaluations the model's risk tier requires, as they stand for the version.
#[derive(Debug, Clone, Default)]
pub struct EvaluationFacts {
    pub required: usize,
    /// `suite/metric` of each required metric without a result.
    pub missing: Vec<String>,
    /// Each required metric whose latest result misses its threshold, with the figures.
    pub failed: Vec<String>,
}

/// The version's signature bundles, as they stand against its artifacts.
#[derive(Debug, Clone, Default)]
pub struct SignatureFacts {
    /// Verified bundles whose signed digests cover every model artifact.
    pub verified: usize,
    /// Why the others do not count.
    pub problems: Vec<String>,
}

impl Facts {
    /// The context attributes a policy may `@explain` a refusal with.
    pub const EXPLAINED: &'static [&'static str] = &[
        "artifacts",
        "incomplete_artifacts",
        "distinct_approvals",
        "required_evaluations",
        "missing_evaluations",
        "failed_evaluations",
        "verified_signatures",
        "weight",
    ];

    /// Each fact an artifact misses for submission.
    pub fn artifact_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for artifact in &self.artifacts {
            let name = &artifact.name;
            match artifact.sha256.as_deref() {
                None => problems.push(format!("model artifact {name:?} has no sha256 property")),
                Some(digest) if !crate::hex::is_sha256(digest) => {
                    problems.push(format!("model artifact {name:?} has a sha256 that is not 64 hex digits"));
                }
                Some(_) => {}
            }
            match artifact.size.as_deref().map(str::parse::<u64>) {
                None => problems.push(format!("model artifact {name:?} has no size property")),
                Some(Ok(1..)) => {}
                Some(_) => problems.push(format!("model artifact {name:?} has a size that is not a positive integer")),
            }
            let licensed = artifact.license.as_deref().or(self.model_license.as_deref());
            if licensed.is_none_or(|license| license.trim().is_empty()) {
                problems.push(format!("model artifact {name:?} has no license, and neither has the registered model"));
            }
        }
        problems
    }

    /// The details behind a context attribute, for a refusal that cites it.
    pub fn details(&self, attribute: &str, ask: &Ask) -> Vec<String> {
        match attribute {
            "weight" => match ask {
                Ask::Deploy { environment, weight } => {
                    vec![format!("the version is {} and would take {weight}% of {environment}", self.state)]
                }
                Ask::Transition(_) => Vec::new(),
            },
            "artifacts" | "incomplete_artifacts" if self.artifacts.is_empty() => {
                vec!["the version has no model artifact".to_owned()]
            }
            "incomplete_artifacts" => self.artifact_problems(),
            "distinct_approvals" => vec![format!(
                "{} distinct approval{} in this review round",
                self.approvals,
                if self.approvals == 1 { "" } else { "s" }
            )],
            "missing_evaluations" => {
                self.evaluations.missing.iter().map(|metric| format!("no result for {metric}")).collect()
            }
            "failed_evaluations" => self.evaluations.failed.clone(),
            "verified_signatures" if self.signatures.problems.is_empty() => {
                vec!["the version has no signature bundle".to_owned()]
            }
            "verified_signatures" => self.signatures.problems.clone(),
            _ => Vec::new(),
        }
    }

    /// The facts as recorded with a decision: the resource's attributes, the context's counts, and the
    /// details behind the counts that have any.
    pub fn record(&self, to: State) -> serde_json::Value {
        let mut context: serde_json::Map<_, _> =
            self.counts().into_iter().map(|(name, count)| (name.to_owned(), serde_json::json!(count))).collect();
        context.insert("to".to_owned(), serde_json::json!(to));
        let ask = Ask::Transition(to);
        let details: serde_json::Map<_, _> = Self::EXPLAINED
            .iter()
            .map(|name| (name.to_string(), self.details(name, &ask)))
            .filter(|(name, details)| !details.is_empty() && name != "distinct_approvals")
            .map(|(name, details)| (name, serde_json::json!(details)))
            .collect();
        serde_json::json!({
            "resource": {
                "model": self.registered_model.to_string(),
                "risk_tier": self.risk_tier,
                "group": self.group,
                "owners": self.owners,
                "tags": self.tags,
                "state": self.state,
            },
            "context": context,
            "details": details,
        })
    }

    pub(super) fn resource_attributes(&self) -> HashMap<String, RestrictedExpression> {
        let set = |items: &[String]| RestrictedExpression::new_set(items.iter().map(|item| string(item)));
        HashMap::from([
            ("model".to_owned(), string(&self.registered_model.to_string())),
            ("risk_tier".to_owned(), string(self.risk_tier.as_str())),
            ("group".to_owned(), string(self.group.as_deref().unwrap_or_default())),
            ("owners".to_owned(), set(&self.owners)),
            ("tags".to_owned(), set(&self.tags)),
            ("state".to_owned(), string(self.state.as_str())),
        ])
    }

    /// The context's counts.
    pub(super) fn counts(&self) -> [(&'static str, i64); 7] {
        let count = |count: usize| i64::try_from(count).unwrap_or(i64::MAX);
        let incomplete = if self.artifacts.is_empty() { 0 } else { self.artifact_problems().len() };
        [
            ("artifacts", count(self.artifacts.len())),
            ("incomplete_artifacts", count(incomplete)),
            ("distinct_approvals", count(self.approvals)),
            ("required_evaluations", count(self.evaluations.required)),
            ("missing_evaluations", count(self.evaluations.missing.len())),
            ("failed_evaluations", count(self.evaluations.failed.len())),
            ("verified_signatures", count(self.signatures.verified)),
        ]
    }

    pub(super) fn context(&self, ask: &Ask) -> Vec<(String, RestrictedExpression)> {
        match ask {
            Ask::Transition(to) => {
                let counts = self.counts().into_iter();
                let counts = counts.map(|(name, count)| (name.to_owned(), RestrictedExpression::new_long(count)));
                std::iter::once(("to".to_owned(), string(to.as_str()))).chain(counts).collect()
            }
            Ask::Deploy { environment, weight } => vec![
                ("environment".to_owned(), string(environment)),
                ("weight".to_owned(), RestrictedExpression::new_long(i64::from(*weight))),
            ],
        }
    }
}
