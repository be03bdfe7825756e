//! What peer sources took from other registries (`peer_record`) and where each feed stands
//! (`peer_cursor`), in the shared store.
//!
//! Every write is one transaction, fenced by the syncing replica's lease, that also appends a change-log
//! entry for each record that really changed (an unchanged upsert or a delete of nothing appends none,
//! so two registries following each other settle) and moves the cursor: a batch from a peer is applied
//! whole or not at all, and a restart resumes exactly after the last applied batch.

use std::collections::HashSet;
use std::sync::Arc;

use modelcat_sources::ModelRecord;

use crate::store::changes::{self, ALL, Entry};
use crate::store::lease::{Lease, LeaseError};
use crate::store::sql::{Backend, Col, DbError, Sql, Transaction, Value};
use crate::store::syncs;

/// A peer record's key in its source: the peer's source it came from, and its name.
pub type Key = (String, String);

/// One change to a peer source's records.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// The record as the peer has it now, origin properties included.
    Upsert {
        peer_source: String,
        record: Box<ModelRecord>,
    },
    Delete {
        peer_source: String,
        name: String,
    },
    /// Drop every record that came from `peer_source`.
    Reset {
        peer_source: String,
    },
}

/// An upsert's peer source and record.
type Upsert<'a> = (&'a str, &'a ModelRecord);

/// The peer records of every peer source.
#[derive(Clone)]
pub struct PeerStore {
    backend: Arc<dyn Backend>,
}

impl std::fmt::Debug for PeerStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("PeerStore").finish_non_exhaustive()
    }
}

fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

