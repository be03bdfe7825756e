//! PostgreSQL backend, selected by a `postgres://` (or `postgresql://`) database URL.
//!
//! One `PgPool` serves reads and writes; PostgreSQL's MVCC needs no writer serialization. Migrations run
//! under a transaction-scoped advisory lock, so several modelcat processes starting against one database
//! apply each migration once.
//!
//! A listener task holds one more connection, `LISTEN`ing on the change log's channel: each notification,
//! and each reconnect after a lost connection (notifications sent meanwhile are lost), bumps the
//! backend's [`CommitSignal`], so followers read the log. It retries every second while the server is
//! unreachable and ends at its first wake-up after the backend is dropped.

use std::str::FromStr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use tokio::sync::watch;

use super::OpenError;
use super::changes::CHANNEL;
use super::migrate;
use super::sql::{Backend, Col, CommitSignal, DbError, Dialect, Row, Sql, Transaction, Value};

const POOL_CONNECTIONS: u32 = 8;
/// Advisory lock key taken while migrating ("modelcat" in ASCII, truncated to fit an i64).
const MIGRATION_LOCK: i64 = 0x6d6f_6465_6c63_6174;

/// A PostgreSQL connection pool.
#[derive(Debug, Clone)]
pub struct PostgresBackend {
    pool: PgPool,
    commits: CommitSignal,
    /// Dropped with the last clone of the backend, which ends the listener task.
    _alive: Arc<()>,
}

impl PostgresBackend {
    /// Connects to `url` and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self, OpenError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|error| OpenError::Config(format!("invalid PostgreSQL URL: {error}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        migrate_postgres(&pool).await?;
        let alive = Arc::new(());
        let commits = CommitSignal::default();
        tokio::spawn(listen(pool.clone(), commits.clone(), Arc::downgrade(&alive)));
        Ok(PostgresBackend { pool, commits, _alive: alive })
    }
}

/// Bumps `commits` on every notification on the change log's channel and after every reconnect.
async fn listen(pool: PgPool, commits: CommitSignal, alive: Weak<()>) {
    while alive.strong_count() > 0 {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for change-log notifications; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        listener.ignore_pool_close_event(true);
        if let Err(error) = listener.listen(CHANNEL).await {
            tracing::warn!(%error, "cannot listen for change-log notifications; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // Whatever was missed before this connection listened is read now.
        commits.bump();
        loop {
            let received = listener.try_recv().await;
            if alive.strong_count() == 0 {
                return;
            }
            match received {
                Ok(Some(_notification)) => commits.bump(),
                Ok(None) => {
                    tracing::warn!("change-log listener reconnected; reading what it missed");
                    commits.bump();
                }
                Err(error) => {
                    tracing::warn!(%error, "change-log listener failed; reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            }
        }
    }
}

async fn migrate_postgres(pool: &PgPool) -> Result<(), OpenError> {
    let mut transaction = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(MIGRATION_LOCK).execute(&mut *transaction).await?;
    sqlx::query(migrate::CREATE_BOOKKEEPING).execute(&mut *transaction).await?;
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM modelcat_migrations").fetch_all(&mut *transaction).await?;
    for migration in migrate::pending(migrate::POSTGRES, &applied) {
        sqlx::raw_sql(migration.sql)
            .execute(&mut *transaction)
            .await
            .map_err(|error| OpenError::Migration(format!("{} ({}): {error}", migration.version, migration.name)))?;
        sqlx::query("INSERT INTO modelcat_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
            .bind(migration.version)
            .bind(migration.name)
            .bind(super::now_millis())
            .execute(&mut *transaction)
            .await?;
        tracing::info!(version = migration.version, name = migration.name, "applied postgres migration");
    }
    transaction.commit().await?;
    Ok(())
}

#[async_trait]
impl Backend for PostgresBackend {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn read(&self, sql: &Sql, cols: &[Col]) -> Result<Vec<Row>, DbError> {
        let rows = bind_all(sql).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|row| decode_row(row, cols)).collect::<Result<_, _>>()?)
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>, DbError> {
        let transaction = self.pool.begin().await?;
        Ok(Box::new(PostgresTransaction { transaction, commits: self.commits.clone(), wake_followers: false }))
    }

    fn commits(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }
}

struct PostgresTransaction {
    transaction: sqlx::Transaction<'static, Postgres>,
    commits: CommitSignal,
    /// Whether the commit wakes followers (the transaction appended to the change log).
    wake_followers: bool,
}

#[async_trait]
impl Transaction for PostgresTransaction {
    async fn read(&mut self, sql: &Sql, cols: &[Col]) -> Result<Vec<Row>, DbError> {
        let rows = bind_all(sql).fetch_all(&mut *self.transaction).await?;
        Ok(rows.iter().map(|row| decode_row(row, cols)).collect::<Result<_, _>>()?)
    }

    async fn execute(&mut self, sql: &Sql) -> Result<u64, DbError> {
        Ok(bind_all(sql).execute(&mut *self.transaction).await?.rows_affected())
    }

    async fn commit(self: Box<Self>) -> Result<(), DbError> {
        self.transaction.commit().await?;
        if self.wake_followers {
            self.commits.bump();
        }
        Ok(())
    }

    fn wake_followers_on_commit(&mut self) {
        self.wake_followers = true;
    }
}

/// Binds the neutral arguments of `sql` to a sqlx query.
fn bind_all(sql: &Sql) -> sqlx::query::Query<'_, Postgres, <Postgres as sqlx::Database>::Arguments> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.text.as_str()));
    for value in &sql.args {
        query = match value {
            Value::Null(Col::Int) => query.bind(None::<i64>),
            Value::Null(Col::Double) => query.bind(None::<f64>),
            Value::Null(Col::Text) => query.bind(None::<String>),
            Value::Null(Col::Bool) => query.bind(None::<bool>),
            Value::Null(Col::Bytes) => query.bind(None::<Vec<u8>>),
            Value::Int(number) => query.bind(*number),
            Value::Double(number) => query.bind(*number),
            Value::Text(text) => query.bind(text.as_str()),
            Value::Bool(flag) => query.bind(*flag),
            Value::Bytes(bytes) => query.bind(bytes.as_slice()),
        };
    }
    query
}

/// Decodes one row by the expected column types.
fn decode_row(row: &sqlx::postgres::PgRow, cols: &[Col]) -> Result<Row, sqlx::Error> {
    use sqlx::Row as _;
    cols.iter()
        .enumerate()
        .map(|(index, col)| {
            Ok(match col {
                Col::Int => row.try_get::<Option<i64>, _>(index)?.map_or(Value::Null(Col::Int), Value::Int),
                Col::Double => row.try_get::<Option<f64>, _>(index)?.map_or(Value::Null(Col::Double), Value::Double),
                Col::Text => row.try_get::<Option<String>, _>(index)?.map_or(Value::Null(Col::Text), Value::Text),
                Col::Bool => row.try_get::<Option<bool>, _>(index)?.map_or(Value::Null(Col::Bool), Value::Bool),
                Col::Bytes => row.try_get::<Option<Vec<u8>>, _>(index)?.map_or(Value::Null(Col::Bytes), Value::Bytes),
            })
        })
        .collect()
}
