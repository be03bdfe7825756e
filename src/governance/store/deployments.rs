//! Deployments over the shared store: each new split is decided by the policies, recorded with its
//! audit entry and event, and projected onto the environment's Kubeflow inference services, all in one
//! transaction (the environment's row is locked first on PostgreSQL).

use serde_json::json;

use super::{Fields, GovernanceStore, Reader};
use crate::audit;
use crate::governance::GovernanceError;
use crate::governance::deployments::{self, Deployment, Split, SplitRequest};
use crate::governance::policy::{Ask, Refusal};
use crate::registry::schema::INFERENCE_SERVICE;
use crate::registry::sql_store::SqlStore;
use crate::registry::{Attach, Draft, MetaValue, Scalar};
use crate::store::now_millis;
use crate::store::outbox::{self as events, EventType};
use crate::store::sql::{Col, Transaction, Value};

/// What a new deployment is.
enum Change {
    Deploy,
    /// Restores the split of deployment `restores`.
    Rollback {
        restores: i64,
    },
}

impl GovernanceStore {
    /// Deploys a split of `model`'s versions to `environment`.
    pub async fn deploy(
        &self,
        environment: i64,
        model: i64,
        splits: &[SplitRequest],
        comment: Option<String>,
    ) -> Result<Deployment, GovernanceError> {
        let splits = deployments::check_splits(splits)?;
        let mut tx = self.db.begin().await?;
        let id = self.apply(&mut tx, environment, model, &splits, Change::Deploy, comment).await?;
        tx.commit().await?;
        self.deployment(id).await
    }

    /// Returns `model` in `environment` to its last good split.
    pub async fn rollback(
        &self,
        environment: i64,
        model: i64,
        comment: Option<String>,
    ) -> Result<Deployment, GovernanceError> {
        let mut tx = self.db.begin().await?;
        self.environment_name(&mut tx, environment).await?;
        let history = self.read_deployments(&mut Reader::Tx(&mut *tx), environment, Some(model)).await?;
        let Some(active) = history.iter().find(|deployment| deployment.status == "active") else {
            return Err(GovernanceError::Illegal(format!(
                "registered model {model} has no deployment in serving environment {environment}"
            )));
        };
        // Older than the active split and, for a rollback, than the split it restored.
        let before = active.restores.as_deref().unwrap_or(&active.id).parse::<i64>().unwrap_or_default();
        let good = history.iter().find(|deployment| {
            deployment.status == "superseded" && deployment.id.parse::<i64>().unwrap_or_default() < before
        });
        let Some(good) = good else {
            return Err(GovernanceError::Illegal(format!(
                "registered model {model} has no earlier good deployment in serving environment {environment} \
                 to roll back to"
            )));
        };
        let splits: Vec<(i64, u8)> = good
            .splits
            .iter()
            .map(|split| (split.model_version_id.parse().unwrap_or_default(), split.weight))
            .collect();
        let restores = good.id.parse().unwrap_or_default();
        let id = self.apply(&mut tx, environment, model, &splits, Change::Rollback { restores }, comment).await?;
        tx.commit().await?;
        self.deployment(id).await
    }

    /// An environment's deployments, newest first (of one model, or of every model).
    pub async fn deployments(&self, environment: i64, model: Option<i64>) -> Result<Vec<Deployment>, GovernanceError> {
        let mut reader = Reader::Db(&*self.db);
        let mut sql = self.sql();
        sql.push("SELECT id FROM serving_environment WHERE id = ").arg(Value::Int(environment));
        if reader.read(&sql, &[Col::Int]).await?.is_empty() {
            return Err(environment_missing(environment));
        }
        self.read_deployments(&mut reader, environment, model).await
    }

    async fn deployment(&self, id: i64) -> Result<Deployment, GovernanceError> {
        let mut sql = self.deployment_select();
        sql.push(" WHERE id = ").arg(Value::Int(id));
        let found = self.deployment_rows(&mut Reader::Db(&*self.db), &sql).await?.into_iter().next();
        found.ok_or_else(|| GovernanceError::NotFound(format!("deployment {id} not found")))
    }

    async fn read_deployments(
        &self,
        reader: &mut Reader<'_>,
        environment: i64,
        model: Option<i64>,
    ) -> Result<Vec<Deployment>, GovernanceError> {
        let mut sql = self.deployment_select();
        sql.push(" WHERE serving_environment_id = ").arg(Value::Int(environment));
        if let Some(model) = model {
            sql.push(" AND registered_model_id = ").arg(Value::Int(model));
        }
        sql.push(" ORDER BY id DESC");
        self.deployment_rows(reader, &sql).await
    }

    pub(super) fn deployment_select(&self) -> crate::store::sql::Sql {
        let mut sql = self.sql();
        sql.push(
            "SELECT id, serving_environment_id, registered_model_id, splits, kind, status, restores, policy_version, \
             actor, comment, at FROM deployment",
        );
        sql
    }

