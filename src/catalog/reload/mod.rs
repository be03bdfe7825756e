//! The reloader: the one task that changes sources.
//!
//! It owns the active sources config and, per source, the provider, its sync state, the content hash of
//! every record it serves, and its status. A refresh fetches a snapshot, applies the include/exclude
//! patterns, diffs record hashes, and sends only what changed (upserts and deletions) to the index as one
//! batch. One source is fetched at a time (a large catalog file is itself parsed in parallel), and it
//! waits until its changes fit beside those not yet committed, so a large load's memory is bounded by
//! its largest sources, not by their sum. A failing fetch keeps the last good records and shows the
//! error. A sources config that fails validation is rejected whole; the previous one stays active and the
//! error is shown.
//!
//! A YAML source's fetch state (its file's digest) is committed with its models, with a digest of its
//! config: a restart whose file and config are unchanged parses nothing ([`Reloader::indexed_state`]).
//!
//! When a source's model names change, the names before and after go to the announcer
//! ([`crate::catalog::events`]) before the changes go to the index, for the webhooks that chose the
//! source.
//!
//! Store-backed sources (registered models, Hub mirrors) change through the change log: the follower
//! ([`super::follower`]) hands over each page of entries, and the reloader re-reads what they name and
//! applies it ([`log`]), recording the page's position as the index checkpoint in the same commit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use modelcat_index::{CatalogIndex, Change, DocKey};
use modelcat_sources::config::{ConfigError, SourceConfig, SourceKind, SourcesConfig};
use modelcat_sources::{
    NameFilter, RecordOutcome, Source, SourceError, SourceId, SourceSnapshot, SourceStatus, SyncState, YamlSource,
};
use tokio::sync::{mpsc, watch as channel};

use super::events::Announcer;
use super::follower::Checkpoint;
use super::progress::LoadProgress;
use super::registry_source::RegistrySource;
use super::watch::{Watcher, touches};
use super::{CatalogError, CatalogSettings, SourceView, View};
use crate::federation::PeerSource;
use crate::federation::store::PeerStore;
use crate::mirror::{HfSource, Mirror};
use crate::registry::RegistryStore;
use crate::replica::Replica;
use crate::store::changes;
use crate::store::now_millis;

mod log;
mod mcp;
mod peers;

/// A fetched snapshot with the content hash of each changed record.
type Hashed = (SourceSnapshot, HashMap<String, u64>);

/// How many bytes of changed records (measured as JSON) may be on their way to the index at once. A
/// source larger than this is loaded alone.
const IN_FLIGHT_BYTES: usize = 256 << 20;

/// How an applied command is acknowledged.
pub type Ack = tokio::sync::oneshot::Sender<Result<(), String>>;

/// What the reloader is asked to do.
#[derive(Debug)]
pub enum Command {
    /// These paths changed (files, or entries of a watched directory).
    Changed(Vec<PathBuf>),
    /// Change-log entries to apply, then `to` to record as the index checkpoint.
    Log { changes: Vec<changes::Change>, to: Checkpoint, ack: Ack },
    /// Reload every store-backed source whole (the log cannot be followed), then record `to`.
    Rebuild { to: Checkpoint, ack: Ack },
    /// A syncing source's progress moved: publish the view again.
    Publish,
    /// Stop watching and reloading (shutdown).
    Stop,
}

/// One source's live state.
struct Runtime {
    config: SourceConfig,
    filter: NameFilter,
    source: Option<Arc<dyn Source>>,
    sync: SyncState,
    hashes: HashMap<String, u64>,
    status: SourceStatus,
    error: Option<String>,
    last_loaded: Option<i64>,
}

impl Runtime {
    fn view(&self) -> SourceView {
        SourceView {
            config: self.config.clone(),
            status: self.status,
            error: self.error.clone(),
            models: self.hashes.len(),
            last_loaded: self.last_loaded,
            sync: self.source.as_ref().and_then(|source| source.sync_status()),
        }
    }

    fn yaml_path(&self) -> Option<&Path> {
        match &self.config.kind {
            Ok(SourceKind::Yaml { path }) => Some(path),
            _ => None,
        }
    }
}

