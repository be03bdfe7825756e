//! The narrow seam between modelcat's SQL and a concrete database.
//!
//! The registry store ([`crate::registry::sql_store::SqlStore`]), the mirror store, the change log and the
//! leases write portable SQL once and run it through a [`Backend`]: [`super::sqlite::SqliteBackend`] (rusqlite: one group-committing writer connection and a
//! read pool) or [`super::postgres::PostgresBackend`] (sqlx `PgPool`). A backend binds [`Value`]s, decodes
//! rows into [`Value`]s by the expected [`Col`] types, owns its connections, pragmas and migrations, and
//! classifies constraint violations. Each backend uses its native driver, and no query has to be generic
//! over a driver's database type.
//!
//! Placeholders are written by [`Sql::arg`] in the backend's own style (`?1` for SQLite, `$1` for
//! PostgreSQL), so no SQL text is ever built from user input.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

/// A bound parameter or a decoded column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL of a column type (PostgreSQL types parameters, so even NULL needs one).
    Null(Col),
    Int(i64),
    Double(f64),
    Text(String),
    Bool(bool),
    Bytes(Vec<u8>),
}

impl Value {
    /// Text, or a text-typed NULL.
    pub fn text_or_null(text: Option<String>) -> Value {
        text.map_or(Value::Null(Col::Text), Value::Text)
    }

    /// An integer, or an integer-typed NULL.
    pub fn int_or_null(number: Option<i64>) -> Value {
        number.map_or(Value::Null(Col::Int), Value::Int)
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(number) => Some(*number),
            _ => None,
        }
    }

    pub fn into_text(self) -> Option<String> {
        match self {
            Value::Text(text) => Some(text),
            _ => None,
        }
    }

    pub fn into_bytes(self) -> Option<Vec<u8>> {
        match self {
            Value::Bytes(bytes) => Some(bytes),
            _ => None,
        }
    }
}

/// The type a result column is decoded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    Int,
    Double,
    Text,
    Bool,
    Bytes,
}

/// The placeholder style of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A SQL statement under construction with its bound arguments.
#[derive(Debug, Clone)]
pub struct Sql {
    dialect: Dialect,
    pub text: String,
    pub args: Vec<Value>,
}

impl Sql {
    pub fn new(dialect: Dialect) -> Self {
        Sql { dialect, text: String::with_capacity(256), args: Vec::new() }
    }

    /// Appends SQL text (never user input).
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Binds a value and appends its placeholder.
    pub fn arg(&mut self, value: Value) -> &mut Self {
        self.args.push(value);
        let index = self.args.len();
        match self.dialect {
            Dialect::Sqlite => self.text.push_str(&format!("?{index}")),
            Dialect::Postgres => self.text.push_str(&format!("${index}")),
        }
        self
    }

    /// Appends each value as an argument, separated by commas (a `VALUES` row, an `IN` list).
    pub fn arg_list(&mut self, values: impl IntoIterator<Item = Value>) -> &mut Self {
        for (index, value) in values.into_iter().enumerate() {
            if index > 0 {
                self.push(", ");
            }
            self.arg(value);
        }
        self
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Appends the database clock, in milliseconds since the Unix epoch (leases compare against it, so
    /// replicas on machines whose clocks disagree still agree on who holds what).
    pub fn now(&mut self) -> &mut Self {
        self.push(match self.dialect {
            Dialect::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
            Dialect::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        })
    }
}

/// Counts commits that appended to the change log: this process's transactions that say so
/// ([`Transaction::wake_followers_on_commit`]) and, on
/// PostgreSQL, other processes' commits announced by `NOTIFY` (and every reconnect of the listener, since
/// notifications sent while it was disconnected are lost). It only wakes followers, which then read the
/// log itself.
#[derive(Debug, Clone)]
pub struct CommitSignal(Arc<watch::Sender<u64>>);

impl Default for CommitSignal {
    fn default() -> Self {
        CommitSignal(Arc::new(watch::channel(0).0))
    }
}

impl CommitSignal {
    pub fn bump(&self) {
        self.0.send_modify(|count| *count = count.wrapping_add(1));
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

/// A row decoded in the order of the requested columns.
pub type Row = Vec<Value>;

/// A database failure, with constraint violations told apart so the store can answer 409.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A unique index rejected the write; the text names the index or columns.
    #[error("unique constraint violated: {0}")]
    Unique(String),
    /// A foreign key rejected the write.
    #[error("foreign key constraint violated: {0}")]
    ForeignKey(String),
    #[error(transparent)]
    Sqlx(sqlx::Error),
    #[error(transparent)]
    Sqlite(rusqlite::Error),
    /// The backend itself failed (a worker panicked, a batch commit failed).
    #[error("{0}")]
    Backend(String),
}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> Self {
        if let sqlx::Error::Database(database_error) = &error {
            let detail = database_error.constraint().map_or_else(|| database_error.message().to_owned(), str::to_owned);
            if database_error.is_unique_violation() {
                return DbError::Unique(detail);
            }
            if database_error.is_foreign_key_violation() {
                return DbError::ForeignKey(detail);
            }
        }
        DbError::Sqlx(error)
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(error: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(failure, message) = &error {
            let detail = message.clone().unwrap_or_else(|| failure.to_string());
            match failure.extended_code {
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                    return DbError::Unique(detail);
                }
                rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => return DbError::ForeignKey(detail),
                _ => {}
            }
        }
        DbError::Sqlite(error)
    }
}

/// A connection to one database: reads outside transactions, and transactions for writes.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    fn dialect(&self) -> Dialect;

    /// Runs a query outside any transaction and decodes every row.
    async fn read(&self, sql: &Sql, cols: &[Col]) -> Result<Vec<Row>, DbError>;

    /// Starts a write transaction (on SQLite, `BEGIN IMMEDIATE` on the single writer connection).
    async fn begin(&self) -> Result<Box<dyn Transaction>, DbError>;

    /// Signals commits that may have changed the change log (see [`CommitSignal`]).
    fn commits(&self) -> watch::Receiver<u64>;

    /// The size of the database file, where the database is a file this process can see.
    fn db_bytes(&self) -> Option<u64> {
        None
    }

    /// The size of the write-ahead log file, where the database keeps one this process can see.
    fn wal_bytes(&self) -> Option<u64> {
        None
    }
}

/// An open write transaction; dropping it without [`Transaction::commit`] rolls back.
#[async_trait]
pub trait Transaction: Send {
    async fn read(&mut self, sql: &Sql, cols: &[Col]) -> Result<Vec<Row>, DbError>;

    /// Runs a statement and returns the number of rows it touched.
    async fn execute(&mut self, sql: &Sql) -> Result<u64, DbError>;

    async fn commit(self: Box<Self>) -> Result<(), DbError>;

    /// Marks the transaction as having appended to the change log: its commit wakes this process's
    /// followers (see [`CommitSignal`]).
    fn wake_followers_on_commit(&mut self);
}
