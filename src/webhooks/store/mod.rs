//! The webhook tables (migrations `0011_webhooks` and `0014_catalog_events`): subscriptions (this file,
//! with the event types and catalog sources each chose) and [`deliveries`] with their attempts.
//!
//! A secret is returned only when a subscription is made or its secret rotated; lists, the delivery log,
//! errors and audit entries never hold one (nor a URL's path or query, which may carry a token: audit
//! entries name the host only).

mod deliveries;

use std::sync::Arc;

use serde::Serialize;

use super::WebhookError;
use super::signing::generate_secret;
use crate::audit;
use crate::store::now_millis;
use crate::store::outbox::EventType;
use crate::store::sql::{Backend, Col, Row, Sql, Value};

/// Subscriptions and deliveries over the shared store.
#[derive(Clone)]
pub struct WebhookStore {
    db: Arc<dyn Backend>,
}

/// A subscription as shown (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    /// The event types it receives; empty for every type.
    pub event_types: Vec<String>,
    /// The catalog sources whose `catalog.*` events it receives (none without them).
    pub catalog_sources: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// Until when the previous secret also signs deliveries, after a rotation.
    pub previous_secret_until: Option<String>,
    pub created_by: String,
    pub created_at: String,
}

/// A new subscription or a rotated secret: the secret is shown this once.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WithSecret {
    #[serde(flatten)]
    pub subscription: Subscription,
    pub secret: String,
}

/// What a subscription is made or changed with.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionDraft {
    pub url: Option<String>,
    pub description: Option<Option<String>>,
    pub event_types: Option<Vec<EventType>>,
    pub catalog_sources: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// One delivery of one event to one subscription, with its attempts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `delivered`, `failed` (retries exhausted) or `gone` (the endpoint answered 410).
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub attempt_log: Vec<Attempt>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub at: String,
    pub status: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// A claimed delivery, ready to send.
#[derive(Debug, Clone)]
pub struct Due {
    pub delivery: i64,
    pub subscription: i64,
    pub url: String,
    /// The keys that sign it: the secret's, and the previous secret's during a rotation.
    pub keys: Vec<Vec<u8>>,
    pub event_id: String,
    pub payload: String,
    pub attempts: i64,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Delivered(u16),
    /// The endpoint answered 410: the subscription is disabled.
    Gone,
    /// Another answer or a transport error; retried at `retry_at`, or failed for good when `None`.
    Failed {
        status: Option<u16>,
        error: Option<String>,
        retry_at: Option<i64>,
    },
}

const SUBSCRIPTION_COLUMNS: &str =
    "s.id, s.url, s.description, s.disabled_at, s.disabled_reason, s.previous_secret_until, s.created_by, s.created_at";
const SUBSCRIPTION_COLS: [Col; 8] =
    [Col::Int, Col::Text, Col::Text, Col::Int, Col::Text, Col::Int, Col::Text, Col::Int];

fn time(millis: i64) -> String {
    modelcat_sources::hf::format_hub_time(millis)
}

/// The host of a URL, for audit entries.
fn host_of(url: &str) -> String {
    reqwest::Url::parse(url).ok().and_then(|url| url.host_str().map(str::to_owned)).unwrap_or_default()
}

impl WebhookStore {
    pub fn new(db: Arc<dyn Backend>) -> Self {
        WebhookStore { db }
    }

    fn sql(&self) -> Sql {
        Sql::new(self.db.dialect())
    }

    /// Every subscription, oldest first.
    pub async fn list(&self) -> Result<Vec<Subscription>, WebhookError> {
        let mut sql = self.sql();
        sql.push(&format!("SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscription s ORDER BY s.id"));
        let rows = self.db.read(&sql, &SUBSCRIPTION_COLS).await?;
        let mut subscriptions = Vec::with_capacity(rows.len());
        for row in rows {
            subscriptions.push(self.subscription(row).await?);
        }
        Ok(subscriptions)
    }

    pub async fn get(&self, id: i64) -> Result<Subscription, WebhookError> {
        let mut sql = self.sql();
        sql.push(&format!("SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscription s WHERE s.id = "))
            .arg(Value::Int(id));
        let row = self.db.read(&sql, &SUBSCRIPTION_COLS).await?.into_iter().next();
        self.subscription(row.ok_or(WebhookError::NotFound(format!("webhook {id} not found")))?).await
    }

