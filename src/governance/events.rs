//! The event outbox: each governance change appends exactly one event inside its own transaction, so an
//! event exists exactly when its change committed. Webhook delivery reads the outbox.
//!
//! An event is the Standard Webhooks payload shape: `{"type", "timestamp", "data"}` with an id
//! (`evt_…`) that deliveries send as `webhook-id`.

use serde_json::{Value as Json, json};

use crate::store::now_millis;
use crate::store::sql::{Col, DbError, Dialect, Sql, Transaction, Value};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    VersionTransitioned,
    VersionApproved,
    /// A review that requested changes (the version moved to `changes_requested`).
    VersionDenied,
    ModelGovernanceUpdated,
    AliasChanged,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::VersionTransitioned => "model_version.transitioned",
            EventType::VersionApproved => "model_version.approved",
            EventType::VersionDenied => "model_version.denied",
            EventType::ModelGovernanceUpdated => "registered_model.governance_updated",
            EventType::AliasChanged => "registered_model.alias_changed",
        }
    }
}

/// Appends one event with `data` inside `transaction`.
pub async fn append(
    transaction: &mut dyn Transaction,
    dialect: Dialect,
    event_type: EventType,
    data: Json,
) -> Result<(), DbError> {
    let now = now_millis();
    let event_id = format!("evt_{}", uuid::Uuid::new_v4().simple());
    let payload = json!({ "type": event_type.as_str(), "timestamp": super::timestamp(now), "data": data });
    let mut sql = Sql::new(dialect);
    sql.push("INSERT INTO event_outbox (event_id, event_type, payload, created_at) VALUES (")
        .arg(Value::Text(event_id))
        .push(", ")
        .arg(Value::Text(event_type.as_str().to_owned()))
        .push(", ")
        .arg(Value::Text(payload.to_string()))
        .push(", ")
        .arg(Value::Int(now))
        .push(")");
    transaction.execute(&sql).await?;
    Ok(())
}

/// The number of events in the outbox (tests and metrics).
pub async fn count(backend: &dyn crate::store::Backend) -> Result<i64, DbError> {
    let mut sql = Sql::new(backend.dialect());
    sql.push("SELECT COUNT(*) FROM event_outbox");
    let rows = backend.read(&sql, &[Col::Int]).await?;
    Ok(rows.into_iter().next().and_then(|row| row.into_iter().next()?.as_int()).unwrap_or(0))
}
