//! The mirror's tables (`hf_repo`, `hf_source_repo`, `hf_file`) in the registry's database, SQLite or
//! PostgreSQL, through the same [`Backend`] seam as the registry store.
//!
//! Writes are whole repos: a repo's document, refs and files are replaced together in one transaction, so
//! readers see the old or the new revision of a repo, never a mix. Repos belong to the sources that mirror
//! them; a repo leaves the store only when no source keeps it ([`MirrorStore::retain`]), never because a
//! sync failed.
//!
//! Every write appends what it changed to the change log in its transaction ([`crate::store::changes`]):
//! a written repo, a repo a source newly mirrors, a repo it no longer mirrors, a forgotten source, and a
//! sync's report ([`MirrorStore::record_sync`]), so every replica's catalog follows. Writes made by a
//! sync under a lease take its fence ([`crate::store::lease`]) and are refused once the lease is lost.

use std::collections::HashMap;
use std::sync::Arc;

use crate::store::changes::{self, ALL, Entry};
use crate::store::lease::{Lease, LeaseError};
use crate::store::now_millis;
use crate::store::sql::{Backend, Col, DbError, Row, Sql, Transaction, Value};
use crate::store::syncs;
pub use crate::store::syncs::SyncRecord;

/// One repo as synced: its Hub documents and mirrored files.
#[derive(Debug, Clone, PartialEq)]
pub struct MirroredRepo {
    pub repo_id: String,
    pub sha: String,
    pub last_modified: Option<String>,
    /// The Hub's `model_info` document (with `blobs=true`), as JSON text.
    pub info: String,
    /// The Hub's refs document, as JSON text.
    pub refs: String,
    /// Whole small files, and the leading bytes (the header) of safetensors files.
    pub files: Vec<(String, Vec<u8>)>,
}

/// A repo's stored documents, without its files.
#[derive(Debug, Clone)]
pub struct StoredRepo {
    pub sha: String,
    pub info: String,
    pub refs: String,
}

/// Why a mirror store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("mirror store: {0}")]
    Db(#[from] DbError),
    /// The sync's lease was lost: another replica syncs this source now.
    #[error(transparent)]
    Fenced(LeaseError),
}

impl From<LeaseError> for StoreError {
    fn from(error: LeaseError) -> Self {
        match error {
            LeaseError::Db(error) => StoreError::Db(error),
            fenced => StoreError::Fenced(fenced),
        }
    }
}

/// The mirror's storage.
#[derive(Clone)]
pub struct MirrorStore {
    backend: Arc<dyn Backend>,
}

impl std::fmt::Debug for MirrorStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("MirrorStore").field("dialect", &self.backend.dialect()).finish()
    }
}

/// Repos read per query when scanning the whole store.
const SCAN_PAGE: i64 = 1000;

