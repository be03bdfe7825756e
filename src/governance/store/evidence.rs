//! The files of a version's evidence bundle ([`crate::governance::evidence`] packs and signs them): its
//! model card, artifact digests and licenses, evaluations with their thresholds, signatures, policy
//! decisions with the policy texts that made them, approvals and transitions, deployments, and the
//! audit entries that prove them (those chained so far).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value as Json, json};

use super::{Fields, GovernanceStore, Reader};
use crate::api::registry::WireVersion;
use crate::api::registry::wire::Wire;
use crate::governance::GovernanceError;
use crate::governance::evidence::pretty;
use crate::governance::policy::DEFAULT_POLICIES;
use crate::registry::RegistryStore;
use crate::registry::schema::{MODEL_VERSION, REGISTERED_MODEL};
use crate::registry::sql_store::SqlStore;
use crate::store::audit::{self as audit_log, Filter};
use crate::store::sql::{Col, Value};

/// The most audit entries a bundle carries per entity.
const AUDIT_LIMIT: i64 = 10_000;

impl GovernanceStore {
    /// A version's model id and its bundle's files by name.
    pub async fn evidence_files(&self, version: i64) -> Result<(i64, BTreeMap<String, Vec<u8>>), GovernanceError> {
        let mut reader = Reader::Db(&*self.db);
        let current = self.current(&mut reader, version, false).await?;
        let model = current.model;
        let registry = SqlStore::new(self.db.clone());
        let model_record = registry.get(&REGISTERED_MODEL, model).await?;
        let version_record = registry.get(&MODEL_VERSION, version).await?;
        // As the Kubeflow API (v1) renders them, which is what the registry's clients read.
        let record_json = |record: &crate::registry::Record| json!(Wire { record, version: WireVersion::V1 });
        let mut files = BTreeMap::new();
        let mut add = |name: &str, value: Json| files.insert(name.to_owned(), pretty(&value));

        add(
            "model-card.json",
            json!({
                "registeredModel": record_json(&model_record),
                "modelVersion": record_json(&version_record),
                "governance": self.model(model).await?,
                "lifecycle": self.version(version).await?,
            }),
        );
        let facts = self.facts(&mut reader, &current, version).await?;
        let artifacts: Vec<Json> = facts
            .artifacts
            .iter()
            .map(|artifact| {
                json!({
                    "name": artifact.name,
                    "sha256": artifact.sha256,
                    "size": artifact.size,
                    "license": artifact.license.clone().or_else(|| facts.model_license.clone()),
                })
            })
            .collect();
        add("artifacts.json", json!(artifacts));
        add("evaluations.json", json!({"suites": self.suites().await?, "report": self.evaluations(version).await?}));
        add("signatures.json", json!(self.signatures(version).await?));
        add("transitions.json", json!(self.transitions(version).await?));
        add("reviews.json", json!(self.reviews(version).await?));

        // Each transition's decision, the facts it was given, and the text of every policy version named.
        let mut sql = self.sql();
        sql.push(
            "SELECT id, to_state, policy_version, policy_facts FROM version_transition WHERE policy_version IS NOT NULL \
             AND model_version_id = ",
        )
        .arg(Value::Int(version))
        .push(" ORDER BY id");
        let mut decisions = Vec::new();
        let mut versions = BTreeSet::new();
        for row in reader.read(&sql, &[Col::Int, Col::Text, Col::Text, Col::Text]).await? {
            let mut fields = Fields::of(row);
            let (id, to, policy_version) = (fields.id(), fields.text(), fields.text().unwrap_or_default());
            let facts: Json = fields.text().and_then(|text| serde_json::from_str(&text).ok()).unwrap_or_default();
            decisions.push(json!({"transitionId": id, "to": to, "decision": "allow", "policyVersion": policy_version, "facts": facts}));
            versions.insert(policy_version);
        }
        let deployments: Vec<_> = self
            .model_deployments(model)
            .await?
            .into_iter()
            .filter(|deployment| deployment.splits.iter().any(|split| split.model_version_id == version.to_string()))
            .collect();
        versions.extend(deployments.iter().map(|deployment| deployment.policy_version.clone()));
        add("policy-decisions.json", json!(decisions));
        add("deployments.json", json!(deployments));
        let builtin = self.policy.builtin.version.clone();
        for label in versions {
            let text = match label.strip_prefix('v').and_then(|number| number.parse().ok()) {
                Some(number) => self.policy_version(number).await?.policies,
                None if label == builtin => DEFAULT_POLICIES.to_owned(),
                None => format!("// {label}: the built-in policies of another modelcat release\n"),
            };
            files.insert(format!("policies/{label}.cedar"), text.into_bytes());
        }

        let mut entries = Vec::new();
        for entity in [format!("registered_model/{model}"), format!("model_version/{version}")] {
            let filter = Filter { entity: Some(entity), limit: AUDIT_LIMIT, ..Filter::default() };
            entries.extend(audit_log::page(&*self.db, &filter).await?);
        }
        entries.sort_by_key(|stored| stored.entry.seq);
        files.insert("audit.json".to_owned(), pretty(&entries));
        Ok((model, files))
    }

    /// Every deployment of a model, in any environment, oldest first.
    async fn model_deployments(
        &self,
        model: i64,
    ) -> Result<Vec<crate::governance::deployments::Deployment>, GovernanceError> {
        let mut sql = self.deployment_select();
        sql.push(" WHERE registered_model_id = ").arg(Value::Int(model)).push(" ORDER BY id");
        self.deployment_rows(&mut Reader::Db(&*self.db), &sql).await
    }
}
