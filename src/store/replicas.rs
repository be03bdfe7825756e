//! Replica heartbeats: each serving process records, every few seconds, its id and the change-log position
//! its index has applied. Log pruning never passes the lowest position of a live replica (one whose last
//! heartbeat is recent); a replica that stays away longer may find its position pruned, and rebuilds.

use super::sql::{Backend, Col, DbError, Sql, Value};

/// One replica as last heard from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub id: String,
    pub position: i64,
    pub started_at: i64,
    /// Database-clock ms since the epoch.
    pub heartbeat_at: i64,
}

/// Records that replica `id` is alive and has applied the log up to `position`.
pub async fn heartbeat(backend: &dyn Backend, id: &str, position: i64, started_at: i64) -> Result<(), DbError> {
    let mut sql = Sql::new(backend.dialect());
    sql.push("INSERT INTO replica (id, position, started_at, heartbeat_at) VALUES (")
        .arg(Value::Text(id.to_owned()))
        .push(", ")
        .arg(Value::Int(position))
        .push(", ")
        .arg(Value::Int(started_at))
        .push(", ")
        .now()
        .push(
            ") ON CONFLICT (id) DO UPDATE SET position = excluded.position, started_at = excluded.started_at, \
             heartbeat_at = excluded.heartbeat_at",
        );
    let mut transaction = backend.begin().await?;
    transaction.execute(&sql).await?;
    transaction.commit().await
}

/// Every replica heard from within `within_ms`, and the database clock now.
pub async fn live(backend: &dyn Backend, within_ms: i64) -> Result<Vec<Replica>, DbError> {
    let mut sql = Sql::new(backend.dialect());
    sql.push("SELECT id, position, started_at, heartbeat_at FROM replica WHERE heartbeat_at > ")
        .now()
        .push(" - ")
        .arg(Value::Int(within_ms))
        .push(" ORDER BY id");
    let rows = backend.read(&sql, &[Col::Text, Col::Int, Col::Int, Col::Int]).await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let mut row = row.into_iter();
            Some(Replica {
                id: row.next()?.into_text()?,
                position: row.next()?.as_int()?,
                started_at: row.next()?.as_int()?,
                heartbeat_at: row.next()?.as_int()?,
            })
        })
        .collect())
}
