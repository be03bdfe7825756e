//! SQLite backend: the embedded default.
//!
//! Writes go through one connection with **group commit**: each logical transaction runs inside a
//! `SAVEPOINT` of a shared outer transaction (`BEGIN IMMEDIATE`), and a committer task issues one durable
//! `COMMIT` for every logical transaction that finished while it waited for the connection. A caller's
//! [`Transaction::commit`] returns only after that `COMMIT` succeeded (or fails with it), so success still
//! means durable: `synchronous=FULL` syncs the WAL on every commit, but one sync now covers a batch. A
//! logical transaction that fails is rolled back to its savepoint without touching the others in the
//! batch. Reads use a separate read-only pool and see committed data only (WAL).
//!
//! `busy_timeout` covers other processes touching the file, foreign keys are enforced and `LIKE` is
//! case-sensitive, as on PostgreSQL. Databases are files: in-memory SQLite is refused, since the writer
//! and the readers must share one database.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions as _, Connection as _, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{Mutex, Notify, OwnedMutexGuard, watch};

use super::RegistryError;
use super::migrate;
use super::sql::{Backend, Col, DbError, Dialect, Row, Sql, Transaction, bind_and_decode};

bind_and_decode!(Sqlite);

const READ_CONNECTIONS: u32 = 4;

/// The outcome of a batch `COMMIT`, shared with every logical transaction in it.
type BatchOutcome = Option<Result<(), String>>;

/// The writer connection and the outer transaction it has open, if any.
struct WriterState {
    connection: SqliteConnection,
    batch: Option<watch::Sender<BatchOutcome>>,
}

/// SQLite: a group-committing writer and a read pool.
#[derive(Clone)]
pub struct SqliteBackend {
    writer: Arc<Mutex<WriterState>>,
    committer: Arc<Notify>,
    reader: SqlitePool,
}

impl SqliteBackend {
    /// Opens (creating if missing) the database at `url`, applies pending migrations and starts the
    /// committer task.
    pub async fn connect(url: &str) -> Result<Self, RegistryError> {
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Err(RegistryError::Config(format!(
                "in-memory SQLite ({url}) is not supported: use a file, e.g. sqlite://data/registry.db"
            )));
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|error| RegistryError::Config(format!("invalid SQLite URL {url:?}: {error}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            .pragma("case_sensitive_like", "ON");
        let mut connection = options.connect().await?;
        migrate_sqlite(&mut connection).await?;
        let reader =
            SqlitePoolOptions::new().max_connections(READ_CONNECTIONS).connect_with(options.read_only(true)).await?;
        let backend = SqliteBackend {
            writer: Arc::new(Mutex::new(WriterState { connection, batch: None })),
            committer: Arc::new(Notify::new()),
            reader,
        };
        tokio::spawn(run_committer(Arc::downgrade(&backend.writer), backend.committer.clone()));
        Ok(backend)
    }
}

/// Commits the open batch each time it is woken; ends when the backend is dropped.
async fn run_committer(writer: std::sync::Weak<Mutex<WriterState>>, wake: Arc<Notify>) {
    loop {
        wake.notified().await;
        let Some(writer) = writer.upgrade() else { return };
        let mut state = writer.lock().await;
        commit_batch(&mut state).await;
    }
}

/// Commits the open outer transaction, if any, and tells its members the outcome.
async fn commit_batch(state: &mut WriterState) {
    let Some(batch) = state.batch.take() else { return };
    let outcome = sqlx::query("COMMIT").execute(&mut state.connection).await.map(|_| ()).map_err(|error| error.to_string());
    if let Err(error) = &outcome {
        tracing::error!(%error, "sqlite batch commit failed; rolling the batch back");
        let _ = sqlx::query("ROLLBACK").execute(&mut state.connection).await;
    }
    let _ = batch.send(Some(outcome));
}

async fn migrate_sqlite(connection: &mut SqliteConnection) -> Result<(), RegistryError> {
    sqlx::query(migrate::CREATE_BOOKKEEPING).execute(&mut *connection).await?;
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM modelcat_migrations").fetch_all(&mut *connection).await?;
    for migration in migrate::pending(migrate::SQLITE, &applied) {
        let mut transaction = connection.begin_with("BEGIN IMMEDIATE").await?;
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
        let mut state = self.writer.clone().lock_owned().await;
        if state.batch.is_none() {
            sqlx::query("BEGIN IMMEDIATE").execute(&mut state.connection).await?;
            state.batch = Some(watch::channel(None).0);
        }
        sqlx::query("SAVEPOINT logical").execute(&mut state.connection).await?;
        Ok(Box::new(SqliteTransaction { state: Some(state), committer: self.committer.clone() }))
    }
}

/// A logical transaction: a savepoint in the writer's open batch.
struct SqliteTransaction {
    state: Option<OwnedMutexGuard<WriterState>>,
    committer: Arc<Notify>,
}

impl SqliteTransaction {
    fn connection(&mut self) -> &mut SqliteConnection {
        &mut self.state.as_mut().expect("transaction is open").connection
    }
}

#[async_trait]
impl Transaction for SqliteTransaction {
    async fn read(&mut self, sql: &Sql, cols: &[Col]) -> Result<Vec<Row>, DbError> {
        let rows = bind_all(sql).fetch_all(self.connection()).await?;
        Ok(rows.iter().map(|row| decode_row(row, cols)).collect::<Result<_, _>>()?)
    }

    async fn execute(&mut self, sql: &Sql) -> Result<u64, DbError> {
        Ok(bind_all(sql).execute(self.connection()).await?.rows_affected())
    }

    async fn commit(mut self: Box<Self>) -> Result<(), DbError> {
        let mut state = self.state.take().expect("transaction is open");
        if let Err(error) = sqlx::query("RELEASE logical").execute(&mut state.connection).await {
            rollback_logical(&mut state).await;
            self.committer.notify_one();
            return Err(error.into());
        }
        let mut outcome = match &state.batch {
            Some(batch) => batch.subscribe(),
            None => return Ok(()),
        };
        drop(state);
        self.committer.notify_one();
        let result = match outcome.wait_for(Option::is_some).await {
            Ok(result) => result.clone().unwrap_or(Ok(())),
            Err(_) => Err("the writer stopped before committing".to_owned()),
        };
        result.map_err(|message| DbError::Sqlx(sqlx::Error::Protocol(format!("batch commit failed: {message}"))))
    }
}

/// Undoes a logical transaction's changes, leaving the rest of the batch intact.
async fn rollback_logical(state: &mut WriterState) {
    let rolled_back = sqlx::query("ROLLBACK TO logical").execute(&mut state.connection).await;
    let released = sqlx::query("RELEASE logical").execute(&mut state.connection).await;
    if let Err(error) = rolled_back.and(released) {
        tracing::error!(%error, "sqlite savepoint rollback failed; rolling the whole batch back");
        let _ = sqlx::query("ROLLBACK").execute(&mut state.connection).await;
        if let Some(batch) = state.batch.take() {
            let _ = batch.send(Some(Err(format!("rolled back after a failed savepoint rollback: {error}"))));
        }
    }
}

impl Drop for SqliteTransaction {
    /// A transaction dropped without commit is rolled back to its savepoint by a task that keeps the
    /// writer locked until it is done, so no other transaction sees its changes.
    fn drop(&mut self) {
        if let Some(mut state) = self.state.take() {
            let committer = self.committer.clone();
            tokio::spawn(async move {
                rollback_logical(&mut state).await;
                drop(state);
                committer.notify_one();
            });
        }
    }
}
