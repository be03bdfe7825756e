//! The catalog service: configured sources feeding the search index, and the reads the catalog API makes.
//!
//! - [`Catalog::start`] opens the index (rebuilding it when needed) and reads the sources config, and
//!   returns at once; in the background it loads every source, then hands the sources to one reloader
//!   task ([`reload`]) fed by the file watcher ([`watch`]) and by the change-log follower ([`follower`]),
//!   which brings in what any replica wrote to the store (registered models, Hub mirrors, peers). Only
//!   that task changes sources, so reloads never race; each source reload is one index batch, seen
//!   whole by readers. The catalog counts as loaded ([`progress`]) once the index has caught up with
//!   the log; until then the APIs that read it answer 503.
//! - What the API shows about sources (status, error, counts, labels, named queries) is published by the
//!   reloader as an immutable [`View`]; readers never wait for a reload.
//! - Searches run on the blocking pool. Filter options and facet counts are cached (moka) under the index
//!   generation, so any committed change invalidates them.

pub mod artifacts;
pub mod cache;
pub mod events;
pub mod follower;
pub mod perf;
pub mod progress;
pub mod registry_source;
mod reload;
mod watch;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use modelcat_index::{
    CatalogIndex, DocKey, Hits, IndexError, ModelScan, PropertyOptions, Search, Storage, StoredModel,
};
use modelcat_sources::SourceStatus;
use modelcat_sources::config::{NamedQueries, SourceConfig, SourcesConfig};
use tokio::sync::{mpsc, watch as channel};

use crate::mirror::Mirror;
use crate::registry::RegistryStore;
use crate::replica::Replica;
use cache::GenerationCache;
use progress::LoadProgress;

/// Catalog settings (from `config/modelcat.yaml`).
#[derive(Debug, Clone)]
pub struct CatalogSettings {
    /// Sources files, layered in order.
    pub sources: Vec<PathBuf>,
    /// Whether the default sources file may be missing (it was not asked for explicitly).
    pub sources_optional: bool,
    /// Where the index lives; `None` keeps it in memory.
    pub index_dir: Option<PathBuf>,
    /// The id under which registered models appear in the catalog; `None` leaves them out.
    pub registry_source: Option<String>,
    /// How long file events settle before a reload.
    pub debounce: Duration,
    /// The byte budget of cached facet counts and filter options.
    pub search_cache_bytes: u64,
    /// The index writer's indexing memory, split over its threads.
    pub index_writer_bytes: usize,
}

/// The default byte budget of the search caches.
pub const DEFAULT_SEARCH_CACHE_BYTES: u64 = 64 << 20;

impl CatalogSettings {
    /// The defaults under a data directory: the index in `<data_dir>/index`, registered models as source
    /// `registry`, and the given sources files (which must exist).
    pub fn new(data_dir: &std::path::Path, sources: Vec<PathBuf>) -> CatalogSettings {
        CatalogSettings {
            sources,
            sources_optional: false,
            index_dir: Some(data_dir.join("index")),
            registry_source: Some("registry".to_owned()),
            debounce: Duration::from_millis(100),
            search_cache_bytes: DEFAULT_SEARCH_CACHE_BYTES,
            index_writer_bytes: modelcat_index::DEFAULT_WRITER_BYTES,
        }
    }
}

/// One source as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceView {
    pub config: SourceConfig,
    pub status: SourceStatus,
    pub error: Option<String>,
    /// Models this source serves now.
    pub models: usize,
    /// When the source last loaded successfully (ms since the epoch).
    pub last_loaded: Option<i64>,
    /// A syncing source's progress (Hub mirrors).
    pub sync: Option<modelcat_sources::SyncStatus>,
}

/// What the reloader publishes after each change.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub sources: Vec<SourceView>,
    pub labels: Vec<serde_json::Map<String, serde_json::Value>>,
    pub named_queries: NamedQueries,
    /// MCP sources (their `models` counts servers) and named queries, and every enabled one's servers.
    pub mcp_sources: Vec<SourceView>,
    pub mcp_named_queries: NamedQueries,
    pub mcp: Arc<crate::mcp::McpServers>,
    /// Why the last sources-config reload was rejected (the previous config stays active).
    pub config_error: Option<String>,
    pub config_files: Vec<PathBuf>,
    /// Counts publications: every change of a source's status or of the config moves it.
    pub revision: u64,
}

impl View {
    fn from_config(config: &SourcesConfig) -> View {
        View {
            labels: config.labels.clone(),
            named_queries: config.named_queries.clone(),
            mcp_named_queries: config.mcp_named_queries.clone(),
            ..View::default()
        }
    }
}

