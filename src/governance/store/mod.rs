//! The governance tables (migrations `0010_governance`, `0012_policies_evaluations_signatures` and `0013_deployments`) over
//! the shared store: reads, and the writes that each commit one change with its audit entry and its
//! outbox event. This file holds the model's governance fields and the shared helpers; [`versions`] the
//! lifecycle, reviews and the policies' facts; [`policies`] the policy versions; [`evaluations`] suites
//! and results; [`signatures`] signature bundles; [`deployments`] traffic splits and their inference
//! services; [`evidence`] the files of a version's evidence bundle; [`aliases`] the aliases.
//!
//! Writes to one version (or one model's aliases and fields) are serialized: SQLite has one writer, and
//! on PostgreSQL each write first locks the version's (or model's) row.

mod aliases;
mod deployments;
pub mod evaluations;
mod evidence;
mod policies;
pub mod signatures;
mod versions;

use std::sync::{Arc, RwLock};

use serde_json::json;

use super::lifecycle::{RiskTier, State};
use super::policy::{Engine, Policies};
use super::signatures::TrustedKey;
use super::{GovernanceError, ModelGovernance, ModelPatch, timestamp};
use crate::audit;
use crate::store::now_millis;
use crate::store::outbox::{self as events, EventType};
use crate::store::sql::{Backend, Col, DbError, Dialect, Row, Sql, Transaction, Value};

pub use policies::PolicyVersion;

/// Governance over the shared store.
#[derive(Clone)]
pub struct GovernanceStore {
    db: Arc<dyn Backend>,
    policy: Arc<PolicyState>,
    trusted_keys: Arc<[TrustedKey]>,
}

/// The policy engine, the built-in policies, and the last stored version compiled.
struct PolicyState {
    engine: Engine,
    builtin: Arc<Policies>,
    cached: RwLock<Option<Arc<Policies>>>,
}

/// Reads outside a transaction, or inside the caller's.
enum Reader<'a> {
    Db(&'a dyn Backend),
    Tx(&'a mut dyn Transaction),
}

impl Reader<'_> {
    async fn read(&mut self, sql: &Sql, cols: &[Col]) -> Result<Vec<Row>, DbError> {
        match self {
            Reader::Db(db) => db.read(sql, cols).await,
            Reader::Tx(tx) => tx.read(sql, cols).await,
        }
    }
}

/// A version's lifecycle row (a draft without one).
struct Current {
    model: i64,
    state: State,
    submitted_by: Option<String>,
    round: i64,
}

/// Takes the values of a row in order; a missing value reads as NULL.
struct Fields(std::vec::IntoIter<Value>);

impl Fields {
    fn of(row: Row) -> Fields {
        Fields(row.into_iter())
    }
    fn int(&mut self) -> Option<i64> {
        self.0.next().and_then(|value| value.as_int())
    }
    fn text(&mut self) -> Option<String> {
        self.0.next().and_then(Value::into_text)
    }
    fn double(&mut self) -> Option<f64> {
        match self.0.next() {
            Some(Value::Double(number)) => Some(number),
            Some(Value::Int(number)) => Some(number as f64),
            _ => None,
        }
    }
    fn bool(&mut self) -> Option<bool> {
        match self.0.next() {
            Some(Value::Bool(flag)) => Some(flag),
            Some(Value::Int(number)) => Some(number != 0),
            _ => None,
        }
    }
    fn id(&mut self) -> String {
        self.int().unwrap_or_default().to_string()
    }
    fn time(&mut self) -> String {
        timestamp(self.int().unwrap_or_default())
    }
}

fn json_list(text: Option<String>) -> Vec<String> {
    text.and_then(|text| serde_json::from_str(&text).ok()).unwrap_or_default()
}

fn digest(value: &impl serde::Serialize) -> Option<String> {
    Some(crate::hex::sha256(serde_json::to_string(value).unwrap_or_default().as_bytes()))
}

impl GovernanceStore {
    /// Governance over `db`; model signatures are verified against `trusted_keys`.
    pub fn new(db: Arc<dyn Backend>, trusted_keys: Vec<TrustedKey>) -> Self {
        let engine = Engine::new();
        let builtin = Arc::new(engine.builtin());
        let policy = Arc::new(PolicyState { engine, builtin, cached: RwLock::new(None) });
        GovernanceStore { db, policy, trusted_keys: trusted_keys.into() }
    }

    fn sql(&self) -> Sql {
        Sql::new(self.db.dialect())
    }

    fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    /// ` FOR UPDATE OF <alias>` on PostgreSQL (SQLite's writer transaction already excludes others).
    fn lock(&self, sql: &mut Sql, alias: &str) {
        if self.dialect() == Dialect::Postgres {
            sql.push(&format!(" FOR UPDATE OF {alias}"));
        }
    }

    // ---- registered models -------------------------------------------------------------------------

    /// A model's governance fields (the defaults until someone sets them).
    pub async fn model(&self, model: i64) -> Result<ModelGovernance, GovernanceError> {
        self.read_model(&mut Reader::Db(&*self.db), model, false).await
    }