    async fn subscription(&self, row: Row) -> Result<Subscription, WebhookError> {
        let mut values = row.into_iter();
        let id = values.next().and_then(|value| value.as_int()).unwrap_or_default();
        let mut next_text = || values.next().and_then(Value::into_text);
        let url = next_text().unwrap_or_default();
        let description = next_text();
        let disabled_at = values.next().and_then(|value| value.as_int());
        let disabled_reason = values.next().and_then(Value::into_text);
        let previous_until = values.next().and_then(|value| value.as_int()).filter(|until| *until > now_millis());
        let created_by = values.next().and_then(Value::into_text).unwrap_or_default();
        let created_at = values.next().and_then(|value| value.as_int()).unwrap_or_default();
        let mut sql = self.sql();
        sql.push("SELECT event_type FROM webhook_subscription_event WHERE subscription_id = ")
            .arg(Value::Int(id))
            .push(" ORDER BY event_type");
        let types = self.db.read(&sql, &[Col::Text]).await?;
        let mut sql = self.sql();
        sql.push("SELECT source_id FROM webhook_subscription_source WHERE subscription_id = ")
            .arg(Value::Int(id))
            .push(" ORDER BY source_id");
        let sources = self.db.read(&sql, &[Col::Text]).await?;
        let texts = |rows: Vec<Row>| rows.into_iter().filter_map(|row| row.into_iter().next()?.into_text()).collect();
        Ok(Subscription {
            id: id.to_string(),
            url,
            description,
            event_types: texts(types),
            catalog_sources: texts(sources),
            enabled: disabled_at.is_none(),
            disabled_reason: disabled_at.and(disabled_reason),
            previous_secret_until: previous_until.map(time),
            created_by,
            created_at: time(created_at),
        })
    }

    /// Makes a subscription (its URL already checked); returns it with its new secret.
    pub async fn create(&self, draft: SubscriptionDraft) -> Result<WithSecret, WebhookError> {
        let url = draft.url.ok_or_else(|| WebhookError::Invalid("url is required".into()))?;
        let actor = audit::current();
        let secret = generate_secret();
        let now = now_millis();
        let mut tx = self.db.begin().await?;
        let mut sql = self.sql();
        sql.push("INSERT INTO webhook_subscription (url, description, secret, disabled_at, disabled_reason, created_by, created_at, updated_at) VALUES (")
            .arg(Value::Text(url.clone()))
            .push(", ")
            .arg(Value::text_or_null(draft.description.flatten()))
            .push(", ")
            .arg(Value::Text(secret.clone()))
            .push(", ");
        if draft.enabled == Some(false) {
            sql.arg(Value::Int(now)).push(", 'paused by an admin'");
        } else {
            sql.push("NULL, NULL");
        }
        sql.push(", ")
            .arg(Value::Text(actor.subject.clone()))
            .push(", ")
            .arg(Value::Int(now))
            .push(", ")
            .arg(Value::Int(now))
            .push(") RETURNING id");
        let row = tx.read(&sql, &[Col::Int]).await?.into_iter().next();
        let id = row.and_then(|row| row.into_iter().next()?.as_int()).unwrap_or_default();
        self.write_event_types(&mut *tx, id, draft.event_types.as_deref().unwrap_or_default()).await?;
        self.write_catalog_sources(&mut *tx, id, draft.catalog_sources.as_deref().unwrap_or_default()).await?;
        let record = audit::Record {
            action: "webhook.create".into(),
            entity: format!("webhook/{id}"),
            detail: Some(format!("to {}", host_of(&url))),
            ..Default::default()
        };
        audit::append(&mut *tx, self.db.dialect(), record).await?;
        tx.commit().await?;
        Ok(WithSecret { subscription: self.get(id).await?, secret })
    }

    async fn write_event_types(
        &self,
        tx: &mut dyn crate::store::sql::Transaction,
        id: i64,
        types: &[EventType],
    ) -> Result<(), WebhookError> {
        let mut sql = self.sql();
        sql.push("DELETE FROM webhook_subscription_event WHERE subscription_id = ").arg(Value::Int(id));
        tx.execute(&sql).await?;
        for event_type in types {
            let mut sql = self.sql();
            sql.push("INSERT INTO webhook_subscription_event (subscription_id, event_type) VALUES (")
                .arg(Value::Int(id))
                .push(", ")
                .arg(Value::Text(event_type.as_str().to_owned()))
                .push(") ON CONFLICT DO NOTHING");
            tx.execute(&sql).await?;
        }
        Ok(())
    }

