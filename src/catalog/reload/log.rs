//! Applying change-log entries: what each names is read back from the store and turned into index
//! changes (registered models, read in bulk) or source refreshes (Hub and peer sources: each re-reads
//! only what changed since its last fetch).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use modelcat_index::{Change, DocKey};
use modelcat_sources::config::SourceKind;

use super::Reloader;
use super::peers::PeerEntries;
use crate::catalog::follower::Checkpoint;
use crate::store::changes::{self, Domain};

impl Reloader {
    /// Applies log entries (or rebuilds every store-backed source) and records `checkpoint` in the same
    /// index commit as the registered models' changes.
    pub(super) async fn follow_log(
        &mut self,
        log: Vec<changes::Change>,
        rebuild: bool,
        checkpoint: Option<Checkpoint>,
    ) -> Result<(), String> {
        let mut batch = self.apply_log(log, rebuild).await?;
        batch.extend(checkpoint.map(|checkpoint| Change::Checkpoint(checkpoint.encode())));
        self.commit_registry(batch).await
    }

    /// Re-reads what change-log entries name (or, for a rebuild, every store-backed source): Hub sources
    /// are refreshed and applied, and the registered models' and peer records' changes are returned for
    /// the caller to commit. Fails when the store could not be read, so the entries are applied again later.
    async fn apply_log(&mut self, log: Vec<changes::Change>, rebuild: bool) -> Result<Vec<Change>, String> {
        let mut registry_all = rebuild;
        let mut models = Vec::new();
        let mut hf_sources: HashSet<String> = HashSet::new();
        let mut peers: HashMap<String, PeerEntries> = HashMap::new();
        let mut repos = Vec::new();
        let mut listing_all = rebuild;
        for change in log {
            match (change.domain, change.name) {
                (Domain::Registry, Some(name)) if name == changes::ALL => registry_all = true,
                (Domain::Registry, Some(name)) => models.extend(change.entity_id.map(|id| (id, name))),
                (Domain::Registry, None) => {}
                (Domain::Peer, name) => peers.entry(change.source_id).or_default().add(name),
                (Domain::Hf, name) => {
                    match name {
                        Some(name) if name == changes::ALL => listing_all = true,
                        Some(name) => repos.push(name),
                        None => {}
                    }
                    hf_sources.insert(change.source_id);
                }
            }
        }
        let configured_hf = self.hf_ids();
        if rebuild {
            hf_sources.extend(configured_hf.iter().cloned());
        }
        let followed = if listing_all {
            self.mirror.reload_listing().await.map(drop)
        } else if !repos.is_empty() {
            repos.sort_unstable();
            repos.dedup();
            self.mirror.follow(&repos).await
        } else {
            Ok(())
        };
        followed.map_err(|error| error.to_string())?;
        let mut refresh: Vec<String> = hf_sources.into_iter().filter(|id| configured_hf.contains(id)).collect();
        let mut batch = Vec::new();
        for id in self.ids_of(|kind| matches!(kind, SourceKind::Peer(_))) {
            match peers.remove(&id) {
                _ if rebuild => refresh.push(id),
                Some(entries) if entries.all => refresh.push(id),
                Some(entries) => batch.extend(self.peer_changes(&id, entries).await?),
                None => {}
            }
        }
        self.refresh_all(refresh).await?;
        if registry_all {
            if let Some(id) = self.registry_id() {
                self.refresh_all(vec![id]).await?;
            }
        } else {
            batch.extend(self.registry_models(models).await?);
        }
        Ok(batch)
    }

    /// Commits registered models' and peer records' changes; when the commit fails, forgets their
    /// hashes, so applying the same entries again rewrites them.
    async fn commit_registry(&mut self, batch: Vec<Change>) -> Result<(), String> {
        // Peers' catalog events go first (at least once, even if we stop right after the commit).
        self.announce().await;
        let Err(error) = self.index.apply(batch.clone()).await else { return Ok(()) };
        tracing::error!(%error, "index update failed");
        for change in &batch {
            if let Change::Upsert { source_id, record, .. } = change
                && let Some(runtime) = self.runtimes.get_mut(source_id)
            {
                runtime.hashes.remove(&record.name);
            }
        }
        Err(error.to_string())
    }

    /// The configured Hub sources.
    fn hf_ids(&self) -> Vec<String> {
        self.ids_of(|kind| matches!(kind, SourceKind::Hf(_)))
    }

    /// The configured sources of a kind.
    fn ids_of(&self, kind: impl Fn(&SourceKind) -> bool) -> Vec<String> {
        let matching = self.runtimes.iter().filter(|(_, runtime)| runtime.config.kind.as_ref().is_ok_and(&kind));
        matching.map(|(id, _)| id.clone()).collect()
    }

    /// The index changes for single registered models, each named by its id and the catalog name it was
    /// logged under.
    async fn registry_models(&mut self, mut models: Vec<(i64, String)>) -> Result<Vec<Change>, String> {
        let (Some(registry), Some(id)) = (self.registry.clone(), self.registry_id()) else { return Ok(Vec::new()) };
        models.sort_unstable();
        models.dedup();
        let ids: Vec<i64> = models.iter().map(|(model, _)| *model).collect();
        let mut records = registry.models(&ids).await.map_err(|error| {
            tracing::warn!(%error, "cannot read registered models for the catalog");
            error.to_string()
        })?;
        let updates: Vec<_> = models.into_iter().map(|(model, name)| (name, records.remove(&model))).collect();
        let Some(runtime) = self.runtimes.get_mut(&id) else { return Ok(Vec::new()) };
        let mut batch = Vec::new();
        for (logged, record) in updates {
            match record {
                Some(record) => {
                    let hash = record.content_hash();
                    if runtime.hashes.insert(record.name.clone(), hash) != Some(hash) {
                        batch.push(Change::Upsert { source_id: id.clone(), record: Arc::new(record), hash });
                    }
                }
                None => {
                    // Deleted even when not known to be indexed: a retried entry must still remove it.
                    runtime.hashes.remove(&logged);
                    batch.push(Change::Delete(DocKey { source_id: id.clone(), name: logged }));
                }
            }
        }
        Ok(batch)
    }
}