    async fn read_model(
        &self,
        reader: &mut Reader<'_>,
        model: i64,
        lock: bool,
    ) -> Result<ModelGovernance, GovernanceError> {
        let mut sql = self.sql();
        sql.push(
            "SELECT g.owners, g.model_group, g.risk_tier, g.tags, g.updated_by, g.updated_at FROM registered_model r \
             LEFT JOIN model_governance g ON g.registered_model_id = r.id WHERE r.id = ",
        )
        .arg(Value::Int(model));
        if lock {
            self.lock(&mut sql, "r");
        }
        let cols = [Col::Text, Col::Text, Col::Text, Col::Text, Col::Text, Col::Int];
        let row = reader.read(&sql, &cols).await?.into_iter().next();
        let mut fields = Fields::of(row.ok_or_else(|| model_missing(model))?);
        Ok(ModelGovernance {
            registered_model_id: model.to_string(),
            owners: json_list(fields.text()),
            group: fields.text(),
            risk_tier: fields.text().and_then(|tier| RiskTier::parse(&tier)).unwrap_or_default(),
            tags: json_list(fields.text()),
            updated_by: fields.text(),
            updated_at: fields.int().map(timestamp),
        })
    }

    /// Applies `patch` to a model's governance fields.
    pub async fn update_model(&self, model: i64, patch: ModelPatch) -> Result<ModelGovernance, GovernanceError> {
        check_patch(&patch)?;
        let actor = audit::current();
        let mut tx = self.db.begin().await?;
        let before = self.read_model(&mut Reader::Tx(&mut *tx), model, true).await?;
        let mut after = before.clone();
        after.owners = patch.owners.unwrap_or(after.owners);
        after.group = patch.group.unwrap_or(after.group);
        after.risk_tier = patch.risk_tier.unwrap_or(after.risk_tier);
        after.tags = patch.tags.unwrap_or(after.tags);
        let now = now_millis();
        let mut sql = self.sql();
        sql.push(
            "INSERT INTO model_governance (registered_model_id, owners, model_group, risk_tier, tags, updated_by, \
             updated_at) VALUES (",
        )
        .arg(Value::Int(model))
        .push(", ")
        .arg(Value::Text(serde_json::to_string(&after.owners).unwrap_or_default()))
        .push(", ")
        .arg(Value::text_or_null(after.group.clone()))
        .push(", ")
        .arg(Value::Text(after.risk_tier.as_str().to_owned()))
        .push(", ")
        .arg(Value::Text(serde_json::to_string(&after.tags).unwrap_or_default()))
        .push(", ")
        .arg(Value::Text(actor.subject.clone()))
        .push(", ")
        .arg(Value::Int(now))
        .push(
            ") ON CONFLICT (registered_model_id) DO UPDATE SET owners = excluded.owners, model_group = \
             excluded.model_group, risk_tier = excluded.risk_tier, tags = excluded.tags, updated_by = \
             excluded.updated_by, updated_at = excluded.updated_at",
        );
        tx.execute(&sql).await?;
        let fields = |governance: &ModelGovernance| {
            json!([governance.owners, governance.group, governance.risk_tier, governance.tags])
        };
        let record = audit::Record {
            action: "governance.update".to_owned(),
            entity: format!("registered_model/{model}"),
            before: digest(&fields(&before)),
            after: digest(&fields(&after)),
            detail: Some(format!("risk tier {}", after.risk_tier.as_str())),
        };
        audit::append(&mut *tx, self.dialect(), record).await?;
        let data = json!({
            "registeredModelId": after.registered_model_id,
            "owners": after.owners,
            "group": after.group,
            "riskTier": after.risk_tier,
            "tags": after.tags,
            "actor": actor.subject,
        });
        events::append(&mut *tx, self.dialect(), EventType::ModelGovernanceUpdated, data).await?;
        tx.commit().await?;
        after.updated_by = Some(actor.subject);
        after.updated_at = Some(timestamp(now));
        Ok(after)
    }
}

/// A patch's lists and names are bounded: at most 64 entries of 1 to 256 characters.
fn check_patch(patch: &ModelPatch) -> Result<(), GovernanceError> {
    let lists = [("owners", &patch.owners), ("tags", &patch.tags)];
    for (field, list) in lists {
        let Some(list) = list else { continue };
        if list.len() > 64 || list.iter().any(|entry| entry.trim().is_empty() || entry.len() > 256) {
            return Err(GovernanceError::Invalid(format!("{field}: at most 64 entries, each 1 to 256 characters")));
        }
    }
    if let Some(Some(group)) = &patch.group
        && (group.trim().is_empty() || group.len() > 256)
    {
        return Err(GovernanceError::Invalid("group: 1 to 256 characters, or null".to_owned()));
    }
    Ok(())
}

fn model_missing(model: i64) -> GovernanceError {
    GovernanceError::NotFound(format!("registered model {model} not found"))
}