/// Facet counts: facet → (value, count), most frequent first.
type Facets = BTreeMap<String, Vec<(String, u64)>>;

/// A handle on the catalog; cheap to clone.
#[derive(Clone)]
pub struct Catalog {
    index: CatalogIndex,
    view: channel::Receiver<Arc<View>>,
    /// By the sources they cover (`None`: all).
    options: GenerationCache<Option<Vec<String>>, Arc<BTreeMap<String, PropertyOptions>>>,
    facets: GenerationCache<String, Arc<Facets>>,
    commands: mpsc::UnboundedSender<reload::Command>,
    progress: Arc<LoadProgress>,
}

/// The background half of [`Catalog::start`].
struct Loading {
    reloader: reload::Reloader,
    receiver: mpsc::UnboundedReceiver<reload::Command>,
    index: CatalogIndex,
    fresh: bool,
    mirror: Mirror,
    replica: Replica,
    commands: mpsc::UnboundedSender<reload::Command>,
}

impl Loading {
    /// Loads everything, retrying what the store could not answer, then hands over to the reloader and
    /// the follower and marks the catalog loaded.
    async fn run(mut self, progress: Arc<LoadProgress>) {
        let retry = || tokio::time::sleep(Duration::from_secs(1));
        while let Err(error) = self.mirror.reload_listing().await {
            tracing::warn!(%error, "cannot load the Hub mirror's listing yet; retrying");
            progress.set_error(Some(format!("cannot load the Hub mirror's listing: {error}")));
            retry().await;
        }
        let plan = loop {
            match follower::plan(&self.replica, &self.index, self.fresh).await {
                Ok(plan) => break plan,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the change log yet; retrying");
                    progress.set_error(Some(format!("cannot read the change log: {error}")));
                    retry().await;
                }
            }
        };
        progress.set_error(None);
        self.reloader.load(plan.resume).await;
        tokio::spawn(self.reloader.run(self.receiver));
        let mut follower = follower::Follower::new(self.replica, self.commands, &plan);
        follower.catch_up().await;
        progress.finish();
        follower.run().await;
    }
}

/// Why the catalog cannot start.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("invalid sources configuration:\n{0}")]
    Config(#[from] modelcat_sources::config::ConfigError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("{0}")]
    Other(String),
}

impl Catalog {
    /// Opens the index and reads the sources config (a bad one fails here), then loads in the
    /// background: the Hub mirror's listing, every source, and the change log up to its head, before
    /// watching files and following the log ([`Catalog::progress`] tells when it is done). `registry` is
    /// the store whose models join the catalog when `settings.registry_source` names a source.
    pub async fn start(
        settings: CatalogSettings,
        registry: Arc<dyn RegistryStore>,
        mirror: Mirror,
        replica: Replica,
    ) -> Result<Catalog, CatalogError> {
        let storage = settings.index_dir.clone().map_or(Storage::Memory, Storage::Directory);
        let (index, fresh) = CatalogIndex::open(&storage, settings.index_writer_bytes)?;
        if fresh {
            tracing::info!(index = ?storage, "search index is new: loading every source into it");
        }
        let cache_bytes = settings.search_cache_bytes;
        let (commands, receiver) = mpsc::unbounded_channel();
        let progress = Arc::new(LoadProgress::default());
        let (view, reloader) = reload::Reloader::new(
            settings,
            index.clone(),
            registry,
            mirror.clone(),
            commands.clone(),
            replica.clone(),
            progress.clone(),
        )?;
        tokio::spawn(progress.clone().report());
        let loading =
            Loading { reloader, receiver, index: index.clone(), fresh, mirror, replica, commands: commands.clone() };
        tokio::spawn(loading.run(progress.clone()));
        // Filter options are one answer per generation; facet counts take the rest of the budget.
        let options = GenerationCache::new(cache_bytes / 8);
        let facets = GenerationCache::new(cache_bytes - cache_bytes / 8);
        Ok(Catalog { index, view, options, facets, commands, progress })
    }

    /// The initial load's progress.
    pub fn progress(&self) -> &Arc<LoadProgress> {
        &self.progress
    }

    /// How many index segments searches visit.
    pub fn segments(&self) -> usize {
        self.index.segments()
    }

    /// How many index files the index directory keeps mapped.
    pub fn mapped_files(&self) -> usize {
        self.index.mapped_files()
    }

