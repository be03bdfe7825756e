//! SQLite backend: the embedded default, on `rusqlite`.
//!
//! Writes go through one connection with **group commit**: each logical transaction runs inside a
//! `SAVEPOINT` of a shared outer transaction (`BEGIN IMMEDIATE`), and a committer task issues one durable
//! `COMMIT` for every logical transaction that finished while it waited for the connection. A caller's
//! [`Transaction::commit`] returns only after that `COMMIT` succeeded (or fails with it), so success still
//! means durable: `synchronous=FULL` syncs the WAL on every commit, but one sync now covers a batch. A
//! logical transaction that fails is rolled back to its savepoint without touching the rest of the batch.
//!
//! Statements of a logical transaction run inline on the async task holding the writer: single-row
//! statements take microseconds, so a thread handoff per statement would cost more than the work. What can
//! take long runs on the blocking pool: `BEGIN IMMEDIATE` (it may wait on another process's lock, up to
//! `busy_timeout`), the batch `COMMIT` (fsync and WAL checkpoints), and every read, each one query per
//! handoff on a connection from a small read-only pool. (sqlx's SQLite driver hands every statement and
//! row to a worker thread; profiling showed more than half the CPU in thread switches, so this backend
//! uses rusqlite directly.) Foreign keys are enforced and `LIKE` is case-sensitive, as on PostgreSQL.
//! Databases are files: in-memory SQLite is refused, since the writer and the readers must share one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql};
use tokio::sync::{Mutex, Notify, OwnedMutexGuard, watch};

use super::sql::{Backend, Col, CommitSignal, DbError, Dialect, Row, Sql, Transaction, Value};
use super::{OpenError, migrate};

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const STATEMENT_CACHE: usize = 256;
/// Address space each connection may memory-map (virtual; pages are shared with the OS cache).
const MMAP_BYTES: i64 = 1 << 30;
/// The writer's page cache, in KiB (negative: a size rather than a page count).
const WRITER_CACHE_KIB: i64 = -16 * 1024;
/// Each reader's page cache, in KiB. Readers see the database file through the memory map, so their
/// cache mostly holds copies of pages still in the WAL, which the OS caches anyway. A cache fills up to
/// its size and stays allocated, so 16 MiB for each of up to 8 idle readers let the heap grow by up to
/// 128 MiB under a steady write load (new change-log pages); 2 MiB bounds that at 16 MiB.
const READER_CACHE_KIB: i64 = -2 * 1024;
/// Idle read connections kept open.
const IDLE_READERS: usize = 8;

/// The outcome of a batch `COMMIT`, shared with every logical transaction in it.
type BatchOutcome = Option<Result<(), String>>;

/// The writer connection and the outer transaction it has open, if any.
struct WriterState {
    connection: Connection,
    batch: Option<watch::Sender<BatchOutcome>>,
}

/// SQLite: a group-committing writer and a read pool.
#[derive(Clone)]
pub struct SqliteBackend {
    writer: Arc<Mutex<WriterState>>,
    committer: Arc<Notify>,
    readers: Arc<ReadPool>,
    commits: CommitSignal,
}

impl SqliteBackend {
    /// Opens (creating if missing) the database at `url` (`sqlite://PATH` or `sqlite:PATH`), applies
    /// pending migrations and starts the committer task.
    pub async fn connect(url: &str) -> Result<Self, OpenError> {
        let path = file_path(url)?;
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|error| {
                OpenError::Config(format!("cannot create database directory {}: {error}", parent.display()))
            })?;
        }
        let writer_path = path.clone();
        let connection = blocking(move || {
            let mut connection = open(&writer_path, false)?;
            connection.pragma_update(None, "journal_mode", "WAL")?;
            migrate_sqlite(&mut connection)?;
            Ok(connection)
        })
        .await
        .map_err(|error| OpenError::Migration(format!("sqlite: {error}")))?;
        let backend = SqliteBackend {
            writer: Arc::new(Mutex::new(WriterState { connection, batch: None })),
            committer: Arc::new(Notify::new()),
            readers: Arc::new(ReadPool { path, idle: SyncMutex::new(Vec::new()) }),
            commits: CommitSignal::default(),
        };
        tokio::spawn(run_committer(Arc::downgrade(&backend.writer), backend.committer.clone()));
        Ok(backend)
    }
}

/// Returns the file of a `sqlite:` URL (query parameters are ignored).
fn file_path(url: &str) -> Result<PathBuf, OpenError> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.contains(":memory:") {
        return Err(OpenError::Config(format!(
            "SQLite needs a file ({url:?}): use e.g. sqlite://data/registry.db; in-memory databases are not supported"
        )));
    }
    Ok(PathBuf::from(path))
}

