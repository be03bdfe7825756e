//! Leases: one holder at a time for a named job (syncing an external source), with a fencing number.
//!
//! A lease row names its holder, a `fence` that grows every time the lease is acquired, and an expiry
//! on the **database clock** (so replicas whose clocks disagree still agree). A holder renews before the
//! expiry; anyone may take an expired lease (and a holder may take back its own after a restart), which
//! bumps the fence. Every write made under a lease checks it inside the write's transaction
//! ([`check`]): holder, fence and expiry must still match, so a holder that was paused past its expiry
//! (a GC pause, `SIGSTOP`, a stalled VM) cannot write once someone else took over. On PostgreSQL the check
//! also locks the lease row (`FOR SHARE`) until the write commits, so a takeover waits for a write that
//! passed its check. Session advisory locks were not used: a holder may not notice its session died,
//! poolers break them, and they fence nothing.

use std::time::Duration;

use super::sql::{Backend, Col, DbError, Dialect, Sql, Transaction, Value};

/// A held lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    pub fence: i64,
    /// Database-clock ms since the epoch.
    pub expires_at: i64,
}

/// A write refused because its lease is no longer held.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("lease {name} (fence {fence}) is no longer held by {holder}: another replica took over")]
    Fenced { name: String, holder: String, fence: i64 },
    #[error(transparent)]
    Db(#[from] DbError),
}

fn ttl_ms(ttl: Duration) -> i64 {
    ttl.as_millis() as i64
}

/// Takes `name` for `holder` when it is free, expired, or already `holder`'s (a restart); returns the
/// lease with its new fence, or `None` while someone else holds it.
pub async fn acquire(backend: &dyn Backend, name: &str, holder: &str, ttl: Duration) -> Result<Option<Lease>, DbError> {
    let mut sql = Sql::new(backend.dialect());
    sql.push("INSERT INTO lease (name, holder, fence, acquired_at, expires_at) VALUES (")
        .arg(Value::Text(name.to_owned()))
        .push(", ")
        .arg(Value::Text(holder.to_owned()))
        .push(", 1, ")
        .now()
        .push(", ")
        .now()
        .push(" + ")
        .arg(Value::Int(ttl_ms(ttl)))
        .push(
            ") ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, fence = lease.fence + 1, \
             acquired_at = excluded.acquired_at, expires_at = excluded.expires_at \
             WHERE lease.expires_at <= excluded.acquired_at OR lease.holder = excluded.holder \
             RETURNING fence, expires_at",
        );
    let mut transaction = backend.begin().await?;
    let rows = transaction.read(&sql, &[Col::Int, Col::Int]).await?;
    transaction.commit().await?;
    Ok(rows.into_iter().next().map(|row| {
        let (fence, expires_at) = (row[0].as_int().unwrap_or_default(), row[1].as_int().unwrap_or_default());
        Lease { name: name.to_owned(), holder: holder.to_owned(), fence, expires_at }
    }))
}

/// Extends a held lease; `Ok(false)` when it was lost (expired and taken, or released).
pub async fn renew(backend: &dyn Backend, lease: &mut Lease, ttl: Duration) -> Result<bool, DbError> {
    let mut sql = Sql::new(backend.dialect());
    sql.push("UPDATE lease SET expires_at = ").now().push(" + ").arg(Value::Int(ttl_ms(ttl)));
    push_held(&mut sql, lease);
    sql.push(" RETURNING expires_at");
    let mut transaction = backend.begin().await?;
    let rows = transaction.read(&sql, &[Col::Int]).await?;
    transaction.commit().await?;
    match rows.first().and_then(|row| row[0].as_int()) {
        Some(expires_at) => {
            lease.expires_at = expires_at;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Gives a held lease up at once (graceful shutdown), so another replica can take it without waiting
/// for the expiry.
pub async fn release(backend: &dyn Backend, lease: &Lease) -> Result<(), DbError> {
    let mut sql = Sql::new(backend.dialect());
    sql.push("UPDATE lease SET expires_at = 0");
    push_held(&mut sql, lease);
    let mut transaction = backend.begin().await?;
    transaction.execute(&sql).await?;
    transaction.commit().await
}

/// Fails with [`LeaseError::Fenced`] unless `lease` is still held; call it first in every write made
/// under the lease.
pub async fn check(transaction: &mut dyn Transaction, dialect: Dialect, lease: &Lease) -> Result<(), LeaseError> {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT fence FROM lease");
    push_held(&mut sql, lease);
    if dialect == Dialect::Postgres {
        sql.push(" FOR SHARE");
    }
    if transaction.read(&sql, &[Col::Int]).await?.is_empty() {
        return Err(LeaseError::Fenced { name: lease.name.clone(), holder: lease.holder.clone(), fence: lease.fence });
    }
    Ok(())
}

/// ` WHERE` the lease is still held by its holder under its fence, and unexpired.
fn push_held(sql: &mut Sql, lease: &Lease) {
    sql.push(" WHERE name = ")
        .arg(Value::Text(lease.name.clone()))
        .push(" AND holder = ")
        .arg(Value::Text(lease.holder.clone()))
        .push(" AND fence = ")
        .arg(Value::Int(lease.fence))
        .push(" AND expires_at > ")
        .now();
}