impl MirrorStore {
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        MirrorStore { backend }
    }

    fn sql(&self) -> Sql {
        Sql::new(self.backend.dialect())
    }

    /// Starts a write, checking `fence` first when the write is made under a lease.
    async fn begin(&self, fence: Option<&Lease>) -> Result<Box<dyn Transaction>, StoreError> {
        Ok(syncs::begin(&*self.backend, fence).await?)
    }

    async fn log(&self, transaction: &mut Box<dyn Transaction>, entries: &[Entry]) -> Result<(), StoreError> {
        Ok(changes::append(&mut **transaction, self.backend.dialect(), entries).await?)
    }

    /// Records that a source's sync started (under its lease's `fence`).
    pub async fn record_sync_start(&self, source: &str, fence: Option<&Lease>) -> Result<(), StoreError> {
        Ok(syncs::record_start(&*self.backend, source, fence).await?)
    }

    /// Records a source's sync outcome (under its lease's `fence`), announcing it to every replica.
    pub async fn record_sync(
        &self,
        source: &str,
        record: &SyncRecord,
        fence: Option<&Lease>,
    ) -> Result<(), StoreError> {
        Ok(syncs::record(&*self.backend, Entry::hf(source, None), record, fence).await?)
    }

    /// A source's last recorded sync, by whichever replica ran it.
    pub async fn last_sync(&self, source: &str) -> Result<Option<SyncRecord>, StoreError> {
        Ok(syncs::last(&*self.backend, source).await?)
    }

    /// The mirrored revision (`sha`, `lastModified`) of every repo in the store.
    pub async fn versions(&self) -> Result<HashMap<String, (String, Option<String>)>, StoreError> {
        let mut sql = self.sql();
        sql.push("SELECT repo_id, sha, last_modified FROM hf_repo");
        let rows = self.backend.read(&sql, &[Col::Text, Col::Text, Col::Text]).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut row = row.into_iter().map(Value::into_text);
                let (id, sha, modified) = (row.next().flatten(), row.next().flatten(), row.next().flatten());
                (id.unwrap_or_default(), (sha.unwrap_or_default(), modified))
            })
            .collect())
    }

    /// The repos `source` mirrors, with their revision.
    pub async fn source_versions(&self, source: &str) -> Result<HashMap<String, String>, StoreError> {
        let mut sql = self.sql();
        sql.push("SELECT r.repo_id, r.sha FROM hf_source_repo s JOIN hf_repo r ON r.repo_id = s.repo_id WHERE s.source_id = ")
            .arg(Value::Text(source.to_owned()));
        let rows = self.backend.read(&sql, &[Col::Text, Col::Text]).await?;
        Ok(rows.into_iter().map(pair).collect())
    }

    /// Stores changed repos (replacing their documents and files) and records that `source` mirrors them
    /// and the `unchanged` ones, in one transaction (under `fence` when a sync holds a lease).
    pub async fn put(
        &self,
        source: &str,
        repos: &[MirroredRepo],
        unchanged: &[String],
        fence: Option<&Lease>,
    ) -> Result<(), StoreError> {
        let mut transaction = self.begin(fence).await?;
        let mut logged: Vec<Entry> = repos.iter().map(|repo| Entry::hf(source, Some(&repo.repo_id))).collect();
        let now = now_millis();
        for repo in repos {
            let mut sql = self.sql();
            sql.push("INSERT INTO hf_repo (repo_id, sha, last_modified, info, refs, synced_at) VALUES (")
                .arg(Value::Text(repo.repo_id.clone()))
                .push(", ")
                .arg(Value::Text(repo.sha.clone()))
                .push(", ")
                .arg(repo.last_modified.clone().map_or(Value::Null(Col::Text), Value::Text))
                .push(", ")
                .arg(Value::Text(repo.info.clone()))
                .push(", ")
                .arg(Value::Text(repo.refs.clone()))
                .push(", ")
                .arg(Value::Int(now))
                .push(
                    ") ON CONFLICT (repo_id) DO UPDATE SET sha = excluded.sha, last_modified = excluded.last_modified, \
                     info = excluded.info, refs = excluded.refs, synced_at = excluded.synced_at",
                );
            transaction.execute(&sql).await?;
            let mut sql = self.sql();
            sql.push("DELETE FROM hf_file WHERE repo_id = ").arg(Value::Text(repo.repo_id.clone()));
            transaction.execute(&sql).await?;
            for (path, content) in &repo.files {
                let mut sql = self.sql();
                sql.push("INSERT INTO hf_file (repo_id, path, content) VALUES (")
                    .arg(Value::Text(repo.repo_id.clone()))
                    .push(", ")
                    .arg(Value::Text(path.clone()))
                    .push(", ")
                    .arg(Value::Bytes(content.clone()))
                    .push(")");
                transaction.execute(&sql).await?;
            }
        }
        let members = repos.iter().map(|repo| &repo.repo_id).chain(unchanged);
        for repo_id in members {
            let mut sql = self.sql();
            sql.push("INSERT INTO hf_source_repo (source_id, repo_id) VALUES (")
                .arg(Value::Text(source.to_owned()))
                .push(", ")
                .arg(Value::Text(repo_id.clone()))
                .push(") ON CONFLICT DO NOTHING");
            let added = transaction.execute(&sql).await? > 0;
            if added && unchanged.contains(repo_id) {
                logged.push(Entry::hf(source, Some(repo_id)));
            }
        }
        self.log(&mut transaction, &logged).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// After a complete, successful listing: `source` no longer mirrors the repos outside `keep`, and repos
    /// no source mirrors leave the store. Returns the repos removed from `source`.
    pub async fn retain(
        &self,
        source: &str,
        keep: &std::collections::HashSet<String>,
        fence: Option<&Lease>,
    ) -> Result<usize, StoreError> {
        let current = self.source_versions(source).await?;
        let gone: Vec<&String> = current.keys().filter(|repo| !keep.contains(*repo)).collect();
        if gone.is_empty() {
            return Ok(0);
        }
        let mut transaction = self.begin(fence).await?;
        for repo_id in &gone {
            let mut sql = self.sql();
            sql.push("DELETE FROM hf_source_repo WHERE source_id = ")
                .arg(Value::Text(source.to_owned()))
                .push(" AND repo_id = ")
                .arg(Value::Text((*repo_id).clone()));
            transaction.execute(&sql).await?;
        }
        delete_orphans(&mut *transaction, self.sql()).await?;
        let logged: Vec<Entry> = gone.iter().map(|repo_id| Entry::hf(source, Some(repo_id))).collect();
        self.log(&mut transaction, &logged).await?;
        transaction.commit().await?;
        Ok(gone.len())
    }

    /// Forgets everything `source` mirrored (the source was removed from the config).
    pub async fn forget_source(&self, source: &str) -> Result<(), StoreError> {
        let mut transaction = self.backend.begin().await?;
        let mut sql = self.sql();
        sql.push("DELETE FROM hf_source_repo WHERE source_id = ").arg(Value::Text(source.to_owned()));
        transaction.execute(&sql).await?;
        delete_orphans(&mut *transaction, self.sql()).await?;
        let mut sql = self.sql();
        sql.push("DELETE FROM source_sync WHERE source_id = ").arg(Value::Text(source.to_owned()));
        transaction.execute(&sql).await?;
        self.log(&mut transaction, &[Entry::hf(source, Some(ALL))]).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// A repo's documents.
    pub async fn repo(&self, repo_id: &str) -> Result<Option<StoredRepo>, StoreError> {
        let mut sql = self.sql();
        sql.push("SELECT sha, info, refs FROM hf_repo WHERE repo_id = ").arg(Value::Text(repo_id.to_owned()));
        let row = self.backend.read(&sql, &[Col::Text, Col::Text, Col::Text]).await?.into_iter().next();
        Ok(row.map(|row| {
            let mut row = row.into_iter().map(|value| value.into_text().unwrap_or_default());
            StoredRepo { sha: next(&mut row), info: next(&mut row), refs: next(&mut row) }
        }))
    }

    /// The `model_info` documents of several repos, in no particular order.
    pub async fn infos(&self, repo_ids: &[&str]) -> Result<HashMap<String, String>, StoreError> {
        let mut infos = HashMap::with_capacity(repo_ids.len());
        for chunk in repo_ids.chunks(500) {
            let mut sql = self.sql();
            sql.push("SELECT repo_id, info FROM hf_repo WHERE repo_id IN (");
            for (position, repo_id) in chunk.iter().enumerate() {
                if position > 0 {
                    sql.push(", ");
                }
                sql.arg(Value::Text((*repo_id).to_owned()));
            }
            sql.push(")");
            infos.extend(self.backend.read(&sql, &[Col::Text, Col::Text]).await?.into_iter().map(pair));
        }
        Ok(infos)
    }

    /// The `model_info` document, README and sync time of each repo in `repo_ids`.
    pub async fn cards(&self, repo_ids: &[&str]) -> Result<Vec<(String, Option<String>, i64)>, StoreError> {
        let mut cards = Vec::with_capacity(repo_ids.len());
        for chunk in repo_ids.chunks(500) {
            let mut sql = self.sql();
            sql.push(
                "SELECT r.info, f.content, r.synced_at FROM hf_repo r LEFT JOIN hf_file f ON f.repo_id = r.repo_id \
                 AND f.path = 'README.md' WHERE r.repo_id IN (",
            );
            for (position, repo_id) in chunk.iter().enumerate() {
                if position > 0 {
                    sql.push(", ");
                }
                sql.arg(Value::Text((*repo_id).to_owned()));
            }
            sql.push(")");
            for row in self.backend.read(&sql, &[Col::Text, Col::Bytes, Col::Int]).await? {
                let mut row = row.into_iter();
                let info = row.next().and_then(Value::into_text).unwrap_or_default();
                let readme =
                    row.next().and_then(Value::into_bytes).map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
                let synced_at = row.next().and_then(|value| value.as_int()).unwrap_or_default();
                cards.push((info, readme, synced_at));
            }
        }
        Ok(cards)
    }

    /// A mirrored file's stored bytes.
    pub async fn file(&self, repo_id: &str, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut sql = self.sql();
        sql.push("SELECT content FROM hf_file WHERE repo_id = ")
            .arg(Value::Text(repo_id.to_owned()))
            .push(" AND path = ")
            .arg(Value::Text(path.to_owned()));
        let row = self.backend.read(&sql, &[Col::Bytes]).await?.into_iter().next();
        Ok(row.and_then(|row| row.into_iter().next()).and_then(Value::into_bytes))
    }

    /// Every repo's `model_info` document, a page at a time, in repo id order (`after` the last one seen).
    pub async fn scan(&self, after: Option<&str>) -> Result<Vec<(String, String)>, StoreError> {
        let mut sql = self.sql();
        sql.push("SELECT repo_id, info FROM hf_repo WHERE repo_id > ")
            .arg(Value::Text(after.unwrap_or_default().to_owned()))
            .push(" ORDER BY repo_id LIMIT ")
            .arg(Value::Int(SCAN_PAGE));
        Ok(self.backend.read(&sql, &[Col::Text, Col::Text]).await?.into_iter().map(pair).collect())
    }

    /// Everything about a page of repos for an export: documents, files and the sources mirroring them.
    pub async fn export_page(&self, after: Option<&str>) -> Result<Vec<(MirroredRepo, Vec<String>)>, StoreError> {
        let mut sql = self.sql();
        sql.push("SELECT repo_id, sha, last_modified, info, refs FROM hf_repo WHERE repo_id > ")
            .arg(Value::Text(after.unwrap_or_default().to_owned()))
            .push(" ORDER BY repo_id LIMIT ")
            .arg(Value::Int(SCAN_PAGE / 4));
        let rows = self.backend.read(&sql, &[Col::Text, Col::Text, Col::Text, Col::Text, Col::Text]).await?;
        let mut page = Vec::with_capacity(rows.len());
        for row in rows {
            let mut row = row.into_iter().map(Value::into_text);
            let repo_id = row.next().flatten().unwrap_or_default();
            let sha = row.next().flatten().unwrap_or_default();
            let last_modified = row.next().flatten();
            let info = row.next().flatten().unwrap_or_default();
            let refs = row.next().flatten().unwrap_or_default();
            let mut files_sql = self.sql();
            files_sql.push("SELECT path, content FROM hf_file WHERE repo_id = ").arg(Value::Text(repo_id.clone()));
            files_sql.push(" ORDER BY path");
            let files = self.backend.read(&files_sql, &[Col::Text, Col::Bytes]).await?;
            let files = files
                .into_iter()
                .map(|row| {
                    let mut row = row.into_iter();
                    let path = row.next().and_then(Value::into_text).unwrap_or_default();
                    (path, row.next().and_then(Value::into_bytes).unwrap_or_default())
                })
                .collect();
            let mut sources_sql = self.sql();
            sources_sql.push("SELECT source_id FROM hf_source_repo WHERE repo_id = ").arg(Value::Text(repo_id.clone()));
            let sources = self.backend.read(&sources_sql, &[Col::Text]).await?;
            let sources = sources.into_iter().filter_map(|row| row.into_iter().next()?.into_text()).collect();
            page.push((MirroredRepo { repo_id, sha, last_modified, info, refs, files }, sources));
        }
        Ok(page)
    }
}

/// Deletes repos no source mirrors any more (their files follow by cascade).
async fn delete_orphans(transaction: &mut dyn Transaction, mut sql: Sql) -> Result<(), DbError> {
    sql.push("DELETE FROM hf_repo WHERE NOT EXISTS (SELECT 1 FROM hf_source_repo s WHERE s.repo_id = hf_repo.repo_id)");
    transaction.execute(&sql).await?;
    Ok(())
}

fn pair(row: Row) -> (String, String) {
    let mut row = row.into_iter().map(|value| value.into_text().unwrap_or_default());
    (next(&mut row), next(&mut row))
}

fn next(row: &mut impl Iterator<Item = String>) -> String {
    row.next().unwrap_or_default()
}
