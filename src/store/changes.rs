//! The change log: every change to what the catalog shows, in an order readers can follow.
//!
//! Writers append entries inside the transaction that makes the change ([`append`]; [`registry_entry`] finds
//! a registry write's model), so an entry exists exactly when its change committed. Readers ask for
//! everything after a position ([`read_after`]) and must never skip an entry that commits late. A sequence
//! or identity column drawn at insert does not give that: with concurrent writers `seq = 11` can commit
//! before `seq = 10`, and a reader that saw 11 moves past 10 for good.
//!
//! - **PostgreSQL: numbered after commit.** Writers insert entries with no `seq` (and do not `NOTIFY`,
//!   which would serialize their commits). A sequencer ([`sequence`], run by every follower before it
//!   reads) numbers the committed, unnumbered entries in insertion order, under a transaction-scoped
//!   advisory lock held until its commit, then `NOTIFY`s on [`CHANNEL`]. Only committed entries are
//!   visible to it, and one sequencer commits before the next one reads, so an entry that commits late
//!   is numbered after every entry a reader may already have passed. Writers never wait for one another,
//!   so PostgreSQL's group commit keeps working. (The rejected alternatives: an advisory lock held by every
//!   writer from drawing its number to its commit serializes all catalog writes behind one WAL flush
//!   each, which measured about a quarter of the throughput; bounding reads by the oldest running
//!   transaction, `pg_snapshot_xmin`, stalls every follower behind any long transaction in the cluster.)
//!   Entries of a process that dies after committing are numbered by the next sequencer to run.
//! - **SQLite: numbered at insert.** One writer at a time, so insert order is commit order;
//!   `AUTOINCREMENT` never reuses a `seq`, even after the log was pruned to empty.
//!
//! **Compaction** ([`compact`]): an entry names what changed, and readers re-read its current state, so an
//! entry is redundant once a later numbered entry names the same thing. Housekeeping deletes such
//! entries, looking only at what was numbered since its last round, so the log holds about one entry per
//! thing changed within the retention rather than one per write (under a steady write load on a fixed
//! set of models the log, and the database file, stop growing).
//!
//! The log has an **epoch** (a random id created with the database) and a **pruned-through** position:
//! a follower whose position belongs to another epoch, lies before the pruned part, or lies ahead of the
//! head cannot continue from the log and rebuilds from the store's current state instead.

use super::now_millis;
use super::sql::{Backend, Col, DbError, Dialect, Row, Sql, Transaction, Value};

/// The `NOTIFY` channel appends announce themselves on.
pub const CHANNEL: &str = "modelcat_changes";
/// The advisory lock sequencers serialize on ("chg_log" in ASCII).
const SEQUENCER_LOCK: i64 = 0x0063_6867_5f6c_6f67;
const EPOCH: &str = "log_epoch";
const PRUNED_THROUGH: &str = "log_pruned_through";
const COMPACTED_THROUGH: &str = "log_compacted_through";

/// What a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Domain {
    /// A registered model.
    Registry,
    /// A Hub source's mirrored repo.
    Hf,
    /// A record a peer source took from another registry.
    Peer,
}

impl Domain {
    fn as_str(self) -> &'static str {
        match self {
            Domain::Registry => "registry",
            Domain::Hf => "hf",
            Domain::Peer => "peer",
        }
    }

    fn parse(text: &str) -> Option<Domain> {
        match text {
            "registry" => Some(Domain::Registry),
            "hf" => Some(Domain::Hf),
            "peer" => Some(Domain::Peer),
            _ => None,
        }
    }
}

/// The catalog name of an entry that stands for everything in its domain or source.
pub const ALL: &str = "*";

/// One entry to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub domain: Domain,
    /// The Hub or peer source (empty for the registry).
    pub source_id: String,
    /// The catalog name that changed, [`ALL`], or `None` for a source-level change (a sync's status).
    pub name: Option<String>,
    /// The registered model, for registry entries.
    pub entity_id: Option<i64>,
}

