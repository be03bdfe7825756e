//! The Hugging Face mirror: Hub metadata synced into modelcat's own store and served back through the
//! Hub's API (`crate::api::hf`).
//!
//! - [`store`]: raw `model_info` and refs documents and mirrored files, in SQLite or PostgreSQL.
//! - [`hub`]: the HTTP client that syncs from a Hub, within its rate limits.
//! - [`sync`]: one sync of an `hf` source (list, skip unchanged, fetch, write, forget).
//! - [`listing`]: the in-memory listing `GET /api/models` searches.
//! - [`bundle`]: export and import of the whole mirror as one verified, compressed file.
//! - [`HfSource`]: an `hf` catalog source: a background task syncs on the source's `syncInterval`, and the
//!   catalog reads the mirrored repos back as model records.
//!
//! The store is the truth; the listing is rebuilt from it at start and follows every write.

pub mod bundle;
pub mod cli;
pub mod hub;
pub mod listing;
pub mod store;
pub mod sync;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use modelcat_sources::hf::{HfParams, model_record};
use modelcat_sources::{NameFilter, RecordOutcome, Source, SourceError, SourceId, SourceSnapshot, SyncState};
use serde_json::Value as Json;

use hub::{HubClient, RetryPolicy};
use listing::{Entry, Listing};
use store::{MirrorStore, StoreError};
use sync::{Progress, SyncJob, SyncReport};

/// Why a sync could not run at all (Hub failures land in its [`SyncReport`] instead).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot build the Hub client: {0}")]
    Client(#[from] hub::HubError),
}

/// The mirror: its store, the listing kept in step with it, and parsed repo documents cached for the
/// read routes. Cheap to clone.
#[derive(Clone)]
pub struct Mirror {
    pub store: MirrorStore,
    pub listing: Listing,
    /// Parsed documents by repo id. Syncs in this process invalidate what they write; the time to live
    /// bounds staleness after writes by another process (`modelcat mirror` against the same database).
    repos: moka::sync::Cache<String, Arc<RepoDocs>>,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Mirror").field("store", &self.store).field("repos", &self.listing.len()).finish()
    }
}

/// A mirrored repo's documents, parsed.
#[derive(Debug)]
pub struct RepoDocs {
    pub sha: String,
    pub info: serde_json::Map<String, Json>,
    pub refs: Json,
}

impl RepoDocs {
    /// Gated repos keep their metadata public; their files are not served.
    pub fn gated(&self) -> bool {
        self.info.get("gated").is_some_and(Json::is_string)
    }
}

/// How long a cached repo document may lag a write made by another process.
const REPO_CACHE_TTL: Duration = Duration::from_secs(5);

impl Mirror {
    /// Opens the mirror over `store`, loading the listing from it.
    pub async fn open(store: MirrorStore) -> Result<Mirror, StoreError> {
        let repos = moka::sync::Cache::builder().max_capacity(20_000).time_to_live(REPO_CACHE_TTL).build();
        let mirror = Mirror { store, listing: Listing::default(), repos };
        mirror.reload_listing().await?;
        Ok(mirror)
    }

    /// A repo's documents, from the cache or the store.
    pub async fn repo(&self, repo_id: &str) -> Result<Option<Arc<RepoDocs>>, StoreError> {
        if let Some(docs) = self.repos.get(repo_id) {
            return Ok(Some(docs));
        }
        let Some(stored) = self.store.repo(repo_id).await? else { return Ok(None) };
        let docs = Arc::new(RepoDocs {
            sha: stored.sha,
            info: serde_json::from_str(&stored.info).unwrap_or_default(),
            refs: serde_json::from_str(&stored.refs).unwrap_or(Json::Null),
        });
        self.repos.insert(repo_id.to_owned(), docs.clone());
        Ok(Some(docs))
    }