impl PeerStore {
    pub fn new(backend: Arc<dyn Backend>) -> PeerStore {
        PeerStore { backend }
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    fn sql(&self) -> Sql {
        Sql::new(self.backend.dialect())
    }

    /// Where `source` left off in its peer's feed.
    pub async fn cursor(&self, source: &str) -> Result<Option<String>, DbError> {
        let mut sql = self.sql();
        sql.push("SELECT cursor FROM peer_cursor WHERE source_id = ").arg(text(source));
        let row = self.backend.read(&sql, &[Col::Text]).await?.into_iter().next();
        Ok(row.and_then(|row| row.into_iter().next()?.into_text()))
    }

    /// Applies `writes` in order and moves the cursor (when given) in one fenced transaction; returns how
    /// many records changed.
    pub async fn apply(
        &self,
        source: &str,
        writes: &[Write],
        cursor: Option<&str>,
        fence: Option<&Lease>,
    ) -> Result<usize, LeaseError> {
        let mut transaction = syncs::begin(&*self.backend, fence).await?;
        let mut entries = Vec::new();
        let mut upserts: Vec<Upsert> = Vec::new();
        for write in writes {
            if let Write::Upsert { peer_source, record } = write {
                upserts.push((peer_source, record));
                continue;
            }
            entries.extend(self.upsert(&mut *transaction, source, std::mem::take(&mut upserts)).await?);
            let (sql, entry) = self.removal(source, write);
            if transaction.execute(&sql).await? > 0 {
                entries.push(entry);
            }
        }
        entries.extend(self.upsert(&mut *transaction, source, upserts).await?);
        if let Some(cursor) = cursor {
            let mut sql = self.sql();
            sql.push("INSERT INTO peer_cursor (source_id, cursor) VALUES (")
                .arg(text(source))
                .push(", ")
                .arg(text(cursor))
                .push(") ON CONFLICT (source_id) DO UPDATE SET cursor = excluded.cursor");
            transaction.execute(&sql).await?;
        }
        changes::append(&mut *transaction, self.backend.dialect(), &entries).await?;
        transaction.commit().await?;
        Ok(entries.len())
    }

    /// Upserts records, a hundred per statement; returns the entries of those that changed (the
    /// statement returns only rows it inserted or whose hash moved).
    async fn upsert(
        &self,
        transaction: &mut dyn Transaction,
        source: &str,
        records: Vec<Upsert<'_>>,
    ) -> Result<Vec<Entry>, DbError> {
        // One statement may not touch a row twice: the last write of a key wins.
        let mut last = std::collections::HashMap::new();
        for (position, (peer_source, record)) in records.iter().enumerate() {
            last.insert((*peer_source, record.name.as_str()), position);
        }
        let records: Vec<_> = records
            .iter()
            .enumerate()
            .filter(|(position, (peer_source, record))| last[&(*peer_source, record.name.as_str())] == *position)
            .map(|(_, write)| write)
            .collect();
        let mut entries = Vec::new();
        for chunk in records.chunks(100) {
            let mut sql = self.sql();
            sql.push("INSERT INTO peer_record (source_id, peer_source, name, hash, record) VALUES ");
            for (position, (peer_source, record)) in chunk.iter().enumerate() {
                let (json, hash) = record.to_json_with_hash();
                sql.push(if position == 0 { "(" } else { ", (" })
                    .arg(text(source))
                    .push(", ")
                    .arg(text(peer_source))
                    .push(", ")
                    .arg(text(&record.name))
                    .push(", ")
                    .arg(Value::Text(super::peer::content_hash_text(hash)))
                    .push(", ")
                    .arg(Value::Text(json))
                    .push(")");
            }
            sql.push(
                " ON CONFLICT (source_id, peer_source, name) DO UPDATE SET hash = excluded.hash, \
                 record = excluded.record WHERE peer_record.hash <> excluded.hash RETURNING name",
            );
            for row in transaction.read(&sql, &[Col::Text]).await? {
                if let Some(name) = row.into_iter().next().and_then(Value::into_text) {
                    entries.push(Entry::peer(source, Some(&name)));
                }
            }
        }
        Ok(entries)
    }

    /// The statement of a delete or reset, and the entry it logs when it removed anything.
    fn removal(&self, source: &str, write: &Write) -> (Sql, Entry) {
        let mut sql = self.sql();
        sql.push("DELETE FROM peer_record WHERE source_id = ").arg(text(source));
        match write {
            Write::Delete { peer_source, name } => {
                sql.push(" AND peer_source = ").arg(text(peer_source)).push(" AND name = ").arg(text(name));
                (sql, Entry::peer(source, Some(name)))
            }
            Write::Reset { peer_source } => {
                sql.push(" AND peer_source = ").arg(text(peer_source));
                (sql, Entry::peer(source, Some(ALL)))
            }
            Write::Upsert { .. } => unreachable!("upserts are batched"),
        }
    }

    /// Forgets a source removed from the config: its records and its cursor.
    pub async fn forget(&self, source: &str) -> Result<(), DbError> {
        let mut transaction = self.backend.begin().await?;
        for table in ["peer_record", "peer_cursor"] {
            let mut sql = self.sql();
            sql.push(&format!("DELETE FROM {table} WHERE source_id = ")).arg(text(source));
            transaction.execute(&sql).await?;
        }
        changes::append(&mut *transaction, self.backend.dialect(), &[Entry::peer(source, Some(ALL))]).await?;
        transaction.commit().await
    }

    /// The key and content hash of every record of `source`.
    pub async fn versions(&self, source: &str) -> Result<Vec<(Key, String)>, DbError> {
        self.keyed(source, "hash").await
    }

    /// Every record of `source`, by key.
    pub async fn all(&self, source: &str) -> Result<Vec<(Key, ModelRecord)>, DbError> {
        let rows = self.keyed(source, "record").await?;
        Ok(rows.into_iter().filter_map(|(key, json)| Some((key, serde_json::from_str(&json).ok()?))).collect())
    }

    /// The key and one text column (`hash` or `record`) of every record of `source`.
    async fn keyed(&self, source: &str, column: &'static str) -> Result<Vec<(Key, String)>, DbError> {
        let mut sql = self.sql();
        sql.push(&format!("SELECT peer_source, name, {column} FROM peer_record WHERE source_id = ")).arg(text(source));
        let rows = self.backend.read(&sql, &[Col::Text, Col::Text, Col::Text]).await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let mut row = row.into_iter();
                let key = (row.next()?.into_text()?, row.next()?.into_text()?);
                Some((key, row.next()?.into_text()?))
            })
            .collect())
    }

    /// The keys of every record of `source`.
    pub async fn keys(&self, source: &str) -> Result<HashSet<Key>, DbError> {
        Ok(self.versions(source).await?.into_iter().map(|(key, _)| key).collect())
    }

    /// The records of `source` with these names (those still there), with their content hashes.
    pub async fn named(&self, source: &str, names: &[&str]) -> Result<Vec<(String, ModelRecord)>, DbError> {
        let mut records = Vec::with_capacity(names.len());
        for chunk in names.chunks(500) {
            let mut sql = self.sql();
            sql.push("SELECT hash, record FROM peer_record WHERE source_id = ")
                .arg(text(source))
                .push(" AND name IN (");
            for (position, name) in chunk.iter().enumerate() {
                if position > 0 {
                    sql.push(", ");
                }
                sql.arg(text(name));
            }
            sql.push(") ORDER BY peer_source");
            for row in self.backend.read(&sql, &[Col::Text, Col::Text]).await? {
                let mut row = row.into_iter();
                let (Some(hash), Some(json)) =
                    (row.next().and_then(Value::into_text), row.next().and_then(Value::into_text))
                else {
                    continue;
                };
                match serde_json::from_str(&json) {
                    Ok(record) => records.push((hash, record)),
                    Err(error) => tracing::warn!(source, %error, "skipping an unreadable peer record"),
                }
            }
        }
        Ok(records)
    }
}
