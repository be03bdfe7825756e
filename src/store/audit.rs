//! The audit tables (see [`crate::audit`] for what the log is for): entries, chained at insert on
//! SQLite and by [`seal`] on PostgreSQL, and signed checkpoints of the chain's head.
//!
//! An entry's hash is SHA-256 over the previous entry's hash and the entry's canonical JSON (fixed field
//! order, no whitespace, serde_json's string escaping), as lowercase hex.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::now_millis;
use super::sql::{Backend, Col, DbError, Dialect, Row, Sql, Transaction, Value};

/// Who a write is made for, and the request that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub subject: String,
    pub request_id: Option<String>,
    /// Whether `subject` is an authenticated identity, which then manages the registered models it
    /// creates (not anonymous callers, nor the server's own writers).
    pub authenticated: bool,
}

impl Actor {
    pub fn named(subject: &str) -> Actor {
        Actor { subject: subject.to_owned(), request_id: None, authenticated: false }
    }
}

/// What an entry records (the actor and time are added by [`append`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// `create`, `update`, `delete`, `token.create`, `token.revoke`, `registry.reset`, `sync`.
    pub action: String,
    /// What it was done to: `registered_model/12`, `token/3`, `source/hub`.
    pub entity: String,
    /// SHA-256 (hex) of the entity's stored state before and after.
    pub before: Option<String>,
    pub after: Option<String>,
    /// A short, secret-free description (a sync's summary, a token's name and role).
    pub detail: Option<String>,
}

/// The hash the first entry chains to.
pub const GENESIS: &str = "";

/// An entry as stored and hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub seq: i64,
    /// Milliseconds since the epoch.
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub before_digest: Option<String>,
    pub after_digest: Option<String>,
    pub request_id: Option<String>,
    pub detail: Option<String>,
}

/// The hash of `entry` chained to `previous`.
pub fn hash(previous: &str, entry: &Entry) -> String {
    let canonical = serde_json::to_string(entry).expect("an entry serializes");
    let mut hasher = Sha256::new();
    hasher.update(previous.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical.as_bytes());
    crate::hex::encode(&hasher.finalize())
}

const SEAL_LOCK: i64 = 0x0061_7564_6974;

const COLUMNS: &str = "seq, at, actor, action, entity, before_digest, after_digest, request_id, detail, hash";
const COLS: &[Col] =
    &[Col::Int, Col::Int, Col::Text, Col::Text, Col::Text, Col::Text, Col::Text, Col::Text, Col::Text, Col::Text];

/// Appends `record`, made by `actor`, inside `transaction`.
pub async fn append(
    transaction: &mut dyn Transaction,
    dialect: Dialect,
    actor: Actor,
    record: Record,
) -> Result<(), DbError> {
    let mut entry = Entry {
        seq: 0,
        at: now_millis(),
        actor: actor.subject,
        action: record.action,
        entity: record.entity,
        before_digest: record.before,
        after_digest: record.after,
        request_id: actor.request_id,
        detail: record.detail,
    };
    let mut sql = Sql::new(dialect);
    sql.push("INSERT INTO audit_log (at, actor, action, entity, before_digest, after_digest, request_id, detail");
    if dialect == Dialect::Sqlite {
        // One writer at a time: chain it now.
        let (previous_seq, previous_hash) = head(transaction, dialect).await?;
        entry.seq = previous_seq + 1;
        let hash = hash(&previous_hash, &entry);
        sql.push(", seq, prev_hash, hash");
        values(&mut sql, &entry);
        sql.push(", ").arg(Value::Int(entry.seq)).push(", ").arg(Value::Text(previous_hash));
        sql.push(", ").arg(Value::Text(hash)).push(")");
    } else {
        values(&mut sql, &entry);
        sql.push(")");
    }
    transaction.execute(&sql).await?;
    Ok(())
}

fn values(sql: &mut Sql, entry: &Entry) {
    sql.push(") VALUES (").arg(Value::Int(entry.at));
    for value in [
        Value::Text(entry.actor.clone()),
        Value::Text(entry.action.clone()),
        Value::Text(entry.entity.clone()),
        Value::text_or_null(entry.before_digest.clone()),
        Value::text_or_null(entry.after_digest.clone()),
        Value::text_or_null(entry.request_id.clone()),
        Value::text_or_null(entry.detail.clone()),
    ] {
        sql.push(", ").arg(value);
    }
}

/// The last chained entry's position and hash (0 and the genesis hash when there is none).
async fn head(transaction: &mut dyn Transaction, dialect: Dialect) -> Result<(i64, String), DbError> {
    Ok(head_of(transaction.read(&head_query(dialect), &[Col::Int, Col::Text]).await?))
}