    /// Rebuilds the listing from the store.
    pub async fn reload_listing(&self) -> Result<usize, StoreError> {
        self.repos.invalidate_all();
        let mut entries = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.scan(after.as_deref()).await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            entries.extend(page.iter().filter_map(|(_, info)| Entry::from_info(&serde_json::from_str(info).ok()?)));
        }
        let count = entries.len();
        self.listing.replace(entries);
        Ok(count)
    }

    /// Syncs one source once, keeping the listing in step (published at most about once a second).
    /// `on_progress` sees the sync's progress.
    pub async fn sync(
        &self,
        source_id: &str,
        params: &HfParams,
        filter: &NameFilter,
        retry: RetryPolicy,
        on_progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<SyncReport, SyncError> {
        let client = HubClient::new(&params.url, params.api_key(), retry)?;
        let last_publish = Mutex::new(Instant::now());
        let stage = |progress: Progress, written: &[Entry]| {
            for entry in written {
                self.repos.invalidate(&*entry.id);
                self.listing.stage(entry.clone());
            }
            let mut last = last_publish.lock().expect("publish clock");
            if last.elapsed() >= Duration::from_secs(1) && self.listing.publish() {
                *last = Instant::now();
            }
            on_progress(progress);
        };
        let job = SyncJob { source_id, params, filter, store: &self.store, client: &client, on_progress: &stage };
        let report = sync::sync(job).await;
        self.listing.publish();
        let report = report?;
        if report.removed > 0 {
            self.reload_listing().await?;
        }
        Ok(report)
    }
}

/// An `hf` catalog source. Creating one starts its sync task; dropping it stops the task.
#[derive(Debug)]
pub struct HfSource {
    id: SourceId,
    mirror: Mirror,
    last: Arc<Mutex<Option<SyncReport>>>,
    task: tokio::task::JoinHandle<()>,
}

impl HfSource {
    /// Starts syncing now and then every `syncInterval`; `on_synced` is called after each sync.
    pub fn start(
        id: SourceId,
        params: HfParams,
        filter: NameFilter,
        mirror: Mirror,
        on_synced: Arc<dyn Fn() + Send + Sync>,
    ) -> HfSource {
        let last = Arc::new(Mutex::new(None));
        let task = tokio::spawn({
            let (id, mirror, last) = (id.clone(), mirror.clone(), last.clone());
            async move {
                loop {
                    // Long syncs (hours against the real Hub's quotas) report progress every ten seconds.
                    let progress = Mutex::new((Instant::now(), 0usize));
                    let log_progress = |step: Progress| {
                        let mut progress = progress.lock().expect("progress");
                        match step {
                            Progress::Listed(total) => progress.1 = total,
                            Progress::Done(done) if progress.0.elapsed() >= Duration::from_secs(10) => {
                                tracing::info!(source = %id, done, total = progress.1, "Hub sync in progress");
                                progress.0 = Instant::now();
                            }
                            Progress::Done(_) => {}
                        }
                    };
                    let outcome =
                        mirror.sync(id.as_str(), &params, &filter, RetryPolicy::default(), &log_progress).await;
                    let report = outcome.unwrap_or_else(|error| SyncReport {
                        problem: Some(format!("sync failed: {error}")),
                        ..SyncReport::default()
                    });
                    tracing::info!(source = %id, "Hub sync: {}", report.summary());
                    *last.lock().expect("sync report") = Some(report);
                    on_synced();
                    tokio::time::sleep(params.sync_interval).await;
                }
            }
        });
        HfSource { id, mirror, last, task }
    }
}

impl Drop for HfSource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[async_trait::async_trait]
impl Source for HfSource {
    fn id(&self) -> &SourceId {
        &self.id
    }

    /// The mirrored repos of this source as records: those whose `sha` moved since `previous` are read and
    /// mapped, the rest are unchanged; repos the last sync could not fetch are reported as failed.
    async fn fetch(&self, previous: &SyncState) -> Result<Option<SourceSnapshot>, SourceError> {
        let failed = |error: StoreError| SourceError::Fetch(error.to_string());
        let versions = self.mirror.store.source_versions(self.id.as_str()).await.map_err(failed)?;
        let changed: Vec<&str> = versions
            .iter()
            .filter(|(repo_id, sha)| previous.get(*repo_id) != Some(*sha))
            .map(|(repo_id, _)| repo_id.as_str())
            .collect();
        let mut records: BTreeMap<String, RecordOutcome> =
            versions.keys().map(|repo_id| (repo_id.clone(), RecordOutcome::Unchanged)).collect();
        for (info, readme, synced_at) in self.mirror.store.cards(&changed).await.map_err(failed)? {
            let Ok(info) = serde_json::from_str::<Json>(&info) else { continue };
            if let Some(record) = model_record(&info, readme.as_deref(), synced_at) {
                records.insert(record.name.clone(), RecordOutcome::Changed(Box::new(record)));
            }
        }
        let report = self.last.lock().expect("sync report").clone();
        let problem = report.as_ref().and_then(|report| report.problem.clone());
        for (repo_id, error) in report.map(|report| report.failed).unwrap_or_default() {
            records.insert(repo_id, RecordOutcome::Failed(error));
        }
        Ok(Some(SourceSnapshot { records, state: versions.into_iter().collect(), problem }))
    }
}
