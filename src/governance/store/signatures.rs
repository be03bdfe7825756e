//! Model signature bundles recorded for a version: each verified against the trusted keys when it is
//! recorded, and kept with its outcome (verified, or failed with the reason).

use serde::Serialize;
use serde_json::json;

use super::{Fields, GovernanceStore, Reader};
use crate::audit;
use crate::governance::GovernanceError;
use crate::governance::lifecycle::State;
use crate::governance::policy::{ArtifactFacts, SignatureFacts};
use crate::governance::signatures::{self, Outcome, Resource, Verified};
use crate::store::now_millis;
use crate::store::outbox::{self as events, EventType};
use crate::store::sql::{Col, Value};

/// A recorded bundle and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureRecord {
    pub id: String,
    /// `verified` or `failed`.
    pub status: String,
    pub reason: Option<String>,
    pub key_id: Option<String>,
    pub subject_digest: Option<String>,
    pub resources: Vec<Resource>,
    /// The SHA-256 of the bundle as received.
    pub bundle_sha256: String,
    pub recorded_by: String,
    pub at: String,
}

impl GovernanceStore {
    /// Verifies a bundle for a version and records the outcome; a body that is not a bundle is refused.
    pub async fn record_signature(&self, version: i64, bundle: &[u8]) -> Result<SignatureRecord, GovernanceError> {
        let parsed = signatures::parse(bundle)?;
        let outcome = signatures::verify(&parsed, &self.trusted_keys);
        let actor = audit::current();
        let mut tx = self.db.begin().await?;
        let current = self.current(&mut Reader::Tx(&mut *tx), version, true).await?;
        if current.state == State::Retired {
            return Err(GovernanceError::Illegal(format!("model version {version} is retired")));
        }
        let bundle_sha256 = crate::hex::sha256(bundle);
        let (status, reason, signed) = match &outcome {
            Outcome::Verified(verified) => ("verified", None, serde_json::to_string(verified).ok()),
            Outcome::Failed { reason } => ("failed", Some(reason.clone()), None),
        };
        let mut sql = self.sql();
        sql.push(
            "INSERT INTO version_signature (model_version_id, status, reason, signed, bundle, bundle_sha256, \
             recorded_by, at) VALUES (",
        )
        .arg(Value::Int(version))
        .push(", ")
        .arg(Value::Text(status.to_owned()))
        .push(", ")
        .arg(Value::text_or_null(reason.clone()))
        .push(", ")
        .arg(Value::text_or_null(signed))
        .push(", ")
        .arg(Value::Text(String::from_utf8_lossy(bundle).into_owned()))
        .push(", ")
        .arg(Value::Text(bundle_sha256.clone()))
        .push(", ")
        .arg(Value::Text(actor.subject.clone()))
        .push(", ")
        .arg(Value::Int(now_millis()))
        .push(") RETURNING id");
        let row = tx.read(&sql, &[Col::Int]).await?.into_iter().next().unwrap_or_default();
        let id = Fields::of(row).int().unwrap_or_default();
        let detail = match &outcome {
            Outcome::Verified(verified) => format!("verified with key {}", verified.key_id),
            Outcome::Failed { reason } => format!("failed: {reason}"),
        };
        let record = audit::Record {
            action: "signature.record".to_owned(),
            entity: format!("model_version/{version}"),
            before: None,
            after: Some(bundle_sha256),
            detail: Some(detail),
        };
        audit::append(&mut *tx, self.dialect(), record).await?;
        let (event, key_id) = match &outcome {
            Outcome::Verified(verified) => (EventType::SignatureVerified, Some(verified.key_id.clone())),
            Outcome::Failed { .. } => (EventType::SignatureFailed, None),
        };
        let data = json!({
            "registeredModelId": current.model.to_string(),
            "modelVersionId": version.to_string(),
            "signatureId": id.to_string(),
            "status": status,
            "reason": reason,
            "keyId": key_id,
            "actor": actor.subject,
        });
        events::append(&mut *tx, self.dialect(), event, data).await?;
        tx.commit().await?;
        let records = self.signatures(version).await?;
        Ok(records.into_iter().find(|record| record.id == id.to_string()).expect("the record just committed"))
    }

    /// A version's signature records, oldest first.
    pub async fn signatures(&self, version: i64) -> Result<Vec<SignatureRecord>, GovernanceError> {
        let mut reader = Reader::Db(&*self.db);
        self.current(&mut reader, version, false).await?;
        let rows = self.signature_rows(&mut reader, version).await?;
        Ok(rows.into_iter().map(|(record, _)| record).collect())
    }

    async fn signature_rows(
        &self,
        reader: &mut Reader<'_>,
        version: i64,
    ) -> Result<Vec<(SignatureRecord, Option<Verified>)>, GovernanceError> {
        let mut sql = self.sql();
        sql.push(
            "SELECT id, status, reason, signed, bundle_sha256, recorded_by, at FROM version_signature \
             WHERE model_version_id = ",
        )
        .arg(Value::Int(version))
        .push(" ORDER BY id");
        let cols = [Col::Int, Col::Text, Col::Text, Col::Text, Col::Text, Col::Text, Col::Int];
        let rows = reader.read(&sql, &cols).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut fields = Fields::of(row);
                let id = fields.id();
                let status = fields.text().unwrap_or_default();
                let reason = fields.text();
                let verified: Option<Verified> = fields.text().and_then(|json| serde_json::from_str(&json).ok());
                let record = SignatureRecord {
                    id,
                    status,
                    reason,
                    key_id: verified.as_ref().map(|verified| verified.key_id.clone()),
                    subject_digest: verified.as_ref().map(|verified| verified.subject_digest.clone()),
                    resources: verified.as_ref().map(|verified| verified.resources.clone()).unwrap_or_default(),
                    bundle_sha256: fields.text().unwrap_or_default(),
                    recorded_by: fields.text().unwrap_or_default(),
                    at: fields.time(),
                };
                (record, verified)
            })
            .collect())
    }

    /// How the version's bundles stand against its model artifacts now: a verified bundle counts when
    /// its signed digests cover every artifact's `sha256`.
    pub(super) async fn signature_facts(
        &self,
        reader: &mut Reader<'_>,
        version: i64,
        artifacts: &[ArtifactFacts],
    ) -> Result<SignatureFacts, GovernanceError> {
        let mut facts = SignatureFacts::default();
        for (record, verified) in self.signature_rows(reader, version).await? {
            let Some(verified) = verified else {
                let reason = record.reason.unwrap_or_default();
                facts.problems.push(format!("signature {} failed verification: {reason}", record.id));
                continue;
            };
            let uncovered: Vec<&str> = artifacts
                .iter()
                .filter(|artifact| !artifact.sha256.as_deref().is_some_and(|digest| verified.covers(digest)))
                .map(|artifact| artifact.name.as_str())
                .collect();
            if artifacts.is_empty() {
                facts.problems.push(format!("signature {} has no model artifact to cover", record.id));
            } else if uncovered.is_empty() {
                facts.verified += 1;
            } else {
                facts.problems.push(format!(
                    "signature {} (key {}) does not sign the digest of model artifact {}",
                    record.id,
                    verified.key_id,
                    uncovered.iter().map(|name| format!("{name:?}")).collect::<Vec<_>>().join(", ")
                ));
            }
        }
        Ok(facts)
    }
}