/// Opens a connection with the pragmas every connection needs.
fn open(path: &Path, read_only: bool) -> Result<Connection, DbError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let connection = Connection::open_with_flags(path, flags)?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    connection.pragma_update(None, "case_sensitive_like", "ON")?;
    // Read pages through a memory map instead of copying them into each connection's cache.
    connection.pragma_update(None, "mmap_size", MMAP_BYTES)?;
    connection.pragma_update(None, "cache_size", if read_only { READER_CACHE_KIB } else { WRITER_CACHE_KIB })?;
    Ok(connection)
}

fn migrate_sqlite(connection: &mut Connection) -> Result<(), DbError> {
    connection.execute_batch(migrate::CREATE_BOOKKEEPING)?;
    let applied: Vec<i64> = connection
        .prepare("SELECT version FROM modelcat_migrations")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for migration in migrate::pending(migrate::SQLITE, &applied) {
        let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        transaction.execute_batch(migration.sql)?;
        transaction.execute(
            "INSERT INTO modelcat_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            (migration.version, migration.name, super::now_millis()),
        )?;
        transaction.commit()?;
        tracing::info!(version = migration.version, name = migration.name, "applied sqlite migration");
    }
    Ok(())
}

/// Runs blocking work on the blocking pool.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, DbError> + Send + 'static) -> Result<T, DbError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| DbError::Backend(format!("sqlite worker failed: {error}")))?
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null(_) => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(number) => ToSqlOutput::Borrowed(ValueRef::Integer(*number)),
            Value::Double(number) => ToSqlOutput::Borrowed(ValueRef::Real(*number)),
            Value::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Value::Bool(flag) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*flag))),
            Value::Bytes(bytes) => ToSqlOutput::Borrowed(ValueRef::Blob(bytes)),
        })
    }
}

fn decode(value: ValueRef<'_>, col: Col) -> Value {
    match (value, col) {
        (ValueRef::Null, col) => Value::Null(col),
        (ValueRef::Integer(number), Col::Bool) => Value::Bool(number != 0),
        (ValueRef::Integer(number), Col::Double) => Value::Double(number as f64),
        (ValueRef::Integer(number), Col::Text) => Value::Text(number.to_string()),
        (ValueRef::Integer(number), Col::Int) => Value::Int(number),
        (ValueRef::Integer(number), Col::Bytes) => Value::Bytes(number.to_string().into_bytes()),
        (ValueRef::Real(number), Col::Int) => Value::Int(number as i64),
        (ValueRef::Real(number), _) => Value::Double(number),
        (ValueRef::Text(bytes) | ValueRef::Blob(bytes), Col::Bytes) => Value::Bytes(bytes.to_vec()),
        (ValueRef::Text(bytes) | ValueRef::Blob(bytes), _) => Value::Text(String::from_utf8_lossy(bytes).into_owned()),
    }
}

fn query(connection: &Connection, sql: &Sql, cols: &[Col]) -> Result<Vec<Row>, DbError> {
    let mut statement = connection.prepare_cached(&sql.text)?;
    let mut rows = statement.query(rusqlite::params_from_iter(sql.args.iter()))?;
    let mut decoded = Vec::new();
    while let Some(row) = rows.next()? {
        let values = cols
            .iter()
            .enumerate()
            .map(|(index, col)| Ok(decode(row.get_ref(index)?, *col)))
            .collect::<Result<_, DbError>>()?;
        decoded.push(values);
    }
    Ok(decoded)
}

fn execute(connection: &Connection, sql: &Sql) -> Result<u64, DbError> {
    let mut statement = connection.prepare_cached(&sql.text)?;
    Ok(statement.execute(rusqlite::params_from_iter(sql.args.iter()))? as u64)
}

/// Read-only connections, opened on demand and reused.
struct ReadPool {
    path: PathBuf,
    idle: SyncMutex<Vec<Connection>>,
}

impl ReadPool {
    /// Runs `work` on an idle connection (or a new one), returning it to the pool afterwards.
    fn with<T>(&self, work: impl FnOnce(&Connection) -> Result<T, DbError>) -> Result<T, DbError> {
        let idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        let connection = match idle {
            Some(connection) => connection,
            None => open(&self.path, true)?,
        };
        let result = work(&connection);
        let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < IDLE_READERS {
            idle.push(connection);
        }
        result
    }
}