pub struct Reloader {
    index: CatalogIndex,
    settings: CatalogSettings,
    config: SourcesConfig,
    config_hash: u64,
    config_error: Option<String>,
    runtimes: BTreeMap<String, Runtime>,
    registry: Option<RegistrySource>,
    view: channel::Sender<Arc<View>>,
    watcher: Option<Watcher>,
    mirror: Mirror,
    replica: Replica,
    /// Whether the index already holds the registry up to the follower's start (no initial reload).
    registry_indexed: bool,
    /// The initial load's figures.
    progress: Arc<LoadProgress>,
    /// The config read at start, installed by the initial load.
    pending_config: Option<SourcesConfig>,
    /// MCP sources, by id ([`mcp`]).
    mcp: BTreeMap<String, mcp::McpRuntime>,
    /// Their servers as last published, and whether a source changed since.
    mcp_servers: Arc<crate::mcp::McpServers>,
    mcp_changed: bool,
    /// Writes `catalog.*` webhook events for chosen sources ([`crate::catalog::events`]).
    announcer: Announcer,
    /// Sources whose model names changed, with the names before and after, to announce.
    announcements: Vec<(String, Vec<String>, Vec<String>)>,
    /// This reloader's own queue, for sources that report progress.
    commands: mpsc::UnboundedSender<Command>,
}

impl Reloader {
    /// Reads and validates the sources config (a bad one fails here, before anything serves) and
    /// returns the reloader with its view; [`Reloader::load`] then loads every source.
    pub fn new(
        settings: CatalogSettings,
        index: CatalogIndex,
        registry: Arc<dyn RegistryStore>,
        mirror: Mirror,
        commands: mpsc::UnboundedSender<Command>,
        replica: Replica,
        progress: Arc<LoadProgress>,
    ) -> Result<(channel::Receiver<Arc<View>>, Reloader), CatalogError> {
        let (config, config_hash) = read_config(&settings, None)?.expect("read without a previous hash");
        let (view, receiver) = channel::channel(Arc::new(View::default()));
        let registry = match &settings.registry_source {
            Some(id) => {
                let id = SourceId::parse(id).map_err(|error| CatalogError::Other(error.to_string()))?;
                Some(RegistrySource::new(id, registry))
            }
            None => None,
        };
        let announcer = Announcer::new(replica.backend().clone());
        let watcher = Watcher::start(settings.debounce, commands.clone()).map_err(|error| {
            tracing::warn!(%error, "cannot watch files: hot reload is off");
        });
        let reloader = Reloader {
            index,
            settings,
            config: SourcesConfig::default(),
            config_hash,
            config_error: None,
            runtimes: BTreeMap::new(),
            registry,
            view,
            watcher: watcher.ok(),
            mirror,
            replica,
            registry_indexed: false,
            progress,
            pending_config: Some(config),
            mcp: BTreeMap::new(),
            mcp_servers: Arc::default(),
            mcp_changed: false,
            announcer,
            announcements: Vec::new(),
            commands,
        };
        Ok((receiver, reloader))
    }

