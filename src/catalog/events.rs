//! Catalog events for webhooks: models added to or removed from the sources a subscription chose
//! (`catalogSources`).
//!
//! Contract:
//! - The set of model names last announced per chosen source is kept in the store
//!   (`catalog_announced`); [`Announcer::announce`] diffs a source's names against it and, in one
//!   transaction, updates it and appends `catalog.models_added` and `catalog.models_removed` events (at
//!   most [`CHUNK`] names each). Replicas that see the same change find nothing left to announce, and a
//!   rebuilt index announces nothing it had announced.
//! - The first time a chosen source changes, the names it held before the change become its baseline:
//!   what was there before the subscription is not announced.
//! - A source no enabled subscription chooses keeps no state (choosing it again starts a new baseline).
//! - Events are written before the index commits the change, so a crash between the two announces again
//!   on restart (at least once, as every delivery).

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::json;

use crate::store::now_millis;
use crate::store::outbox::{self, EventType};
use crate::store::sql::{Backend, Col, DbError, Sql, Value};

/// The most model names one event lists.
pub const CHUNK: usize = 500;

/// Writes catalog events to the store's outbox.
#[derive(Clone)]
pub struct Announcer {
    db: Arc<dyn Backend>,
}

impl Announcer {
    pub fn new(db: Arc<dyn Backend>) -> Self {
        Announcer { db }
    }

    /// Announces that `source` went from the names `before` to the names `after`; returns how many
    /// names were announced as added and removed.
    pub async fn announce(&self, source: &str, before: &[String], after: &[String]) -> Result<(usize, usize), DbError> {
        let dialect = self.db.dialect();
        let text = |value: &str| Value::Text(value.to_owned());
        // Most reloads are of sources nobody chose: find that out with reads, without a transaction.
        let mut sql = Sql::new(dialect);
        sql.push(
            "SELECT CAST(1 AS BIGINT) FROM webhook_subscription_source c JOIN webhook_subscription s ON \
             s.id = c.subscription_id WHERE s.disabled_at IS NULL AND c.source_id = ",
        )
        .arg(text(source))
        .push(" UNION ALL SELECT CAST(2 AS BIGINT) FROM catalog_announced_source WHERE source_id = ")
        .arg(text(source));
        let found: Vec<i64> =
            self.db.read(&sql, &[Col::Int]).await?.into_iter().filter_map(|row| row[0].as_int()).collect();
        let (chosen, announced) = (found.contains(&1), found.contains(&2));
        if !chosen && !announced {
            return Ok((0, 0));
        }
        let mut tx = self.db.begin().await?;
        if !chosen {
            for table in ["catalog_announced", "catalog_announced_source"] {
                let mut sql = Sql::new(dialect);
                sql.push(&format!("DELETE FROM {table} WHERE source_id = ")).arg(text(source));
                tx.execute(&sql).await?;
            }
            tx.commit().await?;
            return Ok((0, 0));
        }
        let mut sql = Sql::new(dialect);
        sql.push("INSERT INTO catalog_announced_source (source_id, since) VALUES (")
            .arg(text(source))
            .push(", ")
            .arg(Value::Int(now_millis()))
            .push(") ON CONFLICT (source_id) DO NOTHING RETURNING source_id");
        let fresh = !tx.read(&sql, &[Col::Text]).await?.is_empty();
        // Serializes replicas announcing the same source (SQLite's one writer does already).
        let mut sql = Sql::new(dialect);
        sql.push("SELECT source_id FROM catalog_announced_source WHERE source_id = ").arg(text(source));
        if dialect == crate::store::sql::Dialect::Postgres {
            sql.push(" FOR UPDATE");
        }
        tx.read(&sql, &[Col::Text]).await?;
        let stored: BTreeSet<String> = if fresh {
            insert_names(&mut *tx, dialect, source, before.iter()).await?;
            before.iter().cloned().collect()
        } else {
            let mut sql = Sql::new(dialect);
            sql.push("SELECT name FROM catalog_announced WHERE source_id = ").arg(text(source));
            let rows = tx.read(&sql, &[Col::Text]).await?;
            rows.into_iter().filter_map(|row| row.into_iter().next()?.into_text()).collect()
        };
        let after: BTreeSet<&String> = after.iter().collect();
        let added: Vec<&String> = after.iter().copied().filter(|name| !stored.contains(*name)).collect();
        let removed: Vec<&String> = stored.iter().filter(|name| !after.contains(name)).collect();
        insert_names(&mut *tx, dialect, source, added.iter().copied()).await?;
        for chunk in removed.chunks(CHUNK) {
            let mut sql = Sql::new(dialect);
            sql.push("DELETE FROM catalog_announced WHERE source_id = ").arg(text(source)).push(" AND name IN (");
            sql.arg_list(chunk.iter().map(|name| text(name))).push(")");
            tx.execute(&sql).await?;
        }
        for (event_type, names) in
            [(EventType::CatalogModelsAdded, &added), (EventType::CatalogModelsRemoved, &removed)]
        {
            for chunk in names.chunks(CHUNK) {
                let data = json!({"sourceId": source, "models": chunk});
                outbox::append_for_source(&mut *tx, dialect, event_type, source, data).await?;
            }
        }
        tx.commit().await?;
        Ok((added.len(), removed.len()))
    }
}

async fn insert_names<'a>(
    tx: &mut dyn crate::store::sql::Transaction,
    dialect: crate::store::sql::Dialect,
    source: &str,
    names: impl Iterator<Item = &'a String>,
) -> Result<(), DbError> {
    let names: Vec<&String> = names.collect();
    for chunk in names.chunks(CHUNK) {
        let mut sql = Sql::new(dialect);
        sql.push("INSERT INTO catalog_announced (source_id, name) VALUES ");
        for (index, name) in chunk.iter().enumerate() {
            if index > 0 {
                sql.push(", ");
            }
            sql.push("(").arg(Value::Text(source.to_owned())).push(", ").arg(Value::Text((*name).clone())).push(")");
        }
        sql.push(" ON CONFLICT DO NOTHING");
        tx.execute(&sql).await?;
    }
    Ok(())
}
