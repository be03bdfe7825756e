//! The event outbox: a change that announces itself appends its event inside its own transaction,
//! together with one pending delivery for each enabled webhook subscription that wants that type. An
//! event and its deliveries exist exactly when the change committed, so a crash between the commit and
//! the delivery loses nothing; the webhook dispatcher ([`crate::webhooks`]) sends them. An event no
//! subscription wants is not written (the audit log records every change regardless), so a server
//! without subscriptions pays one cheap statement per change.
//!
//! An event is the Standard Webhooks payload shape, `{"type", "timestamp", "data"}`, with an id
//! (`evt_…`) that each delivery sends as `webhook-id`.

use serde_json::{Value as Json, json};

use super::now_millis;
use super::sql::{Backend, Col, DbError, Dialect, Sql, Transaction, Value};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    ModelCreated,
    ModelUpdated,
    VersionCreated,
    VersionUpdated,
    VersionTransitioned,
    VersionApproved,
    /// A review that requested changes (the version moved to `changes_requested`).
    VersionDenied,
    ModelGovernanceUpdated,
    AliasChanged,
    /// Evaluation results whose metrics all pass (or that no tier requires).
    EvaluationRecorded,
    /// Evaluation results of which at least one metric fails its threshold.
    EvaluationFailed,
    SignatureVerified,
    SignatureFailed,
    DeploymentChanged,
    DeploymentRolledBack,
    /// Models a chosen catalog source gained ([`crate::catalog::events`]).
    CatalogModelsAdded,
    CatalogModelsRemoved,
}

/// Every event type.
pub const EVENT_TYPES: [EventType; 17] = [
    EventType::ModelCreated,
    EventType::ModelUpdated,
    EventType::VersionCreated,
    EventType::VersionUpdated,
    EventType::VersionTransitioned,
    EventType::VersionApproved,
    EventType::VersionDenied,
    EventType::ModelGovernanceUpdated,
    EventType::AliasChanged,
    EventType::EvaluationRecorded,
    EventType::EvaluationFailed,
    EventType::SignatureVerified,
    EventType::SignatureFailed,
    EventType::DeploymentChanged,
    EventType::DeploymentRolledBack,
    EventType::CatalogModelsAdded,
    EventType::CatalogModelsRemoved,
];

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ModelCreated => "registered_model.created",
            EventType::ModelUpdated => "registered_model.updated",
            EventType::VersionCreated => "model_version.created",
            EventType::VersionUpdated => "model_version.updated",
            EventType::VersionTransitioned => "model_version.transitioned",
            EventType::VersionApproved => "model_version.approved",
            EventType::VersionDenied => "model_version.denied",
            EventType::ModelGovernanceUpdated => "registered_model.governance_updated",
            EventType::AliasChanged => "registered_model.alias_changed",
            EventType::EvaluationRecorded => "model_version.evaluation_recorded",
            EventType::EvaluationFailed => "model_version.evaluation_failed",
            EventType::SignatureVerified => "model_version.signature_verified",
            EventType::SignatureFailed => "model_version.signature_failed",
            EventType::DeploymentChanged => "deployment.changed",
            EventType::DeploymentRolledBack => "deployment.rolled_back",
            EventType::CatalogModelsAdded => "catalog.models_added",
            EventType::CatalogModelsRemoved => "catalog.models_removed",
        }
    }

    pub fn parse(text: &str) -> Option<EventType> {
        EVENT_TYPES.into_iter().find(|event_type| event_type.as_str() == text)
    }
}

/// Appends one event with `data` inside `transaction`, and a pending delivery for each subscription
/// that wants it, if any does.
pub async fn append(
    transaction: &mut dyn Transaction,
    dialect: Dialect,
    event_type: EventType,
    data: Json,
) -> Result<(), DbError> {
    append_to(transaction, dialect, event_type, None, data).await
}

/// [`append`] for an event about catalog source `source`: only subscriptions that chose the source
/// want it.
pub async fn append_for_source(
    transaction: &mut dyn Transaction,
    dialect: Dialect,
    event_type: EventType,
    source: &str,
    data: Json,
) -> Result<(), DbError> {
    append_to(transaction, dialect, event_type, Some(source), data).await
}

async fn append_to(
    transaction: &mut dyn Transaction,
    dialect: Dialect,
    event_type: EventType,
    source: Option<&str>,
    data: Json,
) -> Result<(), DbError> {
    let now = now_millis();
    let event_id = format!("evt_{}", uuid::Uuid::new_v4().simple());
    let timestamp = modelcat_sources::hf::format_hub_time(now);
    let payload = json!({ "type": event_type.as_str(), "timestamp": timestamp, "data": data });
    let mut sql = Sql::new(dialect);
    sql.push("INSERT INTO event_outbox (event_id, event_type, payload, created_at) SELECT ")
        .arg(Value::Text(event_id))
        .push(", ")
        .arg(Value::Text(event_type.as_str().to_owned()))
        .push(", ")
        .arg(Value::Text(payload.to_string()))
        .push(", ")
        .arg(Value::Int(now))
        .push(" WHERE EXISTS (SELECT 1 FROM webhook_subscription s WHERE ");
    push_wants(&mut sql, event_type, source);
    sql.push(") RETURNING id");
    let row = transaction.read(&sql, &[Col::Int]).await?.into_iter().next();
    let Some(event_row) = row.and_then(|row| row.into_iter().next()?.as_int()) else { return Ok(()) };
    let mut fan_out = Sql::new(dialect);
    fan_out
        .push(
            "INSERT INTO webhook_delivery (subscription_id, event_row, state, next_attempt_at, created_at, \
             updated_at) SELECT s.id, ",
        )
        .arg(Value::Int(event_row))
        .push(", 'pending', ")
        .arg(Value::Int(now))
        .push(", ")
        .arg(Value::Int(now))
        .push(", ")
        .arg(Value::Int(now))
        .push(" FROM webhook_subscription s WHERE ");
    push_wants(&mut fan_out, event_type, source);
    transaction.execute(&fan_out).await?;
    Ok(())
}

/// The condition on `webhook_subscription s` that it is enabled and wants `event_type` (a subscription
/// without types wants every type) and, for an event about a catalog source, chose that source.
fn push_wants(sql: &mut Sql, event_type: EventType, source: Option<&str>) {
    sql.push(
        "s.disabled_at IS NULL AND (NOT EXISTS (SELECT 1 FROM webhook_subscription_event e WHERE \
         e.subscription_id = s.id) OR EXISTS (SELECT 1 FROM webhook_subscription_event e WHERE \
         e.subscription_id = s.id AND e.event_type = ",
    )
    .arg(Value::Text(event_type.as_str().to_owned()))
    .push("))");
    if let Some(source) = source {
        sql.push(" AND EXISTS (SELECT 1 FROM webhook_subscription_source c WHERE c.subscription_id = s.id AND c.source_id = ")
            .arg(Value::Text(source.to_owned()))
            .push(")");
    }
}

/// The number of events in the outbox.
pub async fn count(backend: &dyn Backend) -> Result<i64, DbError> {
    let mut sql = Sql::new(backend.dialect());
    sql.push("SELECT COUNT(*) FROM event_outbox");
    let rows = backend.read(&sql, &[Col::Int]).await?;
    Ok(rows.into_iter().next().and_then(|row| row.into_iter().next()?.as_int()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_round_trip() {
        for event_type in EVENT_TYPES {
            assert_eq!(EventType::parse(event_type.as_str()), Some(event_type));
        }
        assert_eq!(EventType::parse("model_version.exploded"), None);
    }
}
