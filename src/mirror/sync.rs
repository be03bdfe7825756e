//! One sync of an `hf` source into the mirror store.
//!
//! 1. **List** what the include patterns name: `org/*` and `org/prefix*` list by author (with `search` and
//!    a local prefix check), asking only for `sha`, `lastModified`, `trendingScore` and `downloadsAllTime`
//!    (the last two are in no `model_info`, so they are kept with it); exact ids are fetched directly.
//!    Exclude patterns apply to every candidate.
//! 2. **Skip** candidates whose listed `sha` and `lastModified` match the mirrored ones.
//! 3. **Fetch** the rest with bounded concurrency: `model_info?blobs=true`, refs, `README.md`, the
//!    configured small files present in the repo, and safetensors headers (single file, or the index and
//!    each shard's header). Gated repos keep their metadata and their public `README.md`; their other files
//!    are not fetched.
//! 4. **Write** in batches, each repo whole in one transaction; a repo that fails keeps its last mirrored
//!    copy and is reported.
//! 5. **Forget** what the source no longer names, only after every listing completed.
//!
//! Nothing already mirrored is deleted by a failure: a failed listing skips step 5, a failed repo is left
//! as it was.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use modelcat_sources::NameFilter;
use modelcat_sources::hf::{HfParams, RepoPattern};
use serde_json::Value as Json;

use super::hub::{HubClient, HubError, Listed};
use super::listing::Entry;
use super::store::{MirrorStore, MirroredRepo, StoreError};

/// Repos written per store transaction.
const BATCH: usize = 256;
/// Largest safetensors header mirrored (the format's own limit is 100 MB).
const HEADER_LIMIT: u64 = 25 * 1024 * 1024;

/// What one sync did.
#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    /// Repos the patterns named (after excludes).
    pub listed: usize,
    /// Repos fetched and written.
    pub changed: usize,
    pub unchanged: usize,
    /// Repos that could not be fetched, with why (their last mirrored copy stays).
    pub failed: Vec<(String, String)>,
    /// Repos the source no longer mirrors.
    pub removed: usize,
    /// A listing failed: what was listed was synced, nothing was forgotten.
    pub problem: Option<String>,
    pub requests: u64,
    pub elapsed: Duration,
}

impl SyncReport {
    /// One line for logs and the CLI.
    pub fn summary(&self) -> String {
        let seconds = self.elapsed.as_secs_f64();
        format!(
            "{} listed, {} fetched, {} unchanged, {} failed, {} removed; {} requests in {seconds:.1} s ({:.0} models/s)",
            self.listed,
            self.changed,
            self.unchanged,
            self.failed.len(),
            self.removed,
            self.requests,
            self.listed as f64 / seconds.max(1e-9),
        )
    }
}

/// Progress of a sync, for a progress bar or logs.
#[derive(Debug, Clone, Copy)]
pub enum Progress {
    /// Listing finished: this many repos to check.
    Listed(usize),
    /// A batch was written: repos done so far (fetched, unchanged or failed).
    Done(usize),
}

/// What a sync needs.
pub struct SyncJob<'a> {
    pub source_id: &'a str,
    pub params: &'a HfParams,
    pub filter: &'a NameFilter,
    pub store: &'a MirrorStore,
    pub client: &'a HubClient,
    /// The lease the sync runs under (every write checks it); `None` for a one-off CLI sync.
    pub fence: Option<&'a crate::store::lease::Lease>,
    /// Called after listing and after every written batch, with the listing entries of the repos just
    /// written.
    pub on_progress: &'a (dyn Fn(Progress, &[Entry]) + Send + Sync),
}