fn head_query(dialect: Dialect) -> Sql {
    let mut sql = Sql::new(dialect);
    // After retention removed every entry, the chain continues from the horizon.
    // Each side reads one row from its index.
    sql.push(
        "SELECT seq, hash FROM (SELECT seq, hash FROM audit_log WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1) l \
         UNION ALL SELECT seq, hash FROM (SELECT seq, hash FROM audit_horizon ORDER BY seq DESC LIMIT 1) h \
         ORDER BY seq DESC LIMIT 1",
    );
    sql
}

fn head_of(rows: Vec<Row>) -> (i64, String) {
    let Some(row) = rows.into_iter().next() else { return (0, GENESIS.to_owned()) };
    let mut values = row.into_iter();
    let seq = values.next().and_then(|value| value.as_int()).unwrap_or(0);
    (seq, values.next().and_then(Value::into_text).unwrap_or_default())
}

/// Chains committed, unchained entries in insertion order (PostgreSQL; SQLite chains at insert).
/// Returns how many were chained.
pub async fn seal(backend: &dyn Backend) -> Result<u64, DbError> {
    let dialect = backend.dialect();
    if dialect == Dialect::Sqlite {
        return Ok(0);
    }
    let mut pending = Sql::new(dialect);
    pending.push("SELECT id FROM audit_log WHERE seq IS NULL LIMIT 1");
    if backend.read(&pending, &[Col::Int]).await?.is_empty() {
        return Ok(0);
    }
    let mut transaction = backend.begin().await?;
    let mut lock = Sql::new(dialect);
    lock.push("SELECT CAST(1 AS BIGINT) FROM (SELECT pg_advisory_xact_lock(")
        .arg(Value::Int(SEAL_LOCK))
        .push(")) AS l");
    transaction.read(&lock, &[Col::Int]).await?;
    let (mut seq, mut previous) = head(&mut *transaction, dialect).await?;
    let mut unsealed = Sql::new(dialect);
    unsealed.push(
        "SELECT id, at, actor, action, entity, before_digest, after_digest, request_id, detail FROM audit_log \
         WHERE seq IS NULL ORDER BY id LIMIT 10000",
    );
    let cols = [Col::Int, Col::Int, Col::Text, Col::Text, Col::Text, Col::Text, Col::Text, Col::Text, Col::Text];
    let rows = transaction.read(&unsealed, &cols).await?;
    let count = rows.len() as u64;
    for row in rows {
        let id = row.first().and_then(Value::as_int).unwrap_or_default();
        seq += 1;
        let entry = entry_from(seq, row.into_iter().skip(1).collect());
        let hash = hash(&previous, &entry);
        let mut update = Sql::new(dialect);
        update
            .push("UPDATE audit_log SET seq = ")
            .arg(Value::Int(seq))
            .push(", prev_hash = ")
            .arg(Value::Text(previous.clone()))
            .push(", hash = ")
            .arg(Value::Text(hash.clone()))
            .push(" WHERE id = ")
            .arg(Value::Int(id));
        transaction.execute(&update).await?;
        previous = hash;
    }
    transaction.commit().await?;
    Ok(count)
}

/// An entry from `at, actor, action, entity, before, after, request_id, detail` values.
fn entry_from(seq: i64, values: Vec<Value>) -> Entry {
    let mut values = values.into_iter();
    let at = values.next().and_then(|value| value.as_int()).unwrap_or_default();
    let mut texts = values.map(Value::into_text);
    let mut next = || texts.next().flatten();
    Entry {
        seq,
        at,
        actor: next().unwrap_or_default(),
        action: next().unwrap_or_default(),
        entity: next().unwrap_or_default(),
        before_digest: next(),
        after_digest: next(),
        request_id: next(),
        detail: next(),
    }
}

/// A chained entry with its hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stored {
    #[serde(flatten)]
    pub entry: Entry,
    pub hash: String,
}

fn stored(row: Row) -> Stored {
    let mut values = row.into_iter();
    let seq = values.next().and_then(|value| value.as_int()).unwrap_or_default();
    let mut values: Vec<Value> = values.collect();
    let hash = values.pop().and_then(Value::into_text).unwrap_or_default();
    Stored { entry: entry_from(seq, values), hash }
}

/// What a page of the audit log is filtered by.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub actor: Option<String>,
    pub action: Option<String>,
    /// An entity (`registered_model/12`) or every entity of a kind (`registered_model/`).
    pub entity: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Entries after this position.
    pub after: i64,
    pub limit: i64,
}

