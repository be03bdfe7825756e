//! Evaluation suites and the pass or fail of their results.
//!
//! Contract:
//! - A suite defines metrics by category (task, bias, safety, robustness), each with a direction and a
//!   threshold per risk tier; a metric with a threshold for a model's tier is required for that model.
//! - Pass or fail is computed here from the value, the direction and the threshold of the model's tier
//!   when the result is recorded, and again when a gate looks (thresholds and tiers may have changed
//!   since); a client never supplies it.
//! - [`summarize`] turns the latest result of each required metric into the gate's facts.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::GovernanceError;
use super::lifecycle::RiskTier;
use super::policy::EvaluationFacts;

/// An evaluation suite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Suite {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub metrics: Vec<Metric>,
}

/// One metric of a suite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metric {
    pub name: String,
    pub category: Category,
    pub direction: Direction,
    /// The threshold per risk tier; a tier without one does not require the metric.
    pub thresholds: Thresholds,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Task,
    Bias,
    Safety,
    Robustness,
}

/// Whether a value passes by reaching the threshold or by staying under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Passes when `value >= threshold` (accuracy).
    HigherIsBetter,
    /// Passes when `value <= threshold` (toxicity rate, bias gap).
    LowerIsBetter,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<f64>,
}

impl Metric {
    /// The threshold for a model of `tier`, if the tier requires the metric.
    pub fn threshold(&self, tier: RiskTier) -> Option<f64> {
        match tier {
            RiskTier::Low => self.thresholds.low,
            RiskTier::Medium => self.thresholds.medium,
            RiskTier::High => self.thresholds.high,
        }
    }

    pub fn passes(&self, value: f64, threshold: f64) -> bool {
        match self.direction {
            Direction::HigherIsBetter => value >= threshold,
            Direction::LowerIsBetter => value <= threshold,
        }
    }
}

impl Suite {
    /// Checks a suite named `name` before it is stored.
    pub fn check(&self, name: &str) -> Result<(), GovernanceError> {
        super::check_alias(name)
            .map_err(|_| invalid(format!("invalid suite name {name:?}: 1 to 64 characters, a lowercase letter first, then lowercase letters, digits, '-' or '_'")))?;
        if self.metrics.is_empty() {
            return Err(invalid("a suite needs at least one metric".to_owned()));
        }
        let mut names = BTreeSet::new();
        for metric in &self.metrics {
            if metric.name.trim().is_empty() || metric.name.len() > 128 {
                return Err(invalid("a metric's name is 1 to 128 characters".to_owned()));
            }
            if !names.insert(metric.name.as_str()) {
                return Err(invalid(format!("metric {:?} appears twice", metric.name)));
            }
            let thresholds = &metric.thresholds;
            if [thresholds.low, thresholds.medium, thresholds.high].iter().flatten().any(|value| !value.is_finite()) {
                return Err(invalid(format!("metric {:?} has a threshold that is not a finite number", metric.name)));
            }
        }
        Ok(())
    }

    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|metric| metric.name == name)
    }
}

/// The latest value recorded for a version, per suite and metric.
pub type Latest = BTreeMap<(String, String), f64>;

/// The gate's facts: the metrics the tier requires across every suite, which have no result, and which
/// fail their threshold, judged now.
pub fn summarize(suites: &BTreeMap<String, Suite>, tier: RiskTier, latest: &Latest) -> EvaluationFacts {
    let mut facts = EvaluationFacts::default();
    for (suite_name, suite) in suites {
        for metric in &suite.metrics {
            let Some(threshold) = metric.threshold(tier) else { continue };
            facts.required += 1;
            let key = (suite_name.clone(), metric.name.clone());
            match latest.get(&key) {
                None => facts.missing.push(format!("{suite_name}/{}", metric.name)),
                Some(&value) if !metric.passes(value, threshold) => facts.failed.push(format!(
                    "{suite_name}/{} is {value}, {} {threshold} for a {}-risk model",
                    metric.name,
                    match metric.direction {
                        Direction::HigherIsBetter => "below the minimum",
                        Direction::LowerIsBetter => "above the maximum",
                    },
                    tier.as_str()
                )),
                Some(_) => {}
            }
        }
    }
    facts
}

/// A dataset digest: `sha256:` and 64 hex digits.
pub fn check_dataset_digest(digest: &str) -> Result<(), GovernanceError> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if crate::hex::is_sha256(hex) => Ok(()),
        _ => Err(invalid(format!("invalid datasetDigest {digest:?}: \"sha256:\" and 64 hex digits are expected"))),
    }
}

fn invalid(message: String) -> GovernanceError {
    GovernanceError::Invalid(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suite() -> Suite {
        serde_json::from_value(serde_json::json!({
            "metrics": [
                {"name": "accuracy", "category": "task", "direction": "higher_is_better",
                 "thresholds": {"low": 0.7, "medium": 0.8, "high": 0.9}},
                {"name": "toxicity", "category": "safety", "direction": "lower_is_better",
                 "thresholds": {"high": 0.01}},
            ]
        }))
        .unwrap()
    }

    #[test]
    fn pass_or_fail_follows_direction_threshold_and_tier() {
        let suites = BTreeMap::from([("core".to_owned(), suite())]);
        let mut latest = Latest::from([(("core".to_owned(), "accuracy".to_owned()), 0.85)]);
        let medium = summarize(&suites, RiskTier::Medium, &latest);
        assert_eq!((medium.required, medium.missing.len(), medium.failed.len()), (1, 0, 0));
        let high = summarize(&suites, RiskTier::High, &latest);
        assert_eq!(high.required, 2);
        assert_eq!(high.missing, ["core/toxicity"]);
        assert_eq!(high.failed, ["core/accuracy is 0.85, below the minimum 0.9 for a high-risk model"]);
        latest.insert(("core".to_owned(), "toxicity".to_owned()), 0.02);
        latest.insert(("core".to_owned(), "accuracy".to_owned()), 0.9);
        let high = summarize(&suites, RiskTier::High, &latest);
        assert_eq!(high.failed, ["core/toxicity is 0.02, above the maximum 0.01 for a high-risk model"]);
    }

    #[test]
    fn bad_suites_are_refused() {
        assert!(suite().check("core").is_ok());
        assert!(suite().check("Core").is_err());
        let mut twice = suite();
        twice.metrics.push(twice.metrics[0].clone());
        assert!(twice.check("core").unwrap_err().to_string().contains("appears twice"));
        assert!(Suite { description: None, metrics: vec![] }.check("core").is_err());
        assert!(serde_json::from_str::<Suite>(r#"{"metrics": [], "passed": true}"#).is_err());
        assert!(check_dataset_digest(&format!("sha256:{}", "ab".repeat(32))).is_ok());
        assert!(check_dataset_digest(&"ab".repeat(32)).is_err());
    }
}
