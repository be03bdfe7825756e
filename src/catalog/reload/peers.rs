//! Applying a peer source's change-log entries: only the records they name are read back from the store,
//! so a busy peer costs per change, not per record held; a status entry re-reads the source's recorded
//! problem. (A whole-source entry, a rebuild or a config reload fetch the source instead.)

use std::collections::BTreeSet;
use std::sync::Arc;

use modelcat_index::{Change, DocKey};
use modelcat_sources::SourceStatus;

use super::Reloader;
use crate::federation::store::PeerStore;
use crate::store::changes::ALL;
use crate::store::syncs;

/// What a page of the log says about one peer source.
#[derive(Debug, Default)]
pub struct PeerEntries {
    pub names: BTreeSet<String>,
    /// Every record of the source changed.
    pub all: bool,
    /// Its recorded sync status changed.
    pub status: bool,
}

impl PeerEntries {
    pub fn add(&mut self, name: Option<String>) {
        match name {
            Some(name) if name == ALL => self.all = true,
            Some(name) => {
                self.names.insert(name);
            }
            None => self.status = true,
        }
    }
}

impl Reloader {
    /// The index changes for the records `entries` names, and the source's status when it changed.
    pub(super) async fn peer_changes(&mut self, id: &str, entries: PeerEntries) -> Result<Vec<Change>, String> {
        let store = PeerStore::new(self.replica.backend().clone());
        let names: Vec<&str> = entries.names.iter().map(String::as_str).collect();
        let found = store.named(id, &names).await.map_err(|error| error.to_string())?;
        let problem = if entries.status {
            let last = syncs::last(&**store.backend(), id).await.map_err(|error| error.to_string())?;
            Some(last.unwrap_or_default().problem)
        } else {
            None
        };
        let Some(runtime) = self.runtimes.get_mut(id) else { return Ok(Vec::new()) };
        let before: Vec<String> = runtime.hashes.keys().cloned().collect();
        let mut batch = Vec::new();
        let mut gone = entries.names;
        for (hash_text, record) in found {
            gone.remove(&record.name);
            if !runtime.filter.allows(&record.name) {
                continue;
            }
            let hash = u64::from_str_radix(&hash_text, 16).unwrap_or_else(|_| record.content_hash());
            // Keep the fetch state in step, so a later whole fetch does not read this record again.
            runtime.sync.insert(record.name.clone(), hash_text);
            if runtime.hashes.insert(record.name.clone(), hash) != Some(hash) {
                batch.push(Change::Upsert { source_id: id.to_owned(), record: Arc::new(record), hash });
            }
        }
        for name in gone {
            runtime.sync.remove(&name);
            if runtime.hashes.remove(&name).is_some() {
                batch.push(Change::Delete(DocKey { source_id: id.to_owned(), name }));
            }
        }
        let added_or_removed =
            runtime.hashes.len() != before.len() || before.iter().any(|name| !runtime.hashes.contains_key(name));
        if added_or_removed {
            self.announcements.push((id.to_owned(), before, runtime.hashes.keys().cloned().collect()));
        }
        if let Some(problem) = problem {
            runtime.status = match (&problem, runtime.hashes.is_empty()) {
                (None, _) => SourceStatus::Available,
                (Some(_), true) => SourceStatus::Error,
                (Some(_), false) => SourceStatus::PartiallyAvailable,
            };
            runtime.error = problem;
        }
        Ok(batch)
    }
}