/// Chained entries matching `filter`, oldest first.
pub async fn page(backend: &dyn Backend, filter: &Filter) -> Result<Vec<Stored>, DbError> {
    let mut sql = Sql::new(backend.dialect());
    sql.push("SELECT ").push(COLUMNS).push(" FROM audit_log WHERE seq > ").arg(Value::Int(filter.after));
    if let Some(actor) = &filter.actor {
        sql.push(" AND actor = ").arg(Value::Text(actor.clone()));
    }
    if let Some(action) = &filter.action {
        sql.push(" AND action = ").arg(Value::Text(action.clone()));
    }
    match &filter.entity {
        Some(kind) if kind.ends_with('/') => {
            sql.push(" AND substr(entity, 1, CAST(").arg(Value::Int(kind.len() as i64)).push(" AS INTEGER)) = ");
            sql.arg(Value::Text(kind.clone()));
        }
        Some(entity) => {
            sql.push(" AND entity = ").arg(Value::Text(entity.clone()));
        }
        None => {}
    }
    if let Some(since) = filter.since {
        sql.push(" AND at >= ").arg(Value::Int(since));
    }
    if let Some(until) = filter.until {
        sql.push(" AND at < ").arg(Value::Int(until));
    }
    sql.push(" ORDER BY seq LIMIT ").arg(Value::Int(filter.limit));
    Ok(backend.read(&sql, COLS).await?.into_iter().map(stored).collect())
}

/// Every chained entry from position `after`, at most `limit`, with the previous hash each names.
pub async fn chain_after(backend: &dyn Backend, after: i64, limit: i64) -> Result<Vec<(Stored, String)>, DbError> {
    let mut sql = Sql::new(backend.dialect());
    sql.push("SELECT ")
        .push(COLUMNS)
        .push(", prev_hash FROM audit_log WHERE seq > ")
        .arg(Value::Int(after))
        .push(" ORDER BY seq LIMIT ")
        .arg(Value::Int(limit));
    let mut cols = COLS.to_vec();
    cols.push(Col::Text);
    let rows = backend.read(&sql, &cols).await?;
    Ok(rows
        .into_iter()
        .map(|mut row| {
            let previous = row.pop().and_then(Value::into_text).unwrap_or_default();
            (stored(row), previous)
        })
        .collect())
}

/// How many entries wait to be chained.
pub async fn unsealed(backend: &dyn Backend) -> Result<i64, DbError> {
    let mut sql = Sql::new(backend.dialect());
    sql.push("SELECT COUNT(*) FROM audit_log WHERE seq IS NULL");
    Ok(backend.read(&sql, &[Col::Int]).await?.first().and_then(|row| row[0].as_int()).unwrap_or(0))
}

/// The chain's head: the last position and its hash.
pub async fn last(backend: &dyn Backend) -> Result<(i64, String), DbError> {
    Ok(head_of(backend.read(&head_query(backend.dialect()), &[Col::Int, Col::Text]).await?))
}

/// What a prune removed: every entry through position `through` (`entries` of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub through: i64,
    pub entries: u64,
}

/// The action of the entry that records a prune; its detail starts with [`prune_detail`]'s prefix.
pub const PRUNE_ACTION: &str = "audit.prune";

/// The detail of the `audit.prune` entry for a horizon at `through`.
pub fn prune_detail(through: i64, entries: u64) -> String {
    format!("through {through}: {entries} entries older than the retention period removed")
}

/// Removes the entries written before `before` (ms since the epoch) up to the last signed checkpoint among
/// them, and the checkpoints before that one (it stays: the signed anchor of what remains), then records
/// the new horizon and appends an [`PRUNE_ACTION`] entry naming it, all in one transaction. `None` when
/// no checkpointed entry is that old.
pub async fn prune(backend: &dyn Backend, before: i64) -> Result<Option<Pruned>, DbError> {
    let dialect = backend.dialect();
    let mut transaction = backend.begin().await?;
    let mut anchor = Sql::new(dialect);
    anchor
        .push("SELECT c.seq, c.hash FROM audit_checkpoint c JOIN audit_log l ON l.seq = c.seq WHERE l.at < ")
        .arg(Value::Int(before))
        .push(" AND c.seq > (SELECT COALESCE(MAX(seq), 0) FROM audit_horizon) ORDER BY c.seq DESC LIMIT 1");
    let Some(row) = transaction.read(&anchor, &[Col::Int, Col::Text]).await?.into_iter().next() else {
        return Ok(None);
    };
    let [seq, hash]: [Value; 2] = row.try_into().map_err(|_| DbError::Backend("bad anchor row".into()))?;
    let through = seq.as_int().unwrap_or_default();
    let mut horizon = Sql::new(dialect);
    horizon
        .push("INSERT INTO audit_horizon (seq, hash, at) VALUES (")
        .arg(Value::Int(through))
        .push(", ")
        .arg(hash)
        .push(", ")
        .arg(Value::Int(now_millis()))
        .push(")");
    transaction.execute(&horizon).await?;
    let mut entries = Sql::new(dialect);
    entries.push("DELETE FROM audit_log WHERE seq <= ").arg(Value::Int(through));
    let removed = transaction.execute(&entries).await?;
    let mut checkpoints = Sql::new(dialect);
    checkpoints.push("DELETE FROM audit_checkpoint WHERE seq < ").arg(Value::Int(through));
    transaction.execute(&checkpoints).await?;
    let record = Record {
        action: PRUNE_ACTION.to_owned(),
        entity: "audit/*".to_owned(),
        detail: Some(prune_detail(through, removed)),
        ..Record::default()
    };
    append(&mut *transaction, dialect, Actor::named("system"), record).await?;
    transaction.commit().await?;
    Ok(Some(Pruned { through, entries: removed }))
}

