//! The Hugging Face mirror: Hub metadata synced into modelcat's own store and served back through the
//! Hub's API (`crate::api::hf`).
//!
//! - [`store`]: raw `model_info` and refs documents and mirrored files, in SQLite or PostgreSQL.
//! - [`hub`]: the HTTP client that syncs from a Hub, within its rate limits.
//! - [`sync`]: one sync of an `hf` source (list, skip unchanged, fetch, write, forget).
//! - [`listing`]: the in-memory listing `GET /api/models` searches.
//! - [`bundle`]: export and import of the whole mirror as one verified, compressed file.
//! - [`HfSource`]: an `hf` catalog source: a background task syncs on the source's `syncInterval` on the
//!   one replica holding the source's lease, and every replica's catalog reads the mirrored repos back
//!   as model records.
//!
//! The store is the truth; the listing is rebuilt from it at start and follows every write.

pub mod bundle;
pub mod cli;
pub mod hub;
pub mod listing;
mod source;
pub mod store;
pub mod sync;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use modelcat_sources::NameFilter;
use modelcat_sources::hf::HfParams;
use serde_json::Value as Json;

use crate::store::lease::Lease;
use hub::{HubClient, RetryPolicy};
use listing::{Entry, Listing};
pub use source::HfSource;
use store::{MirrorStore, StoreError};
use sync::{Progress, SyncJob, SyncReport};

/// Whether a gated repo refuses `path` to those without access: every file but its model card, which
/// the Hub shows to everyone. The sync, the Hub API and the fake Hub follow this one rule.
pub fn gated_file(path: &str) -> bool {
    path != "README.md"
}

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

/// The default byte budget of parsed repo documents.
pub const DEFAULT_CACHE_BYTES: u64 = 32 << 20;

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
    /// An estimate of the heap bytes held: parsed JSON takes about twice its text.
    weight: u32,
}

impl RepoDocs {
    /// Gated repos keep their metadata public; their files are not served.
    pub fn gated(&self) -> bool {
        self.info.get("gated").is_some_and(Json::is_string)
    }
}

/// How long a cached repo document may lag a write made by another process.
const REPO_CACHE_TTL: Duration = Duration::from_secs(5);

/// How many times [`Mirror::reload_listing`] reads the store while syncs publish meanwhile.
const RELOAD_ATTEMPTS: u32 = 3;

impl Mirror {
    /// Opens the mirror over `store`, loading the listing from it.
    pub async fn open(store: MirrorStore) -> Result<Mirror, StoreError> {
        let mirror = Mirror::new(store, DEFAULT_CACHE_BYTES);
        mirror.reload_listing().await?;
        Ok(mirror)
    }

    /// The mirror over `store` with an empty listing ([`Mirror::reload_listing`] fills it), caching at
    /// most `cache_bytes` of parsed repo documents.
    pub fn new(store: MirrorStore, cache_bytes: u64) -> Mirror {
        let repos = moka::sync::Cache::builder()
            .max_capacity(cache_bytes)
            .weigher(|id: &String, docs: &Arc<RepoDocs>| docs.weight.saturating_add(id.len() as u32))
            .time_to_live(REPO_CACHE_TTL)
            .build();
        Mirror { store, listing: Listing::default(), repos }
    }

    /// A repo's documents, from the cache or the store.
    pub async fn repo(&self, repo_id: &str) -> Result<Option<Arc<RepoDocs>>, StoreError> {
        if let Some(docs) = self.repos.get(repo_id) {
            return Ok(Some(docs));
        }
        let Some(stored) = self.store.repo(repo_id).await? else { return Ok(None) };
        let weight = 2 * (stored.info.len() + stored.refs.len()) + 128;
        let docs = Arc::new(RepoDocs {
            weight: u32::try_from(weight).unwrap_or(u32::MAX),
            sha: stored.sha,
            info: serde_json::from_str(&stored.info).unwrap_or_default(),
            refs: serde_json::from_str(&stored.refs).unwrap_or(Json::Null),
        });
        self.repos.insert(repo_id.to_owned(), docs.clone());
        Ok(Some(docs))
    }

    /// The repo document cache's estimated bytes and entries.
    pub fn cache_size(&self) -> (u64, u64) {
        self.repos.run_pending_tasks();
        (self.repos.weighted_size(), self.repos.entry_count())
    }

    /// Rebuilds the listing from the store. A sync that publishes while the store is read may have
    /// published repos the read missed, which the replacement would drop: the store is then read again
    /// (up to [`RELOAD_ATTEMPTS`] times; a sync also reloads at its end when a replacement raced it).
    pub async fn reload_listing(&self) -> Result<usize, StoreError> {
        let mut attempt = 1;
        loop {
            self.repos.invalidate_all();
            let publishes = self.listing.publishes();
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
            if self.listing.publishes() == publishes || attempt == RELOAD_ATTEMPTS {
                return Ok(count);
            }
            attempt += 1;
        }
    }

    /// Brings the listing and the document cache in step with repos written or removed by another
    /// replica or process (what the change log names).
    pub async fn follow(&self, repo_ids: &[String]) -> Result<(), StoreError> {
        let ids: Vec<&str> = repo_ids.iter().map(String::as_str).collect();
        let infos = self.store.infos(&ids).await?;
        for repo_id in repo_ids {
            self.repos.invalidate(repo_id.as_str());
            match infos.get(repo_id).and_then(|info| Entry::from_info(&serde_json::from_str(info).ok()?)) {
                Some(entry) => self.listing.stage(entry),
                None => self.listing.stage_removal(repo_id),
            }
        }
        self.listing.publish();
        Ok(())
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
        fence: Option<&Lease>,
    ) -> Result<SyncReport, SyncError> {
        let client = HubClient::new(&params.url, params.api_key(), retry)?;
        let replaces = self.listing.replaces();
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
        let job =
            SyncJob { source_id, params, filter, store: &self.store, client: &client, fence, on_progress: &stage };
        let report = sync::sync(job).await;
        self.listing.publish();
        let report = report?;
        // A rebuild from the store during the sync may have dropped repos this sync had published.
        if report.removed > 0 || self.listing.replaces() != replaces {
            self.reload_listing().await?;
        }
        Ok(report)
    }
}