    /// Loads every source (the initial load). With `registry_indexed`, the registry is not re-read:
    /// the index holds it up to the follower's start.
    pub async fn load(&mut self, registry_indexed: bool) {
        self.registry_indexed = registry_indexed;
        let config = self.pending_config.take().unwrap_or_default();
        self.remove_unknown_sources(&config).await;
        self.install(config).await;
        // The initial load leaves many segments; merge them in the background.
        let index = self.index.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            match index.compact().await {
                Ok(merged) if merged > 1 => {
                    tracing::info!(
                        segments = merged,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "search index compacted"
                    )
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "search index compaction failed"),
            }
        });
    }

    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        while let Some(command) = commands.recv().await {
            // Coalesce a burst: many registry writes or file events cost one pass.
            let mut batch = vec![command];
            while let Ok(next) = commands.try_recv() {
                batch.push(next);
            }
            let mut changed = HashSet::new();
            let mut log = Vec::new();
            let mut rebuild = false;
            let mut checkpoint = None;
            let mut acks = Vec::new();
            let mut stop = false;
            for command in batch {
                match command {
                    Command::Stop => stop = true,
                    // Every pass publishes.
                    Command::Publish => {}
                    Command::Changed(paths) => changed.extend(paths),
                    Command::Log { changes, to, ack } => {
                        log.extend(changes);
                        checkpoint = Some(to);
                        acks.push(ack);
                    }
                    Command::Rebuild { to, ack } => {
                        rebuild = true;
                        checkpoint = Some(to);
                        acks.push(ack);
                    }
                }
            }
            if stop {
                break;
            }
            if self.settings.sources.iter().any(|file| touches(&changed, file)) {
                self.reload_config().await;
            }
            let yaml: Vec<String> = self
                .runtimes
                .iter()
                .filter(|(_, runtime)| runtime.yaml_path().is_some_and(|file| touches(&changed, file)))
                .map(|(id, _)| id.clone())
                .collect();
            let _ = self.refresh_all(yaml).await;
            let mcp: Vec<String> = self
                .mcp
                .iter()
                .filter(|(_, runtime)| runtime.yaml_path().is_some_and(|file| touches(&changed, file)))
                .map(|(id, _)| id.clone())
                .collect();
            self.refresh_mcp(mcp).await;
            if !acks.is_empty() {
                let applied = self.follow_log(log, rebuild, checkpoint).await;
                for ack in acks {
                    let _ = ack.send(applied.clone());
                }
            }
            self.publish();
        }
    }

    fn registry_id(&self) -> Option<String> {
        self.registry.as_ref().map(|registry| registry.id().to_string())
    }

    fn config_dirs(&self) -> Vec<PathBuf> {
        self.settings.sources.iter().filter_map(|path| path.parent().map(Path::to_path_buf)).collect()
    }

    /// Re-reads the sources files; an invalid config keeps the active one.
    async fn reload_config(&mut self) {
        // After a rejected edit, even the old contents must be re-applied to clear the error.
        let unchanged = self.config_error.is_none().then_some(self.config_hash);
        match read_config(&self.settings, unchanged) {
            Ok(Some((config, hash))) => {
                tracing::info!(files = ?self.settings.sources, "sources config changed: applying");
                self.config_hash = hash;
                self.config_error = None;
                self.install(config).await;
            }
            Ok(None) => {}
            Err(error) => {
                tracing::error!(%error, "sources config rejected; the previous one stays active");
                self.config_error = Some(error.to_string());
            }
        }
    }

    /// Makes `config` the active one: removed sources leave the index, changed ones reload.
    async fn install(&mut self, config: SourcesConfig) {
        let wanted: HashSet<String> = config.sources.iter().map(|source| source.id.to_string()).collect();
        let removed: Vec<String> = self
            .runtimes
            .keys()
            .filter(|id| !wanted.contains(*id) && Some(*id) != self.registry_id().as_ref())
            .cloned()
            .collect();
        for id in &removed {
            tracing::info!(source = %id, "source removed from the config");
            // A deliberate removal (never a failed sync): what the store holds for the source goes too.
            let runtime = self.runtimes.remove(id);
            if let Some(runtime) = runtime.as_ref().filter(|runtime| !runtime.hashes.is_empty()) {
                self.announcements.push((id.clone(), runtime.hashes.keys().cloned().collect(), Vec::new()));
            }
            let forgotten = match runtime.map(|runtime| runtime.config.kind) {
                Some(Ok(SourceKind::Hf(_))) => match self.mirror.store.forget_source(id).await {
                    Ok(()) => self.mirror.reload_listing().await.map(drop).map_err(|error| error.to_string()),
                    Err(error) => Err(error.to_string()),
                },
                Some(Ok(SourceKind::Peer(_))) => {
                    PeerStore::new(self.replica.backend().clone()).forget(id).await.map_err(|error| error.to_string())
                }
                _ => Ok(()),
            };
            if let Err(error) = forgotten {
                tracing::error!(source = %id, %error, "cannot forget what the store holds for a removed source");
            }
        }
        self.announce().await;
        let _ = self.apply("removed", removed.into_iter().map(Change::DeleteSource).collect()).await;
        let mut refresh = Vec::new();
        for source in &config.sources {
            let id = source.id.to_string();
            if self.runtimes.get(&id).is_some_and(|runtime| runtime.config == *source) {
                continue;
            }
            let runtime = self.runtime(source.clone());
            self.runtimes.insert(id.clone(), runtime);
            refresh.push(id);
        }
        if let Some(id) = self.registry.as_ref().map(|registry| registry.id().clone())
            && !self.runtimes.contains_key(id.as_str())
        {
            let config = SourceConfig {
                id: id.clone(),
                name: "Model Registry".to_owned(),
                enabled: true,
                labels: Vec::new(),
                included_models: Vec::new(),
                excluded_models: Vec::new(),
                kind: Ok(SourceKind::Registry),
            };
            // A resumed index holds the registry already; the change log brings it up to date.
            if !std::mem::take(&mut self.registry_indexed) {
                refresh.push(id.to_string());
            }
            let runtime = self.runtime(config);
            self.runtimes.insert(id.to_string(), runtime);
        }
        let mcp = self.install_mcp(&config.mcp_sources);
        self.config = config;
        self.watch();
        self.refresh_mcp(mcp).await;
        if !self.progress.is_loaded() {
            self.progress.expect_sources(refresh.len());
        }
        let _ = self.refresh_all(refresh).await;
        self.publish();
    }

    /// A fresh runtime for `config`; the hashes of what the index holds for it come from the runtime it
    /// replaces, or from the index on first sight.
    fn runtime(&mut self, config: SourceConfig) -> Runtime {
        let id = config.id.to_string();
        let (hashes, resumed) = match self.runtimes.remove(&id) {
            Some(previous) => (previous.hashes, None),
            None => {
                let hashes = self.index.source_hashes(&id).unwrap_or_else(|error| {
                    tracing::warn!(source = %id, %error, "cannot read indexed hashes; reloading everything");
                    HashMap::new()
                });
                (hashes, self.indexed_state(&config))
            }
        };
        let (source, status, error): (Option<Arc<dyn Source>>, _, _) = match &config.kind {
            _ if !config.enabled => (None, SourceStatus::Disabled, None),
            Ok(SourceKind::Yaml { path }) => {
                (Some(Arc::new(YamlSource::new(config.id.clone(), path.clone()))), SourceStatus::Available, None)
            }
            Ok(SourceKind::Hf(params)) => {
                let commands = self.commands.clone();
                let source = HfSource::start(
                    config.id.clone(),
                    params.clone(),
                    config.name_filter(),
                    self.mirror.clone(),
                    self.replica.clone(),
                    Arc::new(move || drop(commands.send(Command::Publish))),
                );
                (Some(Arc::new(source)), SourceStatus::Available, None)
            }
            Ok(SourceKind::Peer(params)) => {
                let source = PeerSource::start(config.id.clone(), params.clone(), self.replica.clone());
                (Some(Arc::new(source)), SourceStatus::Available, None)
            }
            Ok(SourceKind::Registry) => match &self.registry {
                Some(registry) => (Some(Arc::new(registry.clone())), SourceStatus::Available, None),
                None => (None, SourceStatus::Error, Some("the registry is not part of this catalog".to_owned())),
            },
            Err(message) => (None, SourceStatus::Error, Some(message.clone())),
        };
        let sync = match resumed {
            // The index holds this file's models as of the same config and file digest: a fetch that
            // finds the same bytes parses nothing.
            Some(sync) if !hashes.is_empty() => sync,
            _ => source.as_ref().map_or_else(SyncState::new, |source| source.resume_state(&hashes)),
        };
        Runtime { filter: config.name_filter(), config, source, sync, hashes, status, error, last_loaded: None }
    }

    /// Fetches sources one at a time (parsing runs on the blocking pool, a large file's in parallel) and
    /// applies each one's changes as its fetch completes. Memory stays bounded however many sources
    /// there are: a fetched source waits, before the next fetch starts, until its changes fit in
    /// [`IN_FLIGHT_BYTES`] beside those not yet committed. Fails when a source could not be fetched or
    /// its changes not indexed (the source shows the error and keeps its last good models).
    async fn refresh_all(&mut self, ids: Vec<String>) -> Result<(), String> {
        let fetching = Arc::new(tokio::sync::Semaphore::new(1));
        let in_flight = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT_BYTES >> 10));
        let mut fetches = tokio::task::JoinSet::new();
        for id in ids {
            let Some(runtime) = self.runtimes.get_mut(&id) else { continue };
            match runtime.source.clone() {
                Some(source) if runtime.config.enabled => {
                    let sync = runtime.sync.clone();
                    let (fetching, in_flight) = (fetching.clone(), in_flight.clone());
                    fetches.spawn(async move {
                        let slot = fetching.acquire_owned().await.expect("the semaphore is never closed");
                        let started = Instant::now();
                        let fetched = match source.fetch(&sync).await {
                            // Hash the records here, on the blocking pool, while earlier sources index.
                            Ok(Some(snapshot)) => tokio::task::spawn_blocking(move || content_hashes(snapshot))
                                .await
                                .map(Some)
                                .map_err(|error| SourceError::Fetch(error.to_string())),
                            Ok(None) => Ok(None),
                            Err(error) => Err(error),
                        };
                        let kib = match &fetched {
                            Ok(Some((_, _, bytes))) => (bytes >> 10).clamp(1, IN_FLIGHT_BYTES >> 10) as u32,
                            _ => 1,
                        };
                        let room = in_flight.acquire_many_owned(kib).await.expect("the semaphore is never closed");
                        drop(slot);
                        (
                            id,
                            fetched.map(|fetched| fetched.map(|(snapshot, hashes, _)| (snapshot, hashes))),
                            started,
                            room,
                        )
                    });
                }
                _ if !runtime.hashes.is_empty() => {
                    // A disabled or unbuildable source serves nothing.
                    let before = runtime.hashes.drain().map(|(name, _)| name).collect();
                    self.announcements.push((id.clone(), before, Vec::new()));
                    self.announce().await;
                    self.apply(&id, vec![Change::DeleteSource(id.clone())]).await?;
                }
                _ => {}
            }
        }
        // Queue each source's changes as its fetch completes (after its catalog events are written);
        // batches queued while the writer commits share its next commit. A source's room is free once
        // its changes are committed. Wait for all of them before the new state is published.
        let mut pending = Vec::new();
        let mut failures = Vec::new();
        while let Some(joined) = fetches.join_next().await {
            match joined {
                Ok((id, fetched, started, room)) => {
                    if let Err(error) = &fetched {
                        failures.push(format!("{id}: {error}"));
                    }
                    let Some(changes) = self.absorb(&id, fetched, started) else { continue };
                    self.announce().await;
                    let committed = self.index.submit(changes);
                    pending.push((
                        id,
                        tokio::spawn(async move {
                            let outcome = committed.await;
                            drop(room);
                            outcome
                        }),
                    ));
                }
                Err(error) => {
                    tracing::error!(%error, "a source fetch panicked");
                    failures.push(error.to_string());
                }
            }
        }
        for (id, done) in pending {
            let outcome =
                done.await.map_err(|error| error.to_string()).and_then(|done| done.map_err(|error| error.to_string()));
            if let Err(error) = outcome {
                tracing::error!(source = %id, %error, "index update failed");
                failures.push(format!("{id}: {error}"));
            }
        }
        if failures.is_empty() { Ok(()) } else { Err(failures.join("; ")) }
    }

    /// Takes one fetch's outcome: returns the index changes it makes (the caller submits them), or shows
    /// the error.
    fn absorb(
        &mut self,
        id: &str,
        fetched: Result<Option<Hashed>, SourceError>,
        started: Instant,
    ) -> Option<Vec<Change>> {
        let runtime = self.runtimes.get_mut(id)?;
        let (snapshot, content) = match fetched {
            Ok(None) => {
                runtime.status = SourceStatus::Available;
                runtime.error = None;
                self.progress.source_loaded(id, runtime.hashes.len());
                return None;
            }
            Ok(Some((snapshot, content))) => (snapshot, content),
            Err(error) => {
                tracing::error!(source = %id, %error, "source failed to load; keeping its last good models");
                runtime.status = SourceStatus::Error;
                runtime.error = Some(error.to_string());
                self.progress.source_loaded(id, runtime.hashes.len());
                return None;
            }
        };
        let status = snapshot.status();
        let first_seen = self.first_seen(id, &snapshot, &content);
        let runtime = self.runtimes.get_mut(id)?;
        let now = now_millis();
        let mut failures = Vec::new();
        let mut changes = Vec::new();
        let mut hashes = HashMap::with_capacity(snapshot.records.len());
        for (name, outcome) in snapshot.records {
            if !runtime.filter.allows(&name) {
                continue;
            }
            match outcome {
                RecordOutcome::Changed(mut record) => {
                    let hash = content[&name];
                    if runtime.hashes.get(&name) != Some(&hash) {
                        // Times a catalog does not give: first seen, and last seen to change. The hash was
                        // taken before this stamp, so an unchanged record is not rewritten and keeps them.
                        let created = record.create_time.or_else(|| first_seen.get(&name).copied()).unwrap_or(now);
                        record.create_time = Some(created);
                        record.update_time = Some(record.update_time.unwrap_or(now).max(created));
                        changes.push(Change::Upsert { source_id: id.to_owned(), record: Arc::from(record), hash });
                    }
                    hashes.insert(name, hash);
                }
                RecordOutcome::Unchanged => {
                    if let Some(hash) = runtime.hashes.get(&name) {
                        hashes.insert(name, *hash);
                    }
                }
                RecordOutcome::Failed(message) => {
                    if let Some(hash) = runtime.hashes.get(&name) {
                        hashes.insert(name.clone(), *hash);
                    }
                    failures.push(format!("{name}: {message}"));
                }
            }
        }
        let deleted = runtime.hashes.keys().filter(|name| !hashes.contains_key(*name));
        changes.extend(deleted.map(|name| Change::Delete(DocKey { source_id: id.to_owned(), name: name.clone() })));
        let written = changes.len();
        if matches!(runtime.config.kind, Ok(SourceKind::Yaml { .. })) {
            let state = ResumeState { config: fingerprint(&runtime.config), sync: snapshot.state.clone() };
            let state = serde_json::to_string(&state).ok();
            changes.push(Change::SourceState { source_id: id.to_owned(), state });
        }
        if written > 0 {
            let before = runtime.hashes.keys().cloned().collect();
            self.announcements.push((id.to_owned(), before, hashes.keys().cloned().collect()));
        }
        runtime.sync = snapshot.state;
        runtime.hashes = hashes;
        runtime.status = status;
        failures.splice(0..0, snapshot.problem);
        runtime.error = (!failures.is_empty()).then(|| failures.join("; "));
        runtime.last_loaded = Some(now_millis());
        let models = runtime.hashes.len();
        tracing::info!(source = %id, models, written, elapsed_ms = started.elapsed().as_millis() as u64, "source loaded");
        self.progress.source_loaded(id, models);
        Some(changes)
    }

    /// The fetch state the index holds for a YAML source, if it was written under the same config.
    fn indexed_state(&self, config: &SourceConfig) -> Option<SyncState> {
        if !matches!(config.kind, Ok(SourceKind::Yaml { .. })) || !config.enabled {
            return None;
        }
        let stored = self.index.source_state(config.id.as_str()).ok().flatten()?;
        let state: ResumeState = serde_json::from_str(&stored).ok()?;
        (state.config == fingerprint(config)).then_some(state.sync)
    }

    /// Writes the catalog events of the sources whose names changed (before their changes go to the
    /// index, so a crash in between announces again at restart rather than never).
    async fn announce(&mut self) {
        let registry = self.registry_id();
        for (id, before, after) in std::mem::take(&mut self.announcements) {
            // Registered models have their own events (`registered_model.*`).
            if Some(&id) == registry.as_ref() {
                continue;
            }
            match self.announcer.announce(&id, &before, &after).await {
                Ok((0, 0)) => {}
                Ok((added, removed)) => tracing::info!(source = %id, added, removed, "catalog changes announced"),
                Err(error) => tracing::warn!(source = %id, %error, "cannot write catalog events"),
            }
        }
    }

    /// The create times the index holds for the changed records of `snapshot` that it holds already and
    /// whose catalog gives no create time (so an edit keeps the time the model was first seen).
    fn first_seen(&self, id: &str, snapshot: &SourceSnapshot, content: &HashMap<String, u64>) -> HashMap<String, i64> {
        let Some(runtime) = self.runtimes.get(id) else { return HashMap::new() };
        let keys: Vec<DocKey> = snapshot
            .records
            .iter()
            .filter(|(name, outcome)| match outcome {
                RecordOutcome::Changed(record) => {
                    record.create_time.is_none()
                        && runtime.hashes.get(*name).is_some_and(|indexed| Some(indexed) != content.get(*name))
                }
                _ => false,
            })
            .map(|(name, _)| DocKey { source_id: id.to_owned(), name: name.clone() })
            .collect();
        if keys.is_empty() {
            return HashMap::new();
        }
        match self.index.get_many(&keys) {
            Ok(found) => found
                .into_iter()
                .filter_map(|(key, stored)| stored.record.create_time.map(|time| (key.name, time)))
                .collect(),
            Err(error) => {
                tracing::warn!(source = %id, %error, "cannot read indexed create times; edited models get new ones");
                HashMap::new()
            }
        }
    }

    async fn apply(&self, id: &str, changes: Vec<Change>) -> Result<(), String> {
        self.index.apply(changes).await.map(drop).map_err(|error| {
            tracing::error!(source = %id, %error, "index update failed");
            error.to_string()
        })
    }

    /// Removes sources the index holds but the config does not name (changed while we were down).
    async fn remove_unknown_sources(&self, config: &SourcesConfig) {
        let known: HashSet<String> =
            config.sources.iter().map(|source| source.id.to_string()).chain(self.registry_id()).collect();
        let indexed = self.index.counts().unwrap_or_default();
        let stale: Vec<Change> =
            indexed.into_keys().filter(|id| !known.contains(id)).map(Change::DeleteSource).collect();
        if !stale.is_empty() {
            tracing::info!(count = stale.len(), "removing sources no longer configured from the index");
            let _ = self.apply("*", stale).await;
        }
    }

    fn watch(&mut self) {
        let yaml = self
            .runtimes
            .values()
            .filter_map(|runtime| runtime.yaml_path())
            .chain(self.mcp.values().filter_map(|runtime| runtime.yaml_path()))
            .filter_map(|path| path.parent().map(Path::to_path_buf));
        let dirs: HashSet<PathBuf> = self.config_dirs().into_iter().chain(yaml).collect();
        if let Some(watcher) = &mut self.watcher {
            watcher.watch_dirs(dirs);
        }
    }

    fn publish(&mut self) {
        let mut view = View::from_config(&self.config);
        view.sources = self.runtimes.values().map(Runtime::view).collect();
        view.mcp_sources = self.mcp.values().map(mcp::McpRuntime::view).collect();
        view.mcp = self.mcp_servers();
        view.config_error = self.config_error.clone();
        view.config_files = self.settings.sources.clone();
        view.revision = self.view.borrow().revision + 1;
        self.view.send_replace(Arc::new(view));
    }
}