/// The latest horizon: the position through which entries were removed, and that entry's hash.
pub async fn horizon(backend: &dyn Backend) -> Result<Option<(i64, String)>, DbError> {
    let mut sql = Sql::new(backend.dialect());
    sql.push("SELECT seq, hash FROM audit_horizon ORDER BY seq DESC LIMIT 1");
    let row = backend.read(&sql, &[Col::Int, Col::Text]).await?.into_iter().next();
    Ok(row.map(|mut row| {
        let hash = row.pop().and_then(Value::into_text).unwrap_or_default();
        (row.first().and_then(Value::as_int).unwrap_or_default(), hash)
    }))
}

/// A signed head of the chain (signed by [`crate::audit::checkpoint`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
    pub at: i64,
    pub key_id: String,
    /// Hex Ed25519 signature.
    pub signature: String,
}

/// Stores a checkpoint (a second one at the same position is ignored).
pub async fn insert_checkpoint(backend: &dyn Backend, checkpoint: &Checkpoint) -> Result<(), DbError> {
    let mut sql = Sql::new(backend.dialect());
    sql.push("INSERT INTO audit_checkpoint (seq, hash, at, key_id, signature) VALUES (")
        .arg(Value::Int(checkpoint.seq))
        .push(", ")
        .arg(Value::Text(checkpoint.hash.clone()))
        .push(", ")
        .arg(Value::Int(checkpoint.at))
        .push(", ")
        .arg(Value::Text(checkpoint.key_id.clone()))
        .push(", ")
        .arg(Value::Text(checkpoint.signature.clone()))
        .push(") ON CONFLICT (seq) DO NOTHING");
    let mut transaction = backend.begin().await?;
    transaction.execute(&sql).await?;
    transaction.commit().await
}

/// Every checkpoint, oldest first.
pub async fn checkpoints(backend: &dyn Backend) -> Result<Vec<Checkpoint>, DbError> {
    let mut sql = Sql::new(backend.dialect());
    sql.push("SELECT seq, hash, at, key_id, signature FROM audit_checkpoint ORDER BY seq");
    let rows = backend.read(&sql, &[Col::Int, Col::Text, Col::Int, Col::Text, Col::Text]).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let [seq, hash, at, key_id, signature]: [Value; 5] =
                row.try_into().unwrap_or_else(|_| std::array::from_fn(|_| Value::Null(Col::Text)));
            Checkpoint {
                seq: seq.as_int().unwrap_or_default(),
                hash: hash.into_text().unwrap_or_default(),
                at: at.as_int().unwrap_or_default(),
                key_id: key_id.into_text().unwrap_or_default(),
                signature: signature.into_text().unwrap_or_default(),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            seq: 1,
            at: 1_700_000_000_000,
            actor: "ada".into(),
            action: "create".into(),
            entity: "registered_model/1".into(),
            before_digest: None,
            after_digest: Some(crate::hex::sha256(b"state")),
            request_id: Some("r-1".into()),
            detail: None,
        }
    }

    #[test]
    fn every_field_and_the_previous_hash_count() {
        let base = hash(GENESIS, &entry());
        assert_eq!(base.len(), 64);
        assert_eq!(base, hash(GENESIS, &entry()), "deterministic");
        assert_ne!(base, hash("00", &entry()));
        let mut changed = entry();
        changed.actor = "eve".into();
        assert_ne!(base, hash(GENESIS, &changed));
        let mut changed = entry();
        changed.seq = 2;
        assert_ne!(base, hash(GENESIS, &changed));
    }
}