/// Runs one sync. Only a store failure (or a lost lease) fails it as a whole; Hub failures land in the
/// report.
pub async fn sync(job: SyncJob<'_>) -> Result<SyncReport, StoreError> {
    let started = Instant::now();
    let requests_before = job.client.requests();
    let mut report = SyncReport::default();
    let (candidates, problems) = list(&job).await;
    report.problem = (!problems.is_empty()).then(|| problems.join("; "));
    report.listed = candidates.len();
    (job.on_progress)(Progress::Listed(candidates.len()), &[]);

    let known = job.store.versions().await?;
    let mut unchanged = Vec::new();
    let mut wanted = Vec::new();
    for (repo_id, listed) in &candidates {
        let mirrored = known.get(repo_id);
        match (listed, mirrored) {
            (Some(listed), Some((known_sha, known_modified)))
                if listed.sha.as_deref() == Some(known_sha.as_str()) && &listed.last_modified == known_modified =>
            {
                unchanged.push(repo_id.clone())
            }
            _ => wanted.push((repo_id.clone(), mirrored.map(|(sha, _)| sha.clone()), listed.clone())),
        }
    }

    let job = &job;
    let mut done = unchanged.len();
    report.unchanged = unchanged.len();
    let mut fetched = futures_util::stream::iter(wanted)
        .map(|(repo_id, known_sha, listed)| async move {
            let outcome = fetch_repo(job, &repo_id, known_sha.as_deref(), listed.as_ref()).await;
            (repo_id, outcome)
        })
        .buffer_unordered(job.params.max_concurrency);
    let mut batch = Vec::with_capacity(BATCH);
    let mut entries = Vec::with_capacity(BATCH);
    let mut pending_unchanged = unchanged;
    loop {
        let next = fetched.next().await;
        let finished = next.is_none();
        if let Some((repo_id, outcome)) = next {
            done += 1;
            match outcome {
                Ok(Fetched::Repo(repo, entry)) => {
                    batch.push(*repo);
                    entries.extend(entry);
                }
                Ok(Fetched::Unchanged) => {
                    report.unchanged += 1;
                    pending_unchanged.push(repo_id);
                }
                Err(error) => {
                    tracing::warn!(source = job.source_id, repo = %repo_id, %error, "cannot mirror a model");
                    report.failed.push((repo_id, error.to_string()));
                }
            }
        }
        if batch.len() >= BATCH || (finished && (!batch.is_empty() || !pending_unchanged.is_empty())) {
            job.store.put(job.source_id, &batch, &pending_unchanged, job.fence).await?;
            report.changed += batch.len();
            (job.on_progress)(Progress::Done(done), &entries);
            batch.clear();
            entries.clear();
            pending_unchanged.clear();
        }
        if finished {
            break;
        }
    }
    (job.on_progress)(Progress::Done(done), &[]);

    if report.problem.is_none() {
        let keep: HashSet<String> = candidates.into_keys().collect();
        report.removed = job.store.retain(job.source_id, &keep, job.fence).await?;
    }
    report.requests = job.client.requests() - requests_before;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Each candidate's listing entry (`None` for exact ids, which are not listed).
type Candidates = BTreeMap<String, Option<Listed>>;

/// Lists every pattern; returns the candidates and the listings that failed.
async fn list(job: &SyncJob<'_>) -> (Candidates, Vec<String>) {
    let mut candidates = Candidates::new();
    let mut problems = Vec::new();
    for pattern in &job.params.patterns {
        let (author, prefix) = match pattern {
            RepoPattern::Exact(repo_id) => {
                candidates.insert(repo_id.clone(), None);
                continue;
            }
            RepoPattern::Author(author) => (author, None),
            RepoPattern::Prefix { author, prefix } => (author, Some(prefix)),
        };
        let mut query = vec![("author", author.as_str())];
        if let Some(prefix) = prefix {
            query.push(("search", prefix.as_str()));
        }
        match job.client.list(&query).await {
            Ok(models) => {
                for model in models {
                    let name = model.id.split_once('/').map_or(model.id.as_str(), |(_, name)| name);
                    let in_scope =
                        model.id.split_once('/').is_some_and(|(owner, _)| owner.eq_ignore_ascii_case(author))
                            && prefix.is_none_or(|prefix| name.to_lowercase().starts_with(&prefix.to_lowercase()));
                    if in_scope {
                        candidates.insert(model.id.clone(), Some(model));
                    }
                }
            }
            Err(error) => {
                tracing::warn!(source = job.source_id, author, %error, "listing failed");
                problems.push(format!("listing {author}/{}*: {error}", prefix.map_or("", String::as_str)));
            }
        }
    }
    candidates.retain(|repo_id, _| job.filter.allows(repo_id));
    (candidates, problems)
}

enum Fetched {
    /// The repo, and its listing entry (made from the document already parsed here).
    Repo(Box<MirroredRepo>, Option<Entry>),
    /// An exact id whose `sha` had not moved.
    Unchanged,
}

async fn fetch_repo(
    job: &SyncJob<'_>,
    repo_id: &str,
    known_sha: Option<&str>,
    listed: Option<&Listed>,
) -> Result<Fetched, HubError> {
    let client = job.client;
    let (mut info_text, mut info) = client.model_info(repo_id).await?;
    // `trendingScore` and `downloadsAllTime` come only with the listing: keep them with the document.
    let extra: Vec<_> = listed.map(|listed| listed.list_only_fields().collect()).unwrap_or_default();
    if !extra.is_empty()
        && let Some(object) = info.as_object_mut()
    {
        for (key, value) in extra {
            object.insert(key.to_owned(), Json::Number(value.clone()));
        }
        info_text = info.to_string();
    }
    let sha = info
        .get("sha")
        .and_then(Json::as_str)
        .ok_or_else(|| HubError::Decode { url: repo_id.to_owned(), message: "model_info has no sha".into() })?
        .to_owned();
    if known_sha == Some(sha.as_str()) {
        return Ok(Fetched::Unchanged);
    }
    let refs = match client.refs(repo_id).await {
        Ok(refs) => refs,
        Err(HubError::NotFound(_)) => serde_json::json!({
            "branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": sha}],
            "converts": [],
            "tags": [],
        })
        .to_string(),
        Err(error) => return Err(error),
    };
    let siblings: HashSet<&str> = info
        .get("siblings")
        .and_then(Json::as_array)
        .map(|siblings| siblings.iter().filter_map(|sibling| sibling.get("rfilename")?.as_str()).collect())
        .unwrap_or_default();
    let gated = info.get("gated").is_some_and(Json::is_string);
    let mut files = Vec::new();
    // A gated repo's card is public on the Hub; its other files are not fetched.
    let wanted = std::iter::once("README.md").chain(job.params.files.iter().map(String::as_str));
    for path in wanted.filter(|path| siblings.contains(path) && !(gated && super::gated_file(path))) {
        files.push((path.to_owned(), client.file(repo_id, &sha, path).await?));
    }
    if !gated {
        let mut headers = Vec::new();
        if siblings.contains("model.safetensors") {
            headers.push("model.safetensors".to_owned());
        } else if siblings.contains("model.safetensors.index.json") {
            let index = client.file(repo_id, &sha, "model.safetensors.index.json").await?;
            headers.extend(shards(&index).into_iter().filter(|shard| siblings.contains(shard.as_str())));
            files.push(("model.safetensors.index.json".to_owned(), index));
        }
        for path in headers {
            let header = client.safetensors_header(repo_id, &sha, &path, HEADER_LIMIT).await?;
            files.push((path, header));
        }
    }
    let last_modified = info.get("lastModified").and_then(Json::as_str).map(str::to_owned);
    let entry = Entry::from_info(&info);
    Ok(Fetched::Repo(
        Box::new(MirroredRepo { repo_id: repo_id.to_owned(), sha, last_modified, info: info_text, refs, files }),
        entry,
    ))
}

/// The shard files a safetensors index names, each once.
fn shards(index: &[u8]) -> Vec<String> {
    let index: Json = serde_json::from_slice(index).unwrap_or_default();
    let mut shards: Vec<String> = index
        .get("weight_map")
        .and_then(Json::as_object)
        .map(|map| map.values().filter_map(|file| file.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    shards.sort();
    shards.dedup();
    shards
}