impl Entry {
    /// A change to a Hub source's repo (`Some`), to all of its repos ([`ALL`]), or to its status (`None`).
    pub fn hf(source_id: &str, name: Option<&str>) -> Entry {
        Entry { domain: Domain::Hf, source_id: source_id.to_owned(), name: name.map(str::to_owned), entity_id: None }
    }

    /// A change to a peer source's record (`Some`), to all of them ([`ALL`]), or to its status (`None`).
    pub fn peer(source_id: &str, name: Option<&str>) -> Entry {
        Entry { domain: Domain::Peer, source_id: source_id.to_owned(), name: name.map(str::to_owned), entity_id: None }
    }
}

/// One committed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: i64,
    pub domain: Domain,
    pub source_id: String,
    pub name: Option<String>,
    /// The registered model, for registry entries.
    pub entity_id: Option<i64>,
    /// When it was appended (ms since the epoch).
    pub at: i64,
}

/// The registered model a registry write touched, found inside the write's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelOf {
    Model(i64),
    Version(i64),
    /// An artifact; nothing is logged unless it belongs to a model version.
    Artifact(i64),
    /// Every registered model (a reset).
    All,
}

/// Appends entries in the caller's transaction.
pub async fn append(transaction: &mut dyn Transaction, dialect: Dialect, entries: &[Entry]) -> Result<(), DbError> {
    if entries.is_empty() {
        return Ok(());
    }
    transaction.wake_followers_on_commit();
    let now = now_millis();
    for chunk in entries.chunks(200) {
        let mut sql = Sql::new(dialect);
        sql.push("INSERT INTO change_log (domain, source_id, name, entity_id, at) VALUES ");
        for (position, entry) in chunk.iter().enumerate() {
            if position > 0 {
                sql.push(", ");
            }
            sql.push("(")
                .arg(Value::Text(entry.domain.as_str().to_owned()))
                .push(", ")
                .arg(Value::Text(entry.source_id.clone()))
                .push(", ")
                .arg(entry.name.clone().map_or(Value::Null(Col::Text), Value::Text))
                .push(", ")
                .arg(entry.entity_id.map_or(Value::Null(Col::Int), Value::Int))
                .push(", ")
                .arg(Value::Int(now))
                .push(")");
        }
        transaction.execute(&sql).await?;
    }
    Ok(())
}

/// Numbers the committed entries that have no position yet (PostgreSQL; on SQLite every entry is
/// numbered at insert) and wakes the followers of other processes; returns how many it numbered.
pub async fn sequence(backend: &dyn Backend) -> Result<u64, DbError> {
    let dialect = backend.dialect();
    if dialect == Dialect::Sqlite {
        return Ok(0);
    }
    let mut pending = Sql::new(dialect);
    pending.push("SELECT id FROM change_log WHERE seq IS NULL LIMIT 1");
    if backend.read(&pending, &[Col::Int]).await?.is_empty() {
        return Ok(0);
    }
    let mut transaction = backend.begin().await?;
    let mut lock = Sql::new(dialect);
    lock.push("SELECT pg_advisory_xact_lock(").arg(Value::Int(SEQUENCER_LOCK)).push(")");
    transaction.execute(&lock).await?;
    let mut number = Sql::new(dialect);
    number.push(
        "UPDATE change_log c SET seq = numbered.seq FROM (SELECT id, nextval('change_log_seq') AS seq FROM \
         (SELECT id FROM change_log WHERE seq IS NULL ORDER BY id) pending) numbered WHERE c.id = numbered.id",
    );
    let numbered = transaction.execute(&number).await?;
    if numbered > 0 {
        let mut notify = Sql::new(dialect);
        notify.push("SELECT pg_notify(").arg(Value::Text(CHANNEL.to_owned())).push(", '')");
        transaction.execute(&notify).await?;
    }
    transaction.commit().await?;
    Ok(numbered)
}

