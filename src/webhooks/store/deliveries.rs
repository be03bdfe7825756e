//! Deliveries: the log and redelivery for admins; claiming due deliveries and recording attempts for the
//! dispatcher; pruning what retention lets go.

use super::{Attempt, Delivery, Due, Outcome, WebhookStore, time};
use crate::audit;
use crate::store::now_millis;
use crate::store::sql::{Col, Value};
use crate::webhooks::WebhookError;
use crate::webhooks::signing;

impl WebhookStore {
    /// A subscription's deliveries, newest first, with their attempts.
    pub async fn deliveries(&self, id: i64, limit: i64) -> Result<Vec<Delivery>, WebhookError> {
        self.get(id).await?;
        let mut sql = self.sql();
        sql.push(
            "SELECT d.id, e.event_id, e.event_type, d.state, d.attempts, d.next_attempt_at, d.last_status, \
             d.last_error, d.created_at FROM webhook_delivery d JOIN event_outbox e ON e.id = d.event_row \
             WHERE d.subscription_id = ",
        )
        .arg(Value::Int(id))
        .push(" ORDER BY d.id DESC LIMIT ")
        .arg(Value::Int(limit));
        let cols = [Col::Int, Col::Text, Col::Text, Col::Text, Col::Int, Col::Int, Col::Int, Col::Text, Col::Int];
        let mut deliveries = Vec::new();
        for row in self.db.read(&sql, &cols).await? {
            let mut values = row.into_iter();
            let mut int = || values.next().and_then(|value| value.as_int());
            let delivery = int().unwrap_or_default();
            let mut texts = values.by_ref().take(3).map(Value::into_text);
            let (event_id, event_type, state) = (
                texts.next().flatten().unwrap_or_default(),
                texts.next().flatten().unwrap_or_default(),
                texts.next().flatten().unwrap_or_default(),
            );
            let attempts = values.next().and_then(|value| value.as_int()).unwrap_or_default();
            let next_attempt = values.next().and_then(|value| value.as_int());
            let last_status = values.next().and_then(|value| value.as_int());
            let last_error = values.next().and_then(Value::into_text);
            let created_at = values.next().and_then(|value| value.as_int()).unwrap_or_default();
            deliveries.push(Delivery {
                id: delivery.to_string(),
                next_attempt_at: next_attempt.filter(|_| state == "pending").map(time),
                event_id,
                event_type,
                state,
                attempts,
                last_status,
                last_error,
                created_at: time(created_at),
                attempt_log: self.attempts(delivery).await?,
            });
        }
        Ok(deliveries)
    }

