//! A model's named aliases: each points at one of its versions, and every change is recorded.

use serde_json::json;

use super::{Fields, GovernanceStore, Reader};
use crate::audit;
use crate::governance::lifecycle::State;
use crate::governance::{Alias, AliasChange, Aliases, GovernanceError};
use crate::store::now_millis;
use crate::store::outbox::{self as events, EventType};
use crate::store::sql::{Col, Value};

impl GovernanceStore {
    /// A model's aliases and their history, oldest change first.
    pub async fn aliases(&self, model: i64) -> Result<Aliases, GovernanceError> {
        let mut reader = Reader::Db(&*self.db);
        self.read_model(&mut reader, model, false).await?;
        let mut sql = self.sql();
        sql.push("SELECT alias, model_version_id, set_by, set_at FROM model_alias WHERE registered_model_id = ")
            .arg(Value::Int(model))
            .push(" ORDER BY alias");
        let rows = reader.read(&sql, &[Col::Text, Col::Int, Col::Text, Col::Int]).await?;
        let aliases = rows
            .into_iter()
            .map(|row| {
                let mut fields = Fields::of(row);
                Alias {
                    alias: fields.text().unwrap_or_default(),
                    model_version_id: fields.id(),
                    set_by: fields.text().unwrap_or_default(),
                    set_at: fields.time(),
                }
            })
            .collect();
        let mut sql = self.sql();
        sql.push(
            "SELECT alias, previous_version_id, model_version_id, actor, at FROM model_alias_history \
             WHERE registered_model_id = ",
        )
        .arg(Value::Int(model))
        .push(" ORDER BY id");
        let rows = reader.read(&sql, &[Col::Text, Col::Int, Col::Int, Col::Text, Col::Int]).await?;
        let history = rows
            .into_iter()
            .map(|row| {
                let mut fields = Fields::of(row);
                AliasChange {
                    alias: fields.text().unwrap_or_default(),
                    previous_version_id: fields.int().map(|id| id.to_string()),
                    model_version_id: fields.int().map(|id| id.to_string()),
                    actor: fields.text().unwrap_or_default(),
                    at: fields.time(),
                }
            })
            .collect();
        Ok(Aliases { aliases, history })
    }

    /// Points `alias` of `model` at `version`, or removes it (`None`). Pointing it where it already
    /// points changes nothing and records nothing.
    pub async fn set_alias(&self, model: i64, alias: &str, version: Option<i64>) -> Result<Aliases, GovernanceError> {
        crate::governance::check_alias(alias)?;
        let actor = audit::current();
        let mut tx = self.db.begin().await?;
        self.read_model(&mut Reader::Tx(&mut *tx), model, true).await?;
        if let Some(version) = version {
            let current = self.current(&mut Reader::Tx(&mut *tx), version, false).await?;
            if current.model != model {
                return Err(GovernanceError::Invalid(format!(
                    "model version {version} belongs to registered model {}, not {model}",
                    current.model
                )));
            }
            if current.state == State::Retired {
                return Err(GovernanceError::Illegal(format!("model version {version} is retired")));
            }
        }
        let mut sql = self.sql();
        sql.push("SELECT model_version_id FROM model_alias WHERE registered_model_id = ")
            .arg(Value::Int(model))
            .push(" AND alias = ")
            .arg(Value::Text(alias.to_owned()));
        let previous = tx.read(&sql, &[Col::Int]).await?.into_iter().next().and_then(|row| Fields::of(row).int());
        if previous == version {
            if version.is_none() {
                return Err(GovernanceError::NotFound(format!("registered model {model} has no alias {alias:?}")));
            }
            drop(tx);
            return self.aliases(model).await;
        }
        let now = now_millis();
        let mut sql = self.sql();
        match version {
            Some(version) => {
                sql.push(
                    "INSERT INTO model_alias (registered_model_id, alias, model_version_id, set_by, set_at) VALUES (",
                )
                .arg(Value::Int(model))
                .push(", ")
                .arg(Value::Text(alias.to_owned()))
                .push(", ")
                .arg(Value::Int(version))
                .push(", ")
                .arg(Value::Text(actor.subject.clone()))
                .push(", ")
                .arg(Value::Int(now))
                .push(
                    ") ON CONFLICT (registered_model_id, alias) DO UPDATE SET model_version_id = \
                         excluded.model_version_id, set_by = excluded.set_by, set_at = excluded.set_at",
                );
            }
            None => {
                sql.push("DELETE FROM model_alias WHERE registered_model_id = ")
                    .arg(Value::Int(model))
                    .push(" AND alias = ")
                    .arg(Value::Text(alias.to_owned()));
            }
        }
        tx.execute(&sql).await?;
        let mut sql = self.sql();
        sql.push(
            "INSERT INTO model_alias_history (registered_model_id, alias, previous_version_id, model_version_id, \
             actor, at) VALUES (",
        )
        .arg(Value::Int(model))
        .push(", ")
        .arg(Value::Text(alias.to_owned()))
        .push(", ")
        .arg(Value::int_or_null(previous))
        .push(", ")
        .arg(Value::int_or_null(version))
        .push(", ")
        .arg(Value::Text(actor.subject.clone()))
        .push(", ")
        .arg(Value::Int(now))
        .push(")");
        tx.execute(&sql).await?;
        let shown = |id: Option<i64>| id.map_or_else(|| "none".to_owned(), |id| id.to_string());
        let record = audit::Record {
            action: if version.is_some() { "alias.set" } else { "alias.remove" }.to_owned(),
            entity: format!("registered_model/{model}"),
            before: None,
            after: None,
            detail: Some(format!("{alias}: {} -> {}", shown(previous), shown(version))),
        };
        audit::append(&mut *tx, self.dialect(), record).await?;
        let data = json!({
            "registeredModelId": model.to_string(),
            "alias": alias,
            "previousVersionId": previous.map(|id| id.to_string()),
            "modelVersionId": version.map(|id| id.to_string()),
            "actor": actor.subject,
        });
        events::append(&mut *tx, self.dialect(), EventType::AliasChanged, data).await?;
        tx.commit().await?;
        self.aliases(model).await
    }
}