/// What the index keeps of a YAML source between restarts (in its commit, with the source's models):
/// the config it was loaded under and the last fetch's state (the file's digest).
#[derive(serde::Serialize, serde::Deserialize)]
struct ResumeState {
    config: String,
    sync: SyncState,
}

/// A digest of a source's config: models loaded under another (another path, other include or exclude
/// patterns) are loaded again.
fn fingerprint(config: &SourceConfig) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(format!("{config:?}").as_bytes()))
}

/// The content hash of every changed record of a snapshot, by name, and their size in all (as JSON).
fn content_hashes(snapshot: SourceSnapshot) -> (SourceSnapshot, HashMap<String, u64>, usize) {
    let mut bytes = 0;
    let mut hashes = HashMap::with_capacity(snapshot.records.len());
    for (name, outcome) in &snapshot.records {
        if let RecordOutcome::Changed(record) = outcome {
            let (hash, size) = record.content_hash_and_size();
            hashes.insert(name.clone(), hash);
            bytes += size;
        }
    }
    (snapshot, hashes, bytes)
}

/// Reads the sources files; `None` when their contents hash to `unchanged` (nothing to parse).
fn read_config(
    settings: &CatalogSettings,
    unchanged: Option<u64>,
) -> Result<Option<(SourcesConfig, u64)>, CatalogError> {
    let mut files = Vec::new();
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for path in &settings.sources {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                hasher.update(path.as_os_str().as_encoded_bytes());
                hasher.update(&(text.len() as u64).to_le_bytes());
                hasher.update(text.as_bytes());
                files.push((path.clone(), text));
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && settings.sources_optional => {}
            Err(error) => {
                return Err(CatalogError::Config(ConfigError {
                    problems: vec![format!("{}: {error}", path.display())],
                }));
            }
        }
    }
    let hash = hasher.digest();
    if unchanged == Some(hash) {
        return Ok(None);
    }
    let config = modelcat_sources::config::parse(&files)?;
    if let Some(reserved) = &settings.registry_source
        && config.sources.iter().chain(&config.mcp_sources).any(|source| source.id.as_str() == reserved)
    {
        let problem = format!("source id {reserved} is reserved for the model registry (catalog.registry_source)");
        return Err(CatalogError::Config(ConfigError { problems: vec![problem] }));
    }
    Ok(Some((config, hash)))
}