    async fn attempts(&self, delivery: i64) -> Result<Vec<Attempt>, WebhookError> {
        let mut sql = self.sql();
        sql.push("SELECT at, status, error, duration_ms FROM webhook_attempt WHERE delivery_id = ")
            .arg(Value::Int(delivery))
            .push(" ORDER BY id");
        let rows = self.db.read(&sql, &[Col::Int, Col::Int, Col::Text, Col::Int]).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut values = row.into_iter();
                Attempt {
                    at: time(values.next().and_then(|value| value.as_int()).unwrap_or_default()),
                    status: values.next().and_then(|value| value.as_int()),
                    error: values.next().and_then(Value::into_text),
                    duration_ms: values.next().and_then(|value| value.as_int()).unwrap_or_default(),
                }
            })
            .collect())
    }

    /// Sends a delivery's event again, as a new delivery due now.
    pub async fn redeliver(&self, subscription: i64, delivery: i64) -> Result<(), WebhookError> {
        let now = now_millis();
        let mut tx = self.db.begin().await?;
        let mut sql = self.sql();
        sql.push(
            "INSERT INTO webhook_delivery (subscription_id, event_row, state, next_attempt_at, created_at, \
             updated_at) SELECT subscription_id, event_row, 'pending', ",
        )
        .arg(Value::Int(now))
        .push(", ")
        .arg(Value::Int(now))
        .push(", ")
        .arg(Value::Int(now))
        .push(" FROM webhook_delivery WHERE id = ")
        .arg(Value::Int(delivery))
        .push(" AND subscription_id = ")
        .arg(Value::Int(subscription));
        if tx.execute(&sql).await? == 0 {
            return Err(WebhookError::NotFound(format!("webhook {subscription} has no delivery {delivery}")));
        }
        let record = audit::Record {
            action: "webhook.redeliver".into(),
            entity: format!("webhook/{subscription}"),
            detail: Some(format!("delivery {delivery}")),
            ..Default::default()
        };
        audit::append(&mut *tx, self.db.dialect(), record).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Claims up to `limit` deliveries that are due, for `claim_ms` (another replica skips them meanwhile).
    pub async fn claim_due(&self, limit: i64, claim_ms: i64) -> Result<Vec<Due>, WebhookError> {
        let now = now_millis();
        let mut sql = self.sql();
        sql.push(
            "SELECT d.id, s.id, s.url, s.secret, s.previous_secret, s.previous_secret_until, e.event_id, e.payload, \
             d.attempts FROM webhook_delivery d JOIN webhook_subscription s ON s.id = d.subscription_id \
             JOIN event_outbox e ON e.id = d.event_row WHERE d.state = 'pending' AND s.disabled_at IS NULL \
             AND d.next_attempt_at <= ",
        )
        .arg(Value::Int(now))
        .push(" AND (d.claimed_until IS NULL OR d.claimed_until < ")
        .arg(Value::Int(now))
        .push(") ORDER BY d.next_attempt_at, d.id LIMIT ")
        .arg(Value::Int(limit));
        let cols = [Col::Int, Col::Int, Col::Text, Col::Text, Col::Text, Col::Int, Col::Text, Col::Text, Col::Int];
        let mut claimed = Vec::new();
        let rows = self.db.read(&sql, &cols).await?;
        if rows.is_empty() {
            return Ok(claimed);
        }
        // One transaction claims the batch.
        let mut tx = self.db.begin().await?;
        for row in rows {
            let mut values = row.into_iter();
            let delivery = values.next().and_then(|value| value.as_int()).unwrap_or_default();
            let mut claim = self.sql();
            claim
                .push("UPDATE webhook_delivery SET claimed_until = ")
                .arg(Value::Int(now + claim_ms))
                .push(" WHERE id = ")
                .arg(Value::Int(delivery))
                .push(" AND state = 'pending' AND (claimed_until IS NULL OR claimed_until < ")
                .arg(Value::Int(now))
                .push(")");
            if tx.execute(&claim).await? != 1 {
                continue;
            }
            let subscription = values.next().and_then(|value| value.as_int()).unwrap_or_default();
            let url = values.next().and_then(Value::into_text).unwrap_or_default();
            let secret = values.next().and_then(Value::into_text);
            let previous = values.next().and_then(Value::into_text);
            let previous_until = values.next().and_then(|value| value.as_int()).unwrap_or(0);
            let mut keys: Vec<Vec<u8>> = secret.as_deref().and_then(signing::secret_key).into_iter().collect();
            if previous_until > now {
                keys.extend(previous.as_deref().and_then(signing::secret_key));
            }
            claimed.push(Due {
                delivery,
                subscription,
                url,
                keys,
                event_id: values.next().and_then(Value::into_text).unwrap_or_default(),
                payload: values.next().and_then(Value::into_text).unwrap_or_default(),
                attempts: values.next().and_then(|value| value.as_int()).unwrap_or_default(),
            });
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// Records how each attempt of a batch ended (attempt, outcome, milliseconds it took), in one
    /// transaction.
    pub async fn record(&self, attempts: &[(&Due, Outcome, i64)]) -> Result<(), WebhookError> {
        let mut tx = self.db.begin().await?;
        for (due, outcome, duration_ms) in attempts {
            self.record_one(&mut *tx, due, outcome, *duration_ms).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn record_one(
        &self,
        tx: &mut dyn crate::store::sql::Transaction,
        due: &Due,
        outcome: &Outcome,
        duration_ms: i64,
    ) -> Result<(), WebhookError> {
        let now = now_millis();
        let (state, status, error, next) = match outcome {
            Outcome::Delivered(status) => ("delivered", Some(i64::from(*status)), None, None),
            Outcome::Gone => ("gone", Some(410), Some("the endpoint answered 410 Gone".to_owned()), None),
            Outcome::Failed { status, error, retry_at: Some(at) } => {
                ("pending", status.map(i64::from), error.clone(), Some(*at))
            }
            Outcome::Failed { status, error, retry_at: None } => ("failed", status.map(i64::from), error.clone(), None),
        };
        let mut update = self.sql();
        update
            .push("UPDATE webhook_delivery SET state = ")
            .arg(Value::Text(state.to_owned()))
            .push(", attempts = attempts + 1, claimed_until = NULL, last_status = ")
            .arg(Value::int_or_null(status))
            .push(", last_error = ")
            .arg(Value::text_or_null(error.clone()))
            .push(", updated_at = ")
            .arg(Value::Int(now));
        if let Some(next) = next {
            update.push(", next_attempt_at = ").arg(Value::Int(next));
        }
        update.push(" WHERE id = ").arg(Value::Int(due.delivery));
        if tx.execute(&update).await? == 0 {
            // The subscription was deleted meanwhile, and its deliveries with it.
            return Ok(());
        }
        let mut attempt = self.sql();
        attempt
            .push("INSERT INTO webhook_attempt (delivery_id, at, status, error, duration_ms) VALUES (")
            .arg(Value::Int(due.delivery))
            .push(", ")
            .arg(Value::Int(now))
            .push(", ")
            .arg(Value::int_or_null(status))
            .push(", ")
            .arg(Value::text_or_null(error))
            .push(", ")
            .arg(Value::Int(duration_ms))
            .push(")");
        tx.execute(&attempt).await?;
        if matches!(outcome, Outcome::Gone) {
            let mut disable = self.sql();
            disable
                .push("UPDATE webhook_subscription SET disabled_at = ")
                .arg(Value::Int(now))
                .push(", disabled_reason = 'the endpoint answered 410 Gone' WHERE id = ")
                .arg(Value::Int(due.subscription));
            tx.execute(&disable).await?;
            let record = audit::Record {
                action: "webhook.disable".into(),
                entity: format!("webhook/{}", due.subscription),
                detail: Some("the endpoint answered 410 Gone".into()),
                ..Default::default()
            };
            audit::append(tx, self.db.dialect(), record).await?;
        }
        Ok(())
    }

    /// Deletes finished deliveries and events older than `before` (milliseconds); pending ones stay.
    /// Returns how many events went.
    pub async fn prune(&self, before: i64) -> Result<u64, WebhookError> {
        let mut tx = self.db.begin().await?;
        let mut deliveries = self.sql();
        deliveries
            .push("DELETE FROM webhook_delivery WHERE state <> 'pending' AND created_at < ")
            .arg(Value::Int(before));
        tx.execute(&deliveries).await?;
        let mut events = self.sql();
        events
            .push("DELETE FROM event_outbox WHERE created_at < ")
            .arg(Value::Int(before))
            .push(" AND NOT EXISTS (SELECT 1 FROM webhook_delivery d WHERE d.event_row = event_outbox.id)");
        let pruned = tx.execute(&events).await?;
        tx.commit().await?;
        Ok(pruned)
    }
}
