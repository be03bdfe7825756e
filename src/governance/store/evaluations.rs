//! Evaluation suites, and the results recorded for a version, judged against its model's risk tier.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Fields, GovernanceStore, Reader};
use crate::audit;
use crate::governance::GovernanceError;
use crate::governance::evaluations::{self, Latest, Suite};
use crate::governance::lifecycle::{RiskTier, State};
use crate::governance::policy::EvaluationFacts;
use crate::store::now_millis;
use crate::store::outbox::{self as events, EventType};
use crate::store::sql::{Col, Value};

/// A suite as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SuiteRecord {
    pub name: String,
    #[serde(flatten)]
    pub suite: Suite,
    pub updated_by: String,
    pub updated_at: String,
}

/// Results of one suite for a version, as a client sends them: never their pass or fail.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Submission {
    pub suite: String,
    /// `sha256:` and the 64 hex digits of the evaluation dataset's digest.
    pub dataset_digest: String,
    pub dataset_name: Option<String>,
    pub results: Vec<MetricValue>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricValue {
    pub metric: String,
    pub value: f64,
}

/// One recorded result, with its judgement when recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationResult {
    pub id: String,
    pub suite: String,
    pub metric: String,
    pub category: String,
    pub direction: String,
    pub value: f64,
    pub dataset_name: Option<String>,
    pub dataset_digest: String,
    pub risk_tier: String,
    /// The threshold of the model's tier then; absent when the tier did not require the metric.
    pub threshold: Option<f64>,
    pub passed: Option<bool>,
    pub recorded_by: String,
    pub at: String,
}

/// A version's results, and where they stand today against the suites and the model's tier.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationReport {
    pub risk_tier: RiskTier,
    pub required: usize,
    pub missing: Vec<String>,
    pub failed: Vec<String>,
    pub results: Vec<EvaluationResult>,
}

impl GovernanceStore {
    /// Every suite, by name.
    pub async fn suites(&self) -> Result<Vec<SuiteRecord>, GovernanceError> {
        self.read_suites(&mut Reader::Db(&*self.db), None).await
    }

    pub async fn suite(&self, name: &str) -> Result<SuiteRecord, GovernanceError> {
        let found = self.read_suites(&mut Reader::Db(&*self.db), Some(name)).await?.into_iter().next();
        found.ok_or_else(|| suite_missing(name))
    }

    async fn read_suites(
        &self,
        reader: &mut Reader<'_>,
        name: Option<&str>,
    ) -> Result<Vec<SuiteRecord>, GovernanceError> {
        let mut sql = self.sql();
        sql.push("SELECT name, definition, updated_by, updated_at FROM evaluation_suite");
        if let Some(name) = name {
            sql.push(" WHERE name = ").arg(Value::Text(name.to_owned()));
        }
        sql.push(" ORDER BY name");
        let rows = reader.read(&sql, &[Col::Text, Col::Text, Col::Text, Col::Int]).await?;
        let mut suites = Vec::new();
        for row in rows {
            let mut fields = Fields::of(row);
            let name = fields.text().unwrap_or_default();
            let Some(suite) = fields.text().and_then(|json| serde_json::from_str(&json).ok()) else { continue };
            suites.push(SuiteRecord {
                name,
                suite,
                updated_by: fields.text().unwrap_or_default(),
                updated_at: fields.time(),
            });
        }
        Ok(suites)
    }

    /// Creates or replaces a suite.
    pub async fn put_suite(&self, name: &str, suite: Suite) -> Result<SuiteRecord, GovernanceError> {
        suite.check(name)?;
        let actor = audit::current();
        let definition = serde_json::to_string(&suite).unwrap_or_default();
        let mut tx = self.db.begin().await?;
        let mut sql = self.sql();
        sql.push("INSERT INTO evaluation_suite (name, definition, updated_by, updated_at) VALUES (")
            .arg(Value::Text(name.to_owned()))
            .push(", ")
            .arg(Value::Text(definition.clone()))
            .push(", ")
            .arg(Value::Text(actor.subject.clone()))
            .push(", ")
            .arg(Value::Int(now_millis()))
            .push(
                ") ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, updated_by = \
                 excluded.updated_by, updated_at = excluded.updated_at",
            );
        tx.execute(&sql).await?;
        let record = audit::Record {
            action: "evaluation_suite.update".to_owned(),
            entity: format!("evaluation_suite/{name}"),
            before: None,
            after: Some(crate::hex::sha256(definition.as_bytes())),
            detail: Some(format!("{} metrics", suite.metrics.len())),
        };
        audit::append(&mut *tx, self.dialect(), record).await?;
        tx.commit().await?;
        self.suite(name).await
    }