    async fn write_catalog_sources(
        &self,
        tx: &mut dyn crate::store::sql::Transaction,
        id: i64,
        sources: &[String],
    ) -> Result<(), WebhookError> {
        let mut sql = self.sql();
        sql.push("DELETE FROM webhook_subscription_source WHERE subscription_id = ").arg(Value::Int(id));
        tx.execute(&sql).await?;
        for source in sources {
            let mut sql = self.sql();
            sql.push("INSERT INTO webhook_subscription_source (subscription_id, source_id) VALUES (")
                .arg(Value::Int(id))
                .push(", ")
                .arg(Value::Text(source.clone()))
                .push(") ON CONFLICT DO NOTHING");
            tx.execute(&sql).await?;
        }
        Ok(())
    }

    /// Changes a subscription; enabling one clears why it was disabled.
    pub async fn update(&self, id: i64, draft: SubscriptionDraft) -> Result<Subscription, WebhookError> {
        let now = now_millis();
        let mut tx = self.db.begin().await?;
        let mut sql = self.sql();
        sql.push("UPDATE webhook_subscription SET updated_at = ").arg(Value::Int(now));
        if let Some(url) = &draft.url {
            sql.push(", url = ").arg(Value::Text(url.clone()));
        }
        if let Some(description) = &draft.description {
            sql.push(", description = ").arg(Value::text_or_null(description.clone()));
        }
        match draft.enabled {
            Some(true) => {
                sql.push(", disabled_at = NULL, disabled_reason = NULL");
            }
            Some(false) => {
                sql.push(", disabled_at = ").arg(Value::Int(now)).push(", disabled_reason = 'paused by an admin'");
            }
            None => {}
        }
        sql.push(" WHERE id = ").arg(Value::Int(id));
        if tx.execute(&sql).await? == 0 {
            return Err(WebhookError::NotFound(format!("webhook {id} not found")));
        }
        if let Some(types) = &draft.event_types {
            self.write_event_types(&mut *tx, id, types).await?;
        }
        if let Some(sources) = &draft.catalog_sources {
            self.write_catalog_sources(&mut *tx, id, sources).await?;
        }
        let url = draft.url.as_deref().map(host_of);
        let record = audit::Record {
            action: "webhook.update".into(),
            entity: format!("webhook/{id}"),
            detail: url.map(|host| format!("to {host}")),
            ..Default::default()
        };
        audit::append(&mut *tx, self.db.dialect(), record).await?;
        tx.commit().await?;
        self.get(id).await
    }

    /// Deletes a subscription and its delivery log.
    pub async fn delete(&self, id: i64) -> Result<(), WebhookError> {
        let mut tx = self.db.begin().await?;
        let mut sql = self.sql();
        sql.push("DELETE FROM webhook_subscription WHERE id = ").arg(Value::Int(id));
        if tx.execute(&sql).await? == 0 {
            return Err(WebhookError::NotFound(format!("webhook {id} not found")));
        }
        let record =
            audit::Record { action: "webhook.delete".into(), entity: format!("webhook/{id}"), ..Default::default() };
        audit::append(&mut *tx, self.db.dialect(), record).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Gives a subscription a new secret; the old one keeps signing too for `window_ms`.
    pub async fn rotate(&self, id: i64, window_ms: i64) -> Result<WithSecret, WebhookError> {
        let secret = generate_secret();
        let now = now_millis();
        let mut tx = self.db.begin().await?;
        let mut sql = self.sql();
        sql.push("UPDATE webhook_subscription SET previous_secret = secret, previous_secret_until = ")
            .arg(Value::Int(now + window_ms))
            .push(", secret = ")
            .arg(Value::Text(secret.clone()))
            .push(", updated_at = ")
            .arg(Value::Int(now))
            .push(" WHERE id = ")
            .arg(Value::Int(id));
        if tx.execute(&sql).await? == 0 {
            return Err(WebhookError::NotFound(format!("webhook {id} not found")));
        }
        let record = audit::Record {
            action: "webhook.rotate_secret".into(),
            entity: format!("webhook/{id}"),
            detail: Some(format!("the previous secret signs for {} more seconds", window_ms / 1000)),
            ..Default::default()
        };
        audit::append(&mut *tx, self.db.dialect(), record).await?;
        tx.commit().await?;
        Ok(WithSecret { subscription: self.get(id).await?, secret })
    }
}