    /// The search caches' estimated bytes and entries: (name, bytes, entries).
    pub fn cache_sizes(&self) -> [(&'static str, u64, u64); 2] {
        [
            ("facets", self.facets.bytes(), self.facets.entries_held()),
            ("filter_options", self.options.bytes(), self.options.entries_held()),
        ]
    }

    /// Moves whenever an answer of the catalog API could change: at every index commit (see
    /// [`CatalogIndex::generation`], bumped once the commit is searchable) and every publication of the
    /// sources' view.
    pub fn revision(&self) -> u64 {
        self.index.generation() + self.view.borrow().revision
    }

    /// The sources as last published.
    pub fn view(&self) -> Arc<View> {
        self.view.borrow().clone()
    }

    /// Searches on the blocking pool; facet counts come from the cache when the index has not changed.
    pub async fn search(&self, search: OwnedSearch) -> Result<Hits, IndexError> {
        let this = self.clone();
        run_blocking(move || {
            let mut hits = this.index.search(&search.borrow(&[]))?;
            if !search.facets.is_empty() {
                let key = format!("{:?}", (search.cache_key(), &search.facets));
                let counted = this.facets.get_or_compute(this.index.generation(), key, || {
                    let count_only = Search { limit: 0, count: false, ..search.borrow(&search.facets) };
                    this.index.search(&count_only).map(|hits| Arc::new(hits.facets))
                });
                hits.facets = (*counted.map_err(unshare)?).clone();
            }
            Ok(hits)
        })
        .await
    }

    /// One model by source and name.
    pub async fn model(&self, source_id: &str, name: &str) -> Result<Option<StoredModel>, IndexError> {
        let index = self.index.clone();
        let key = DocKey { source_id: source_id.to_owned(), name: name.to_owned() };
        run_blocking(move || index.get(&key)).await
    }

    /// Several models by key, from one point-in-time view.
    pub async fn models(
        &self,
        keys: Vec<DocKey>,
    ) -> Result<std::collections::HashMap<DocKey, StoredModel>, IndexError> {
        let index = self.index.clone();
        run_blocking(move || index.get_many(&keys)).await
    }

    /// A point-in-time walk over the models of `sources` (read its chunks on the blocking pool).
    pub async fn scan(&self, sources: Vec<String>) -> Result<ModelScan, IndexError> {
        let index = self.index.clone();
        run_blocking(move || index.scan(&sources)).await
    }

    /// Filter options with counts over `sources` (`None`: every source), cached until the index changes.
    pub async fn filter_options(
        &self,
        sources: Option<Vec<String>>,
    ) -> Result<Arc<BTreeMap<String, PropertyOptions>>, IndexError> {
        let this = self.clone();
        run_blocking(move || {
            let compute = || this.index.filter_options(sources.as_deref()).map(Arc::new);
            this.options.get_or_compute(this.index.generation(), sources.clone(), compute).map_err(unshare)
        })
        .await
    }

    /// Stops reloading, then the index writer after pending changes (graceful shutdown).
    pub async fn close(&self) {
        let _ = self.commands.send(reload::Command::Stop);
        self.index.close().await;
    }
}

/// A search that owns its inputs, so it can move to the blocking pool.
#[derive(Debug, Clone, Default)]
pub struct OwnedSearch {
    pub q: Option<String>,
    pub filter: Option<crate::filter::Expr>,
    pub sources: Option<Vec<String>>,
    pub sort: Option<modelcat_index::SortBy>,
    pub descending: bool,
    pub offset: usize,
    pub limit: usize,
    pub facets: Vec<String>,
    pub count: bool,
}

impl OwnedSearch {
    fn borrow<'a>(&'a self, facets: &'a [String]) -> Search<'a> {
        Search {
            q: self.q.as_deref(),
            filter: self.filter.as_ref(),
            sources: self.sources.as_deref(),
            sort: self.sort.clone(),
            descending: self.descending,
            offset: self.offset,
            limit: self.limit,
            facets,
            count: self.count,
        }
    }

    /// What facet counts depend on: the matching set, not its order or page.
    fn cache_key(&self) -> (Option<&str>, Option<&crate::filter::Expr>, Option<&[String]>) {
        (self.q.as_deref(), self.filter.as_ref(), self.sources.as_deref())
    }
}

/// A cache loader's shared error, keeping whether it was the caller's fault (a 400) or the index's.
fn unshare(error: Arc<IndexError>) -> IndexError {
    match &*error {
        IndexError::Query(message) => IndexError::Query(message.clone()),
        other => IndexError::Internal(other.to_string()),
    }
}

async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, IndexError> + Send + 'static,
) -> Result<T, IndexError> {
    tokio::task::spawn_blocking(work).await.map_err(|error| IndexError::Internal(error.to_string()))?
}