/// Commits the open batch each time it is woken; ends when the backend is dropped.
async fn run_committer(writer: std::sync::Weak<Mutex<WriterState>>, wake: Arc<Notify>) {
    loop {
        wake.notified().await;
        let Some(writer) = writer.upgrade() else { return };
        let mut state = writer.lock_owned().await;
        let Some(batch) = state.batch.take() else { continue };
        let committed = tokio::task::spawn_blocking(move || {
            let outcome = state.connection.execute_batch("COMMIT").map_err(|error| error.to_string());
            if let Err(error) = &outcome {
                tracing::error!(%error, "sqlite batch commit failed; rolling the batch back");
                let _ = state.connection.execute_batch("ROLLBACK");
            }
            outcome
        })
        .await;
        let outcome = committed.unwrap_or_else(|error| Err(format!("sqlite commit worker failed: {error}")));
        let _ = batch.send(Some(outcome));
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn db_bytes(&self) -> Option<u64> {
        std::fs::metadata(&self.readers.path).ok().map(|metadata| metadata.len())
    }

    fn wal_bytes(&self) -> Option<u64> {
        let mut wal = self.readers.path.clone().into_os_string();
        wal.push("-wal");
        std::fs::metadata(wal).ok().map(|metadata| metadata.len())
    }

    async fn read(&self, sql: &Sql, cols: &[Col]) -> Result<Vec<Row>, DbError> {
        let readers = self.readers.clone();
        let (sql, cols) = (sql.clone(), cols.to_vec());
        blocking(move || readers.with(|connection| query(connection, &sql, &cols))).await
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>, DbError> {
        let mut state = self.writer.clone().lock_owned().await;
        if state.batch.is_none() {
            state = blocking(move || {
                state.connection.execute_batch("BEGIN IMMEDIATE")?;
                Ok(state)
            })
            .await?;
            state.batch = Some(watch::channel(None).0);
        }
        if let Err(error) = state.connection.execute_batch("SAVEPOINT logical") {
            // Let the committer close the batch, so the file's write lock is not held until the next write.
            drop(state);
            self.committer.notify_one();
            return Err(error.into());
        }
        Ok(Box::new(SqliteTransaction {
            state: Some(state),
            committer: self.committer.clone(),
            commits: self.commits.clone(),
            wake_followers: false,
        }))
    }

    fn commits(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }
}

/// A logical transaction: a savepoint in the writer's open batch.
struct SqliteTransaction {
    state: Option<OwnedMutexGuard<WriterState>>,
    committer: Arc<Notify>,
    commits: CommitSignal,
    /// Whether the commit wakes followers (the transaction appended to the change log).
    wake_followers: bool,
}

impl SqliteTransaction {
    fn connection(&self) -> &Connection {
        &self.state.as_ref().expect("transaction is open").connection
    }
}

#[async_trait]
impl Transaction for SqliteTransaction {
    async fn read(&mut self, sql: &Sql, cols: &[Col]) -> Result<Vec<Row>, DbError> {
        query(self.connection(), sql, cols)
    }

    async fn execute(&mut self, sql: &Sql) -> Result<u64, DbError> {
        execute(self.connection(), sql)
    }

    async fn commit(mut self: Box<Self>) -> Result<(), DbError> {
        let mut state = self.state.take().expect("transaction is open");
        if let Err(error) = state.connection.execute_batch("RELEASE logical") {
            rollback_logical(&mut state);
            self.committer.notify_one();
            return Err(error.into());
        }
        let Some(batch) = &state.batch else { return Ok(()) };
        let mut outcome = batch.subscribe();
        drop(state);
        self.committer.notify_one();
        let result = match outcome.wait_for(Option::is_some).await {
            Ok(result) => result.clone().unwrap_or(Ok(())),
            Err(_) => Err("the writer stopped before committing".to_owned()),
        };
        result.map_err(|message| DbError::Backend(format!("batch commit failed: {message}")))?;
        if self.wake_followers {
            self.commits.bump();
        }
        Ok(())
    }

    fn wake_followers_on_commit(&mut self) {
        self.wake_followers = true;
    }
}

/// Undoes a logical transaction's changes, leaving the rest of the batch intact.
fn rollback_logical(state: &mut WriterState) {
    let rolled_back = state.connection.execute_batch("ROLLBACK TO logical; RELEASE logical");
    if let Err(error) = rolled_back {
        tracing::error!(%error, "sqlite savepoint rollback failed; rolling the whole batch back");
        let _ = state.connection.execute_batch("ROLLBACK");
        if let Some(batch) = state.batch.take() {
            let _ = batch.send(Some(Err(format!("rolled back after a failed savepoint rollback: {error}"))));
        }
    }
}

impl Drop for SqliteTransaction {
    /// A transaction dropped without commit is rolled back to its savepoint before the writer is released,
    /// so no other transaction sees its changes; the committer then commits the rest of the batch.
    fn drop(&mut self) {
        if let Some(mut state) = self.state.take() {
            rollback_logical(&mut state);
            drop(state);
            self.committer.notify_one();
        }
    }
}