    pub(super) async fn deployment_rows(
        &self,
        reader: &mut Reader<'_>,
        sql: &crate::store::sql::Sql,
    ) -> Result<Vec<Deployment>, GovernanceError> {
        let cols = [
            Col::Int,
            Col::Int,
            Col::Int,
            Col::Text,
            Col::Text,
            Col::Text,
            Col::Int,
            Col::Text,
            Col::Text,
            Col::Text,
            Col::Int,
        ];
        let rows = reader.read(sql, &cols).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut fields = Fields::of(row);
                Deployment {
                    id: fields.id(),
                    serving_environment_id: fields.id(),
                    registered_model_id: fields.id(),
                    splits: fields.text().and_then(|json| serde_json::from_str(&json).ok()).unwrap_or_default(),
                    kind: fields.text().unwrap_or_default(),
                    status: fields.text().unwrap_or_default(),
                    restores: fields.int().map(|id| id.to_string()),
                    policy_version: fields.text().unwrap_or_default(),
                    actor: fields.text().unwrap_or_default(),
                    comment: fields.text(),
                    at: fields.time(),
                }
            })
            .collect())
    }

    /// The environment's name, its row locked on PostgreSQL so deployments to it are serialized.
    async fn environment_name(
        &self,
        tx: &mut Box<dyn Transaction>,
        environment: i64,
    ) -> Result<String, GovernanceError> {
        let mut sql = self.sql();
        sql.push("SELECT e.name FROM serving_environment e WHERE e.id = ").arg(Value::Int(environment));
        self.lock(&mut sql, "e");
        let row = tx.read(&sql, &[Col::Text]).await?.into_iter().next();
        row.and_then(|row| Fields::of(row).text()).ok_or_else(|| environment_missing(environment))
    }

    /// Decides, records and projects a new split; returns the deployment's id.
    async fn apply(
        &self,
        tx: &mut Box<dyn Transaction>,
        environment: i64,
        model: i64,
        splits: &[(i64, u8)],
        change: Change,
        comment: Option<String>,
    ) -> Result<i64, GovernanceError> {
        let actor = audit::current();
        let environment_name = self.environment_name(tx, environment).await?;
        self.read_model(&mut Reader::Tx(&mut **tx), model, false).await?;
        let policies = self.policies_in_force(&mut Reader::Tx(&mut **tx)).await?;
        let mut refusals: Vec<Refusal> = Vec::new();
        for &(version, weight) in splits {
            let current = self.current(&mut Reader::Tx(&mut **tx), version, false).await?;
            if current.model != model {
                return Err(GovernanceError::Invalid(format!(
                    "model version {version} belongs to registered model {}, not {model}",
                    current.model
                )));
            }
            let facts = self.facts(&mut Reader::Tx(&mut **tx), &current, version).await?;
            let ask = Ask::Deploy { environment: environment_name.clone(), weight };
            let verdict = self.policy.engine.decide(&policies, &actor.subject, version, &ask, &facts);
            for mut refusal in verdict.refusals {
                refusal.details =
                    refusal.details.into_iter().map(|detail| format!("model version {version}: {detail}")).collect();
                refusals.push(refusal);
            }
        }
        if !refusals.is_empty() {
            let asked = format!("the deployment to serving environment {environment_name:?}");
            return Err(GovernanceError::Refused { asked, refusals, policy_version: policies.version.clone() });
        }

        // The split in force is replaced; its versions that leave the split drain to 0.
        let mut sql = self.deployment_select();
        sql.push(" WHERE serving_environment_id = ")
            .arg(Value::Int(environment))
            .push(" AND registered_model_id = ")
            .arg(Value::Int(model))
            .push(" AND status = 'active'");
        let previous = self.deployment_rows(&mut Reader::Tx(&mut **tx), &sql).await?.into_iter().next();
        if let Some(previous) = &previous {
            let status = match change {
                Change::Deploy => "superseded",
                Change::Rollback { .. } => "rolled_back",
            };
            let mut sql = self.sql();
            sql.push("UPDATE deployment SET status = ")
                .arg(Value::Text(status.to_owned()))
                .push(" WHERE id = ")
                .arg(Value::Int(previous.id.parse().unwrap_or_default()));
            tx.execute(&sql).await?;
        }
        let mut projected = Vec::new();
        for &(version, weight) in splits {
            let service = self.project(tx, environment, model, version, weight).await?;
            projected.push(Split {
                model_version_id: version.to_string(),
                weight,
                inference_service_id: service.to_string(),
            });
        }
        for split in previous.iter().flat_map(|previous| &previous.splits) {
            let version = split.model_version_id.parse().unwrap_or_default();
            if !splits.iter().any(|(kept, _)| *kept == version) {
                self.project(tx, environment, model, version, 0).await?;
            }
        }

        let (kind, restores, event) = match change {
            Change::Deploy => ("deploy", None, EventType::DeploymentChanged),
            Change::Rollback { restores } => ("rollback", Some(restores), EventType::DeploymentRolledBack),
        };
        let splits_json = serde_json::to_string(&projected).unwrap_or_default();
        let mut sql = self.sql();
        sql.push(
            "INSERT INTO deployment (serving_environment_id, registered_model_id, splits, kind, status, restores, \
             policy_version, actor, comment, at) VALUES (",
        );
        let values = [
            Value::Int(environment),
            Value::Int(model),
            Value::Text(splits_json),
            Value::Text(kind.to_owned()),
            Value::Text("active".to_owned()),
            Value::int_or_null(restores),
            Value::Text(policies.version.clone()),
            Value::Text(actor.subject.clone()),
            Value::text_or_null(comment.clone()),
            Value::Int(now_millis()),
        ];
        sql.arg_list(values);
        sql.push(") RETURNING id");
        let row = tx.read(&sql, &[Col::Int]).await?.into_iter().next().unwrap_or_default();
        let id = Fields::of(row).int().unwrap_or_default();
        let described: Vec<String> =
            projected.iter().map(|split| format!("version {} {}%", split.model_version_id, split.weight)).collect();
        let record = audit::Record {
            action: format!("deployment.{kind}"),
            entity: format!("serving_environment/{environment}"),
            before: None,
            after: None,
            detail: Some(format!("registered model {model}: {}", described.join(", "))),
        };
        audit::append(&mut **tx, self.dialect(), record).await?;
        let data = json!({
            "deploymentId": id.to_string(),
            "servingEnvironmentId": environment.to_string(),
            "servingEnvironment": environment_name,
            "registeredModelId": model.to_string(),
            "splits": projected,
            "restores": restores.map(|id| id.to_string()),
            "actor": actor.subject,
            "comment": comment,
        });
        events::append(&mut **tx, self.dialect(), event, data).await?;
        Ok(id)
    }

    /// Creates or updates the inference service of `version` in `environment` to take `weight`; returns
    /// its id.
    async fn project(
        &self,
        tx: &mut Box<dyn Transaction>,
        environment: i64,
        model: i64,
        version: i64,
        weight: u8,
    ) -> Result<i64, GovernanceError> {
        let name = format!("modelcat-{model}-{version}");
        let mut sql = self.sql();
        sql.push("SELECT id FROM inference_service WHERE serving_environment_id = ")
            .arg(Value::Int(environment))
            .push(" AND name = ")
            .arg(Value::Text(name.clone()));
        let existing = tx.read(&sql, &[Col::Int]).await?.into_iter().next().and_then(|row| Fields::of(row).int());
        let state = if weight > 0 { "DEPLOYED" } else { "UNDEPLOYED" };
        let properties = [("traffic_weight".to_owned(), MetaValue::Int(i64::from(weight)))].into_iter().collect();
        let registry = SqlStore::new(self.db.clone());
        match existing {
            Some(id) => {
                let values = [("desiredState", Scalar::Text(state.to_owned()))].into_iter().collect();
                let draft = Draft { values, properties: Some(properties) };
                registry.update_in(tx, &INFERENCE_SERVICE, id, draft, None).await?;
                Ok(id)
            }
            None => {
                let values = [
                    ("name", Scalar::Text(name)),
                    ("registeredModelId", Scalar::Int(model)),
                    ("servingEnvironmentId", Scalar::Int(environment)),
                    ("modelVersionId", Scalar::Int(version)),
                    ("desiredState", Scalar::Text(state.to_owned())),
                ]
                .into_iter()
                .collect();
                let draft = Draft { values, properties: Some(properties) };
                Ok(registry.create_in(tx, &INFERENCE_SERVICE, draft, Attach::Nothing).await?.id)
            }
        }
    }

    /// The weight `version` takes in any environment's split in force, if above 0.
    pub(super) async fn serving_weight(
        &self,
        tx: &mut dyn Transaction,
        version: i64,
    ) -> Result<Option<(String, u8)>, GovernanceError> {
        let mut sql = self.sql();
        sql.push("SELECT serving_environment_id, splits FROM deployment WHERE status = 'active' AND registered_model_id = (SELECT registered_model_id FROM model_version WHERE id = ")
            .arg(Value::Int(version))
            .push(")");
        for row in tx.read(&sql, &[Col::Int, Col::Text]).await? {
            let mut fields = Fields::of(row);
            let environment = fields.id();
            let splits: Vec<Split> =
                fields.text().and_then(|json| serde_json::from_str(&json).ok()).unwrap_or_default();
            let version = version.to_string();
            if let Some(split) = splits.iter().find(|split| split.model_version_id == version && split.weight > 0) {
                return Ok(Some((environment, split.weight)));
            }
        }
        Ok(None)
    }
}

fn environment_missing(environment: i64) -> GovernanceError {
    GovernanceError::NotFound(format!("serving environment {environment} not found"))
}
