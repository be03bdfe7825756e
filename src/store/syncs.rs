//! The last sync of each external source (a Hub source, a peer), whichever replica ran it.
//!
//! [`record_start`] marks a sync as running; [`record`] stores its outcome and appends the source's
//! status entry to the change log in the same transaction, so every replica's catalog shows the outcome.
//! Both are fenced by the syncing replica's lease: a replica that lost it cannot overwrite the outcome of
//! the one that holds it now. A sync that started after the last one finished was interrupted.

use super::changes::{self, Entry};
use super::lease::{self, Lease, LeaseError};
use super::now_millis;
use super::sql::{Backend, Col, Transaction, Value};

/// The outcome of a source's last sync, as every replica shows it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SyncRecord {
    /// When the last sync started (ms since the epoch).
    #[serde(skip)]
    pub started_at: i64,
    /// When the last complete sync finished (ms since the epoch).
    #[serde(skip)]
    pub finished_at: i64,
    /// Records that could not be fetched, with why.
    pub failed: Vec<(String, String)>,
    /// Why the sync failed as a whole (a listing or a peer that failed).
    pub problem: Option<String>,
    pub summary: String,
}

/// Starts a write, checking `fence` first when the write is made under a lease.
pub async fn begin(backend: &dyn Backend, fence: Option<&Lease>) -> Result<Box<dyn Transaction>, LeaseError> {
    let mut transaction = backend.begin().await?;
    if let Some(lease) = fence {
        lease::check(&mut *transaction, backend.dialect(), lease).await?;
    }
    Ok(transaction)
}

/// Records that a source's sync started: until it finishes, the sync counts as interrupted.
pub async fn record_start(backend: &dyn Backend, source: &str, fence: Option<&Lease>) -> Result<(), LeaseError> {
    let mut transaction = begin(backend, fence).await?;
    let mut sql = super::sql::Sql::new(backend.dialect());
    sql.push("INSERT INTO source_sync (source_id, started_at, finished_at, report) VALUES (")
        .arg(Value::Text(source.to_owned()))
        .push(", ")
        .arg(Value::Int(now_millis()))
        .push(", 0, '{}') ON CONFLICT (source_id) DO UPDATE SET started_at = excluded.started_at");
    transaction.execute(&sql).await?;
    transaction.commit().await?;
    Ok(())
}

/// Records a sync's outcome and appends `status` (the source's status entry) to the change log.
pub async fn record(
    backend: &dyn Backend,
    status: Entry,
    record: &SyncRecord,
    fence: Option<&Lease>,
) -> Result<(), LeaseError> {
    let mut transaction = begin(backend, fence).await?;
    let mut sql = super::sql::Sql::new(backend.dialect());
    sql.push("INSERT INTO source_sync (source_id, started_at, finished_at, report) VALUES (")
        .arg(Value::Text(status.source_id.clone()))
        .push(", ")
        .arg(Value::Int(record.started_at))
        .push(", ")
        .arg(Value::Int(record.finished_at))
        .push(", ")
        .arg(Value::Text(serde_json::to_string(record).unwrap_or_default()))
        .push(
            ") ON CONFLICT (source_id) DO UPDATE SET started_at = excluded.started_at, \
             finished_at = excluded.finished_at, report = excluded.report",
        );
    transaction.execute(&sql).await?;
    let summary = super::audit::Record {
        action: "sync".to_owned(),
        entity: format!("source/{}", status.source_id),
        detail: Some(record.problem.clone().unwrap_or_else(|| record.summary.clone())),
        ..Default::default()
    };
    super::audit::append(&mut *transaction, backend.dialect(), super::audit::Actor::named("system"), summary).await?;
    changes::append(&mut *transaction, backend.dialect(), &[status]).await?;
    transaction.commit().await?;
    Ok(())
}

/// A source's last recorded sync.
pub async fn last(backend: &dyn Backend, source: &str) -> Result<Option<SyncRecord>, super::DbError> {
    let mut sql = super::sql::Sql::new(backend.dialect());
    sql.push("SELECT started_at, finished_at, report FROM source_sync WHERE source_id = ")
        .arg(Value::Text(source.to_owned()));
    let row = backend.read(&sql, &[Col::Int, Col::Int, Col::Text]).await?.into_iter().next();
    Ok(row.map(|row| {
        let mut row = row.into_iter();
        let started_at = row.next().and_then(|value| value.as_int()).unwrap_or_default();
        let finished_at = row.next().and_then(|value| value.as_int()).unwrap_or_default();
        let report = row.next().and_then(Value::into_text).unwrap_or_default();
        SyncRecord { started_at, finished_at, ..serde_json::from_str(&report).unwrap_or_default() }
    }))
}