/// The registry entry for the registered model `model` names, read in the caller's transaction (before
/// a delete removes the rows); `None` when it names no registered model (an experiment run's artifact).
pub async fn registry_entry(
    transaction: &mut dyn Transaction,
    dialect: Dialect,
    model: ModelOf,
) -> Result<Option<Entry>, DbError> {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT m.id, m.name FROM registered_model m WHERE m.id = ");
    match model {
        ModelOf::All => {
            return Ok(Some(Entry {
                domain: Domain::Registry,
                source_id: String::new(),
                name: Some(ALL.to_owned()),
                entity_id: None,
            }));
        }
        ModelOf::Model(id) => sql.arg(Value::Int(id)),
        ModelOf::Version(id) => {
            sql.push("(SELECT registered_model_id FROM model_version WHERE id = ").arg(Value::Int(id)).push(")")
        }
        ModelOf::Artifact(id) => sql
            .push("(SELECT v.registered_model_id FROM artifact a JOIN model_version v ON v.id = a.model_version_id WHERE a.id = ")
            .arg(Value::Int(id))
            .push(")"),
    };
    let row = transaction.read(&sql, &[Col::Int, Col::Text]).await?.into_iter().next();
    Ok(row.map(|row| {
        let mut row = row.into_iter();
        let entity_id = row.next().and_then(|value| value.as_int());
        Entry {
            domain: Domain::Registry,
            source_id: String::new(),
            name: row.next().and_then(Value::into_text),
            entity_id,
        }
    }))
}

/// Up to `limit` entries after position `after`, in order.
pub async fn read_after(backend: &dyn Backend, after: i64, limit: i64) -> Result<Vec<Change>, DbError> {
    let mut sql = Sql::new(backend.dialect());
    sql.push("SELECT seq, domain, source_id, name, entity_id, at FROM change_log WHERE seq > ")
        .arg(Value::Int(after))
        .push(" ORDER BY seq LIMIT ")
        .arg(Value::Int(limit));
    let rows = backend.read(&sql, &[Col::Int, Col::Text, Col::Text, Col::Text, Col::Int, Col::Int]).await?;
    Ok(rows.into_iter().filter_map(change_from_row).collect())
}

fn change_from_row(row: Row) -> Option<Change> {
    let mut row = row.into_iter();
    let seq = row.next()?.as_int()?;
    let domain = Domain::parse(&row.next()?.into_text()?)?;
    let source_id = row.next()?.into_text().unwrap_or_default();
    let name = row.next()?.into_text();
    let entity_id = row.next()?.as_int();
    let at = row.next()?.as_int().unwrap_or_default();
    Some(Change { seq, domain, source_id, name, entity_id, at })
}

/// Where the log stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounds {
    pub epoch: String,
    /// The last committed position (never below `pruned_through`).
    pub head: i64,
    /// Entries up to here were pruned.
    pub pruned_through: i64,
}

impl Bounds {
    /// Whether a follower at `position` of `epoch` can continue from the log.
    pub fn covers(&self, epoch: &str, position: i64) -> bool {
        epoch == self.epoch && position >= self.pruned_through && position <= self.head
    }
}

/// The log's epoch, head and pruned part.
pub async fn bounds(backend: &dyn Backend) -> Result<Bounds, DbError> {
    let mut sql = Sql::new(backend.dialect());
    sql.push("SELECT (SELECT value FROM store_meta WHERE name = ")
        .arg(Value::Text(EPOCH.to_owned()))
        .push("), (SELECT value FROM store_meta WHERE name = ")
        .arg(Value::Text(PRUNED_THROUGH.to_owned()))
        .push("), (SELECT MAX(seq) FROM change_log)");
    let row = backend.read(&sql, &[Col::Text, Col::Text, Col::Int]).await?.into_iter().next().unwrap_or_default();
    let mut row = row.into_iter();
    let epoch = row.next().and_then(Value::into_text).unwrap_or_default();
    let pruned_through = row.next().and_then(Value::into_text).and_then(|text| text.parse().ok()).unwrap_or(0);
    let max = row.next().and_then(|value| value.as_int()).unwrap_or(0);
    Ok(Bounds { epoch, head: max.max(pruned_through), pruned_through })
}

/// Creates the log's epoch the first time a database is opened.
pub(super) async fn ensure_epoch(backend: &dyn Backend) -> Result<(), DbError> {
    let mut transaction = backend.begin().await?;
    let mut sql = Sql::new(backend.dialect());
    sql.push("INSERT INTO store_meta (name, value) VALUES (")
        .arg(Value::Text(EPOCH.to_owned()))
        .push(", ")
        .arg(Value::Text(uuid::Uuid::new_v4().simple().to_string()))
        .push(") ON CONFLICT (name) DO NOTHING");
    transaction.execute(&sql).await?;
    transaction.commit().await
}

