//! The persistence layer every part of modelcat shares: one SQL database, SQLite or PostgreSQL.
//!
//! - [`sql`]: the narrow [`Backend`](sql::Backend) seam (neutral values, placeholders, constraint errors).
//! - [`sqlite`] and [`postgres`]: the two backends; [`connect`] picks one from the database URL.
//! - [`migrate`]: one ordered migration set per backend, applied at connect.
//! - [`audit`]: the audit log's tables and hash chain (what it records: [`crate::audit`]).
//! - [`changes`]: the change log (what the catalog shows changed, in commit order) that replicas and
//!   peers follow.
//! - [`lease`]: leases with fencing numbers, so one replica at a time syncs an external source.
//! - [`replicas`]: replica heartbeats and applied positions, which bound log pruning.
//! - [`syncs`]: the last sync of each external source (Hub, peer), whichever replica ran it.
//! - [`instance_id`]: this deployment's persistent id, shared by its replicas (federation's loop guard).
//!
//! The registry ([`crate::registry`]) and the Hub mirror ([`crate::mirror`]) depend on this module; it
//! depends on neither.

pub mod audit;
pub mod changes;
pub mod lease;
pub mod migrate;
pub mod outbox;
pub mod postgres;
pub mod replicas;
pub mod sql;
pub mod sqlite;
pub mod syncs;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub use sql::{Backend, DbError};

/// Why the store cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("invalid database configuration: {0}")]
    Config(String),
    #[error("migration {0}")]
    Migration(String),
    #[error("database error: {0}")]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for OpenError {
    fn from(error: sqlx::Error) -> Self {
        OpenError::Db(error.into())
    }
}

/// Connects to the database at `url` (`sqlite:` or `postgres:`), creating and migrating it as needed.
/// Everything that persists shares this connection.
pub async fn connect(url: &str) -> Result<Arc<dyn Backend>, OpenError> {
    let backend: Arc<dyn Backend> = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Arc::new(postgres::PostgresBackend::connect(url).await?)
    } else if url.starts_with("sqlite:") {
        Arc::new(sqlite::SqliteBackend::connect(url).await?)
    } else {
        return Err(OpenError::Config(format!("unsupported database URL {url:?}: use sqlite://PATH or postgres://…")));
    };
    changes::ensure_epoch(&*backend).await?;
    Ok(backend)
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// This deployment's persistent id, created with the database (every replica of one store shares it):
/// peers use it to keep records from travelling back to where they came from.
pub async fn instance_id(backend: &dyn Backend) -> Result<String, DbError> {
    use sql::{Col, Sql, Value};
    let name = || Value::Text("instance_id".to_owned());
    let mut transaction = backend.begin().await?;
    let mut insert = Sql::new(backend.dialect());
    let fresh = format!("mc-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    insert
        .push("INSERT INTO store_meta (name, value) VALUES (")
        .arg(name())
        .push(", ")
        .arg(Value::Text(fresh))
        .push(") ON CONFLICT (name) DO NOTHING");
    transaction.execute(&insert).await?;
    let mut select = Sql::new(backend.dialect());
    select.push("SELECT value FROM store_meta WHERE name = ").arg(name());
    let row = transaction.read(&select, &[Col::Text]).await?.into_iter().next();
    transaction.commit().await?;
    Ok(row.and_then(|row| row.into_iter().next()?.into_text()).unwrap_or_default())
}