    /// Deletes a suite; results recorded under it are kept, and no longer required.
    pub async fn delete_suite(&self, name: &str) -> Result<(), GovernanceError> {
        let mut tx = self.db.begin().await?;
        let mut sql = self.sql();
        sql.push("DELETE FROM evaluation_suite WHERE name = ").arg(Value::Text(name.to_owned()));
        if tx.execute(&sql).await? == 0 {
            return Err(suite_missing(name));
        }
        let record = audit::Record {
            action: "evaluation_suite.delete".to_owned(),
            entity: format!("evaluation_suite/{name}"),
            before: None,
            after: None,
            detail: None,
        };
        audit::append(&mut *tx, self.dialect(), record).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a suite's results for a version, each judged against the model's risk tier.
    pub async fn record_evaluation(
        &self,
        version: i64,
        submission: Submission,
    ) -> Result<Vec<EvaluationResult>, GovernanceError> {
        evaluations::check_dataset_digest(&submission.dataset_digest)?;
        if submission.results.is_empty() {
            return Err(GovernanceError::Invalid("results: at least one metric value is needed".to_owned()));
        }
        let actor = audit::current();
        let mut tx = self.db.begin().await?;
        let current = self.current(&mut Reader::Tx(&mut *tx), version, true).await?;
        if current.state == State::Retired {
            return Err(GovernanceError::Illegal(format!("model version {version} is retired")));
        }
        let tier = self.read_model(&mut Reader::Tx(&mut *tx), current.model, false).await?.risk_tier;
        let suites = self.read_suites(&mut Reader::Tx(&mut *tx), Some(&submission.suite)).await?;
        let suite = suites.into_iter().next().ok_or_else(|| suite_missing(&submission.suite))?.suite;
        let mut seen = std::collections::BTreeSet::new();
        for result in &submission.results {
            if suite.metric(&result.metric).is_none() {
                return Err(GovernanceError::Invalid(format!(
                    "suite {:?} has no metric {:?}",
                    submission.suite, result.metric
                )));
            }
            if !seen.insert(result.metric.as_str()) {
                return Err(GovernanceError::Invalid(format!("metric {:?} is given twice", result.metric)));
            }
            if !result.value.is_finite() {
                return Err(GovernanceError::Invalid(format!("metric {:?}: the value must be finite", result.metric)));
            }
        }
        let now = now_millis();
        let mut failed = Vec::new();
        let mut ids = Vec::new();
        for result in &submission.results {
            let metric = suite.metric(&result.metric).expect("checked above");
            let threshold = metric.threshold(tier);
            let passed = threshold.map(|threshold| metric.passes(result.value, threshold));
            if passed == Some(false) {
                failed.push(result.metric.clone());
            }
            let mut sql = self.sql();
            sql.push(
                "INSERT INTO evaluation_result (model_version_id, suite, metric, category, direction, value, \
                 dataset_name, dataset_digest, risk_tier, threshold, passed, recorded_by, at) VALUES (",
            );
            let values = [
                Value::Int(version),
                Value::Text(submission.suite.clone()),
                Value::Text(metric.name.clone()),
                Value::Text(json_word(&metric.category)),
                Value::Text(json_word(&metric.direction)),
                Value::Double(result.value),
                Value::text_or_null(submission.dataset_name.clone()),
                Value::Text(submission.dataset_digest.clone()),
                Value::Text(tier.as_str().to_owned()),
                threshold.map_or(Value::Null(Col::Double), Value::Double),
                passed.map_or(Value::Null(Col::Bool), Value::Bool),
                Value::Text(actor.subject.clone()),
                Value::Int(now),
            ];
            sql.arg_list(values);
            sql.push(") RETURNING id");
            let row = tx.read(&sql, &[Col::Int]).await?.into_iter().next().unwrap_or_default();
            ids.push(Fields::of(row).id());
        }
        let detail = format!(
            "{} on {}: {} metrics, {} failing",
            submission.suite,
            submission.dataset_digest,
            submission.results.len(),
            failed.len()
        );
        let record = audit::Record {
            action: "evaluation.record".to_owned(),
            entity: format!("model_version/{version}"),
            before: None,
            after: None,
            detail: Some(detail),
        };
        audit::append(&mut *tx, self.dialect(), record).await?;
        let event = if failed.is_empty() { EventType::EvaluationRecorded } else { EventType::EvaluationFailed };
        let data = json!({
            "registeredModelId": current.model.to_string(),
            "modelVersionId": version.to_string(),
            "suite": submission.suite,
            "datasetDigest": submission.dataset_digest,
            "riskTier": tier,
            "failedMetrics": failed,
            "actor": actor.subject,
        });
        events::append(&mut *tx, self.dialect(), event, data).await?;
        tx.commit().await?;
        let mut results = self.evaluation_results(&mut Reader::Db(&*self.db), version).await?;
        results.retain(|result| ids.contains(&result.id));
        Ok(results)
    }

    /// A version's results, oldest first, and where they stand today.
    pub async fn evaluations(&self, version: i64) -> Result<EvaluationReport, GovernanceError> {
        let mut reader = Reader::Db(&*self.db);
        let current = self.current(&mut reader, version, false).await?;
        let tier = self.read_model(&mut reader, current.model, false).await?.risk_tier;
        let facts = self.evaluation_facts(&mut reader, version, tier).await?;
        let results = self.evaluation_results(&mut reader, version).await?;
        Ok(EvaluationReport {
            risk_tier: tier,
            required: facts.required,
            missing: facts.missing,
            failed: facts.failed,
            results,
        })
    }

    async fn evaluation_results(
        &self,
        reader: &mut Reader<'_>,
        version: i64,
    ) -> Result<Vec<EvaluationResult>, GovernanceError> {
        let mut sql = self.sql();
        sql.push(
            "SELECT id, suite, metric, category, direction, value, dataset_name, dataset_digest, risk_tier, \
             threshold, passed, recorded_by, at FROM evaluation_result WHERE model_version_id = ",
        )
        .arg(Value::Int(version))
        .push(" ORDER BY id");
        let cols = [
            Col::Int,
            Col::Text,
            Col::Text,
            Col::Text,
            Col::Text,
            Col::Double,
            Col::Text,
            Col::Text,
            Col::Text,
            Col::Double,
            Col::Bool,
            Col::Text,
            Col::Int,
        ];
        let rows = reader.read(&sql, &cols).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut fields = Fields::of(row);
                EvaluationResult {
                    id: fields.id(),
                    suite: fields.text().unwrap_or_default(),
                    metric: fields.text().unwrap_or_default(),
                    category: fields.text().unwrap_or_default(),
                    direction: fields.text().unwrap_or_default(),
                    value: fields.double().unwrap_or_default(),
                    dataset_name: fields.text(),
                    dataset_digest: fields.text().unwrap_or_default(),
                    risk_tier: fields.text().unwrap_or_default(),
                    threshold: fields.double(),
                    passed: fields.bool(),
                    recorded_by: fields.text().unwrap_or_default(),
                    at: fields.time(),
                }
            })
            .collect())
    }

    /// The required metrics for `tier` and how the version's latest results stand against them now.
    pub(super) async fn evaluation_facts(
        &self,
        reader: &mut Reader<'_>,
        version: i64,
        tier: RiskTier,
    ) -> Result<EvaluationFacts, GovernanceError> {
        let suites: BTreeMap<String, Suite> =
            self.read_suites(reader, None).await?.into_iter().map(|record| (record.name, record.suite)).collect();
        if suites.is_empty() {
            return Ok(EvaluationFacts::default());
        }
        let mut sql = self.sql();
        sql.push("SELECT suite, metric, value FROM evaluation_result WHERE model_version_id = ")
            .arg(Value::Int(version))
            .push(" ORDER BY id");
        let mut latest = Latest::new();
        for row in reader.read(&sql, &[Col::Text, Col::Text, Col::Double]).await? {
            let mut fields = Fields::of(row);
            let key = (fields.text().unwrap_or_default(), fields.text().unwrap_or_default());
            latest.insert(key, fields.double().unwrap_or(f64::NAN));
        }
        Ok(evaluations::summarize(&suites, tier, &latest))
    }
}

/// The wire word of a unit enum (`"task"`, `"higher_is_better"`).
fn json_word(value: &impl Serialize) -> String {
    serde_json::to_value(value).ok().and_then(|value| value.as_str().map(str::to_owned)).unwrap_or_default()
}

fn suite_missing(name: &str) -> GovernanceError {
    GovernanceError::NotFound(format!("evaluation suite {name:?} not found"))
}
