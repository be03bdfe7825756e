//! The policy sets: each change stores a new version (the latest is in force), and every replica
//! compiles the version in force once, when it first sees it.

use std::sync::Arc;

use serde::Serialize;

use super::{Fields, GovernanceStore, Reader};
use crate::audit;
use crate::governance::GovernanceError;
use crate::governance::policy::{Policies, PolicyError};
use crate::store::now_millis;
use crate::store::sql::{Col, DbError, Value};

/// A policy set as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyVersion {
    pub version: String,
    pub policies: String,
    pub comment: Option<String>,
    /// Absent for the built-in defaults.
    pub created_by: Option<String>,
    pub created_at: Option<String>,
}

/// The largest policy set accepted, in bytes.
const MAX_POLICY_BYTES: usize = 256 * 1024;
/// The deepest nesting of brackets accepted in a policy set.
const MAX_NESTING: usize = 32;

impl GovernanceStore {
    /// The policies in force, as seen by `reader` (inside a transition's transaction, the version it
    /// commits under).
    pub(super) async fn policies_in_force(&self, reader: &mut Reader<'_>) -> Result<Arc<Policies>, GovernanceError> {
        let mut sql = self.sql();
        sql.push("SELECT MAX(version) FROM governance_policy");
        let row = reader.read(&sql, &[Col::Int]).await?.into_iter().next().unwrap_or_default();
        let Some(latest) = Fields::of(row).int() else {
            return Ok(self.policy.builtin.clone());
        };
        let label = label(latest);
        if let Some(cached) = self.policy.cached.read().unwrap_or_else(|poison| poison.into_inner()).as_ref()
            && cached.version == label
        {
            return Ok(cached.clone());
        }
        let mut sql = self.sql();
        sql.push("SELECT policies FROM governance_policy WHERE version = ").arg(Value::Int(latest));
        let row = reader.read(&sql, &[Col::Text]).await?.into_iter().next().unwrap_or_default();
        let text = Fields::of(row).text().unwrap_or_default();
        // It was validated when stored; a schema that changed since makes it fail closed, with the reason.
        let compiled = Arc::new(self.policy.engine.compile(label, &text).map_err(|error| {
            GovernanceError::Invalid(format!("the policies in force no longer validate, store a new version: {error}"))
        })?);
        *self.policy.cached.write().unwrap_or_else(|poison| poison.into_inner()) = Some(compiled.clone());
        Ok(compiled)
    }

    /// The policy set in force.
    pub async fn current_policies(&self) -> Result<PolicyVersion, GovernanceError> {
        let policies = self.policies_in_force(&mut Reader::Db(&*self.db)).await?;
        match policies.version.strip_prefix('v').and_then(|number| number.parse().ok()) {
            Some(number) => self.policy_version(number).await,
            None => Ok(PolicyVersion {
                version: policies.version.clone(),
                policies: policies.text.clone(),
                comment: Some("the built-in defaults".to_owned()),
                created_by: None,
                created_at: None,
            }),
        }
    }

    /// Every stored policy version, newest first (without their text).
    pub async fn policy_versions(&self) -> Result<Vec<PolicyVersion>, GovernanceError> {
        let mut sql = self.sql();
        sql.push("SELECT version, '', comment, created_by, created_at FROM governance_policy ORDER BY version DESC");
        self.read_policy_versions(&sql).await
    }

    /// One stored policy version (`v3`, or `3`).
    pub async fn policy_version(&self, version: i64) -> Result<PolicyVersion, GovernanceError> {
        let mut sql = self.sql();
        sql.push("SELECT version, policies, comment, created_by, created_at FROM governance_policy WHERE version = ")
            .arg(Value::Int(version));
        self.read_policy_versions(&sql)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| GovernanceError::NotFound(format!("policy version v{version} not found")))
    }

    async fn read_policy_versions(&self, sql: &crate::store::sql::Sql) -> Result<Vec<PolicyVersion>, GovernanceError> {
        let cols = [Col::Int, Col::Text, Col::Text, Col::Text, Col::Int];
        let rows = self.db.read(sql, &cols).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut fields = Fields::of(row);
                PolicyVersion {
                    version: label(fields.int().unwrap_or_default()),
                    policies: fields.text().unwrap_or_default(),
                    comment: fields.text(),
                    created_by: fields.text(),
                    created_at: Some(fields.time()),
                }
            })
            .collect())
    }

    /// Validates a policy set without storing it.
    pub fn check_policies(&self, text: &str) -> Result<Policies, PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(PolicyError { problems: vec![format!("a policy set is at most {MAX_POLICY_BYTES} bytes")] });
        }
        // The parser recurses on nesting: bound it before parsing (anyone may try a draft).
        if nesting(text) > MAX_NESTING {
            return Err(PolicyError { problems: vec![format!("brackets nest at most {MAX_NESTING} levels deep")] });
        }
        self.policy.engine.compile("draft".to_owned(), text)
    }

    /// Validates a policy set and stores it as the next version, which is then in force.
    pub async fn put_policies(&self, text: String, comment: Option<String>) -> Result<PolicyVersion, GovernanceError> {
        self.check_policies(&text).map_err(|error| GovernanceError::InvalidPolicies(error.problems))?;
        let actor = audit::current();
        let mut tx = self.db.begin().await?;
        let mut sql = self.sql();
        sql.push("SELECT COALESCE(MAX(version), 0) + 1 FROM governance_policy");
        let row = tx.read(&sql, &[Col::Int]).await?.into_iter().next().unwrap_or_default();
        let version = Fields::of(row).int().unwrap_or(1);
        let mut sql = self.sql();
        sql.push("INSERT INTO governance_policy (version, policies, comment, created_by, created_at) VALUES (")
            .arg(Value::Int(version))
            .push(", ")
            .arg(Value::Text(text.clone()))
            .push(", ")
            .arg(Value::text_or_null(comment.clone()))
            .push(", ")
            .arg(Value::Text(actor.subject.clone()))
            .push(", ")
            .arg(Value::Int(now_millis()))
            .push(")");
        match tx.execute(&sql).await {
            Err(DbError::Unique(_)) => {
                return Err(GovernanceError::Illegal("another policy change committed first: try again".to_owned()));
            }
            other => other?,
        };
        let record = audit::Record {
            action: "policy.update".to_owned(),
            entity: "governance/policies".to_owned(),
            before: None,
            after: Some(crate::hex::sha256(text.as_bytes())),
            detail: Some(label(version)),
        };
        audit::append(&mut *tx, self.dialect(), record).await?;
        tx.commit().await?;
        self.policy_version(version).await
    }
}

/// The deepest nesting of brackets in `text` (those in strings and comments count too).
fn nesting(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    for byte in text.bytes() {
        match byte {
            b'(' | b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// The label of a stored version.
fn label(version: i64) -> String {
    format!("v{version}")
}