/// Deletes the entries that an entry numbered since the last round supersedes (a later entry for the same
/// domain, source, name and entity); returns how many were deleted.
pub async fn compact(backend: &dyn Backend) -> Result<u64, DbError> {
    let dialect = backend.dialect();
    let mut transaction = backend.begin().await?;
    let mark = meta_position(&mut *transaction, dialect, COMPACTED_THROUGH).await?;
    let mut sql = Sql::new(dialect);
    sql.push("SELECT MAX(seq) FROM change_log");
    let head = transaction.read(&sql, &[Col::Int]).await?.first().and_then(|row| row[0].as_int()).unwrap_or(0);
    if head <= mark {
        return Ok(0);
    }
    let mut sql = Sql::new(dialect);
    sql.push(
        "DELETE FROM change_log WHERE seq IN (SELECT older.seq FROM change_log newer JOIN change_log older \
         ON older.domain = newer.domain AND older.source_id = newer.source_id \
         AND COALESCE(older.name, '') = COALESCE(newer.name, '') \
         AND COALESCE(older.entity_id, -1) = COALESCE(newer.entity_id, -1) \
         AND older.seq < newer.seq WHERE newer.seq > ",
    )
    .arg(Value::Int(mark))
    .push(" AND newer.seq <= ")
    .arg(Value::Int(head))
    .push(")");
    let deleted = transaction.execute(&sql).await?;
    set_meta_position(&mut *transaction, dialect, COMPACTED_THROUGH, head).await?;
    transaction.commit().await?;
    Ok(deleted)
}

/// A position kept in `store_meta` (0 when absent).
async fn meta_position(transaction: &mut dyn Transaction, dialect: Dialect, name: &str) -> Result<i64, DbError> {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT value FROM store_meta WHERE name = ").arg(Value::Text(name.to_owned()));
    let rows = transaction.read(&sql, &[Col::Text]).await?;
    let text = rows.into_iter().next().and_then(|row| row.into_iter().next()?.into_text());
    Ok(text.and_then(|text| text.parse().ok()).unwrap_or(0))
}

async fn set_meta_position(
    transaction: &mut dyn Transaction,
    dialect: Dialect,
    name: &str,
    position: i64,
) -> Result<(), DbError> {
    let mut sql = Sql::new(dialect);
    sql.push("INSERT INTO store_meta (name, value) VALUES (")
        .arg(Value::Text(name.to_owned()))
        .push(", ")
        .arg(Value::Text(position.to_string()))
        .push(") ON CONFLICT (name) DO UPDATE SET value = excluded.value");
    transaction.execute(&sql).await?;
    Ok(())
}

/// Deletes entries older than `older_than_ms` (ms since the epoch) but never past `keep_after` (the
/// lowest position a live replica still needs); returns the new pruned-through position.
pub async fn prune(backend: &dyn Backend, older_than_ms: i64, keep_after: Option<i64>) -> Result<i64, DbError> {
    let dialect = backend.dialect();
    let mut transaction = backend.begin().await?;
    let mut sql = Sql::new(dialect);
    sql.push("SELECT MAX(seq) FROM change_log WHERE at < ").arg(Value::Int(older_than_ms));
    let old = transaction.read(&sql, &[Col::Int]).await?;
    let mut through = old.first().and_then(|row| row[0].as_int()).unwrap_or(0);
    if let Some(keep_after) = keep_after {
        through = through.min(keep_after);
    }
    let previous = meta_position(&mut *transaction, dialect, PRUNED_THROUGH).await?;
    if through <= previous {
        return Ok(previous);
    }
    let mut sql = Sql::new(dialect);
    sql.push("DELETE FROM change_log WHERE seq <= ").arg(Value::Int(through));
    transaction.execute(&sql).await?;
    set_meta_position(&mut *transaction, dialect, PRUNED_THROUGH, through).await?;
    transaction.commit().await?;
    Ok(through)
}
