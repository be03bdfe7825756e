//! SQLite backend: the embedded default.
//!
//! One writer connection serializes writes (`BEGIN IMMEDIATE`, so a transaction never has to upgrade its
//! lock), and a small read-only pool serves reads concurrently thanks to WAL. Commits are durable:
//! `synchronous=FULL` syncs the WAL on every commit. `busy_timeout` covers other processes touching the file,
//! foreign keys are enforced and `LIKE` is case-sensitive, as on PostgreSQL. An in-memory URL
//! (`sqlite::memory:`) uses the writer connection for reads too, since each connection would otherwise see
//! its own database.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

use super::migrate;
use super::sql::{Backend, Col, DbError, Dialect, Row, Sql, Transaction, bind_and_decode};
use super::RegistryError;

bind_and_decode!(Sqlite);

const READ_CONNECTIONS: u32 = 4;

/// SQLite pools: one writer, several readers.
#[derive(Debug, Clone)]
pub struct SqliteBackend {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteBackend {
    /// Opens (creating if missing) the database at `url` and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self, RegistryError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|error| RegistryError::Config(format!("invalid SQLite URL {url:?}: {error}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            .pragma("case_sensitive_like", "ON");
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await?;
        migrate_sqlite(&writer).await?;
        let reader = if in_memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(READ_CONNECTIONS)
                .connect_with(options.read_only(true))
                .await?
        };
        Ok(SqliteBackend { writer, reader })
    }
}

async fn migrate_sqlite(pool: &SqlitePool) -> Result<(), RegistryError> {
    sqlx::query(migrate::CREATE_BOOKKEEPING).execute(pool).await?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM modelcat_migrations").fetch_all(pool).await?;
    for migration in migrate::pending(migrate::SQLITE, &applied) {
        let mut transaction = pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::raw_sql(migration.sql).execute(&mut *transaction).await.map_err(|error| {
            RegistryError::Migration(format!("{} ({}): {error}", migration.version, migration.name))
        })?;
        sqlx::query("INSERT INTO modelcat_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)")
            .bind(migration.version)
            .bind(migration.name)
            .bind(super::now_millis())
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        tracing::info!(version = migration.version, name = migration.name, "applied sqlite migration");
    }
    Ok(())
}

#[async_trait]
impl Backend for SqliteBackend {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn read(&self, sql: &Sql, cols: &[Col]) -> Result<Vec<Row>, DbError> {
        let rows = bind_all(sql).fetch_all(&self.reader).await?;
        Ok(rows.iter().map(|row| decode_row(row, cols)).collect::<Result<_, _>>()?)
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>, DbError> {
        Ok(Box::new(SqliteTransaction(self.writer.begin_with("BEGIN IMMEDIATE").await?)))
    }
}

struct SqliteTransaction(sqlx::Transaction<'static, Sqlite>);

#[async_trait]
impl Transaction for SqliteTransaction {
    async fn read(&mut self, sql: &Sql, cols: &[Col]) -> Result<Vec<Row>, DbError> {
        let rows = bind_all(sql).fetch_all(&mut *self.0).await?;
        Ok(rows.iter().map(|row| decode_row(row, cols)).collect::<Result<_, _>>()?)
    }

    async fn execute(&mut self, sql: &Sql) -> Result<u64, DbError> {
        Ok(bind_all(sql).execute(&mut *self.0).await?.rows_affected())
    }

    async fn commit(self: Box<Self>) -> Result<(), DbError> {
        Ok(self.0.commit().await?)
    }
}
