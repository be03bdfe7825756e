//! [`HfSource`]: an `hf` catalog source, synced by exactly one replica at a time.
//!
//! Creating one starts a task that bids for the source's lease (`hf:<source id>`). The replica holding it
//! syncs whenever the last sync recorded in the store (by whichever replica ran it) is older than the
//! source's `syncInterval`, so a new holder continues the schedule, and, since the mirror itself is the
//! sync state, fetches only what is missing or changed. Every write of a sync is fenced by the lease: once
//! the lease is lost the sync stops, and a holder that was paused cannot write. Dropping the source stops
//! its task and releases the lease.
//!
//! On every replica, [`Source::fetch`] reads the mirrored repos back as catalog records (only those whose
//! `sha` moved since the last fetch), with the failures of the last recorded sync.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use modelcat_sources::hf::{HfParams, model_record};
use modelcat_sources::{
    NameFilter, RecordOutcome, Source, SourceError, SourceId, SourceSnapshot, SyncState, SyncStatus,
};
use serde_json::Value as Json;

use super::hub::RetryPolicy;
use super::store::{StoreError, SyncRecord};
use super::sync::{Progress, SyncReport};
use super::{Mirror, SyncError};
use crate::replica::{HeldLease, Replica};
use crate::store::now_millis;

/// An `hf` catalog source; dropping it stops its sync task.
#[derive(Debug)]
pub struct HfSource {
    id: SourceId,
    mirror: Mirror,
    task: tokio::task::JoinHandle<()>,
    /// The running sync's counts (on the replica running it) and the last recorded sync's outcome.
    status: Arc<Mutex<SyncStatus>>,
}

/// Called when the sync's progress moves, so the catalog shows it.
pub type Notify = Arc<dyn Fn() + Send + Sync>;

/// The sync's status and who to tell when it moves.
struct Reporter {
    status: Arc<Mutex<SyncStatus>>,
    notify: Notify,
}

impl Reporter {
    fn update(&self, change: impl FnOnce(&mut SyncStatus)) {
        change(&mut self.status.lock().expect("sync status"));
        (self.notify)();
    }
}

impl HfSource {
    /// Starts the source's sync task on `replica`; `notify` hears of the sync's progress.
    pub fn start(
        id: SourceId,
        params: HfParams,
        filter: NameFilter,
        mirror: Mirror,
        replica: Replica,
        notify: Notify,
    ) -> HfSource {
        let status = Arc::new(Mutex::new(SyncStatus::default()));
        let reporter = Reporter { status: status.clone(), notify };
        let task = tokio::spawn(run(id.clone(), params, filter, mirror.clone(), replica, reporter));
        HfSource { id, mirror, task, status }
    }
}

impl Drop for HfSource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Holds the lease and syncs on schedule while it is held; bids again once it is lost.
async fn run(id: SourceId, params: HfParams, filter: NameFilter, mirror: Mirror, replica: Replica, reporter: Reporter) {
    let lease_name = format!("hf:{id}");
    while let Some(held) = replica.acquire(&lease_name).await {
        tokio::select! {
            () = sync_while_held(&id, &params, &filter, &mirror, &held, &reporter) => {}
            () = held.lost() => tracing::warn!(source = %id, "lost the sync lease; another replica syncs this source"),
        }
    }
}

async fn sync_while_held(
    id: &SourceId,
    params: &HfParams,
    filter: &NameFilter,
    mirror: &Mirror,
    held: &HeldLease,
    reporter: &Reporter,
) {
    loop {
        let due = match mirror.store.last_sync(id.as_str()).await {
            // A sync that started after the last one finished was interrupted: continue it now.
            Ok(Some(last)) if last.started_at > last.finished_at => 0,
            Ok(Some(last)) => last.finished_at + params.sync_interval.as_millis() as i64,
            Ok(None) => 0,
            Err(error) => {
                tracing::warn!(source = %id, %error, "cannot read the last sync; syncing now");
                0
            }
        };
        let wait = Duration::from_millis((due - now_millis()).max(0) as u64);
        tokio::time::sleep(wait).await;
        let started_at = now_millis();
        match mirror.store.record_sync_start(id.as_str(), Some(held.lease())).await {
            Ok(()) => {}
            Err(StoreError::Fenced(_)) => return,
            Err(error) => tracing::warn!(source = %id, %error, "cannot record the sync's start"),
        }
        reporter.update(|status| {
            (status.syncing, status.started_at) = (true, Some(started_at));
            (status.listed, status.done, status.failed) = (0, 0, 0);
        });
        let report = match sync_once(id, params, filter, mirror, held, reporter).await {
            Err(SyncError::Store(StoreError::Fenced(_))) => return,
            Ok(report) => report,
            Err(error) => SyncReport { problem: Some(format!("sync failed: {error}")), ..SyncReport::default() },
        };
        tracing::info!(source = %id, "Hub sync: {}", report.summary());
        let finished_at = now_millis();
        reporter.update(|status| {
            status.syncing = false;
            status.first_sync_done = true;
            status.failed = report.failed.len();
            status.finished_at = Some(finished_at);
            status.summary = Some(report.summary());
            if report.problem.is_none() {
                status.last_success_at = Some(finished_at);
            }
        });
        let record = SyncRecord {
            started_at,
            finished_at,
            failed: report.failed.clone(),
            problem: report.problem.clone(),
            summary: report.summary(),
        };
        match mirror.store.record_sync(id.as_str(), &record, Some(held.lease())).await {
            Ok(()) => {}
            Err(StoreError::Fenced(_)) => return,
            Err(error) => {
                // The store is unreachable; try again after a pause rather than hammering the Hub.
                tracing::warn!(source = %id, %error, "cannot record the sync");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}

/// One sync, logging progress every ten seconds (long syncs against the real Hub's quotas take hours).
async fn sync_once(
    id: &SourceId,
    params: &HfParams,
    filter: &NameFilter,
    mirror: &Mirror,
    held: &HeldLease,
    reporter: &Reporter,
) -> Result<SyncReport, SyncError> {
    let progress = Mutex::new((Instant::now(), 0usize));
    let log_progress = |step: Progress| {
        let mut progress = progress.lock().expect("progress");
        match step {
            Progress::Listed(total) => {
                progress.1 = total;
                reporter.update(|status| status.listed = total);
            }
            Progress::Done(done) => {
                reporter.update(|status| status.done = done);
                if progress.0.elapsed() >= Duration::from_secs(10) {
                    tracing::info!(source = %id, done, total = progress.1, "Hub sync in progress");
                    progress.0 = Instant::now();
                }
            }
        }
    };
    mirror.sync(id.as_str(), params, filter, RetryPolicy::default(), &log_progress, Some(held.lease())).await
}

#[async_trait::async_trait]
impl Source for HfSource {
    fn id(&self) -> &SourceId {
        &self.id
    }

    fn sync_status(&self) -> Option<SyncStatus> {
        Some(self.status.lock().expect("sync status").clone())
    }

    /// The mirrored repos of this source as records: those whose `sha` moved since `previous` are read and
    /// mapped, the rest are unchanged; repos the last recorded sync could not fetch are reported as failed.
    async fn fetch(&self, previous: &SyncState) -> Result<Option<SourceSnapshot>, SourceError> {
        let failed = |error: StoreError| SourceError::Fetch(error.to_string());
        let store = &self.mirror.store;
        let versions = store.source_versions(self.id.as_str()).await.map_err(failed)?;
        let changed: Vec<&str> = versions
            .iter()
            .filter(|(repo_id, sha)| previous.get(*repo_id) != Some(*sha))
            .map(|(repo_id, _)| repo_id.as_str())
            .collect();
        let mut records: BTreeMap<String, RecordOutcome> =
            versions.keys().map(|repo_id| (repo_id.clone(), RecordOutcome::Unchanged)).collect();
        for (info, readme, synced_at) in store.cards(&changed).await.map_err(failed)? {
            let Ok(info) = serde_json::from_str::<Json>(&info) else { continue };
            if let Some(record) = model_record(&info, readme.as_deref(), synced_at) {
                records.insert(record.name.clone(), RecordOutcome::Changed(Box::new(record)));
            }
        }
        let last = store.last_sync(self.id.as_str()).await.map_err(failed)?.unwrap_or_default();
        {
            // What every replica can know, from the store: whether a sync runs and how the last one went.
            let mut status = self.status.lock().expect("sync status");
            // The replica running a sync knows before the store (which hears of its start and end); the
            // store tells the others, and says when a sync they saw start has ended.
            let store_syncing = last.started_at > last.finished_at;
            if store_syncing || last.finished_at >= status.started_at.unwrap_or(0) {
                status.syncing = store_syncing;
            }
            if last.finished_at > 0 {
                status.first_sync_done = true;
                status.finished_at = status.finished_at.max(Some(last.finished_at));
                status.summary.get_or_insert_with(|| last.summary.clone());
                if last.problem.is_none() {
                    status.last_success_at = status.last_success_at.max(Some(last.finished_at));
                }
            }
        }
        for (repo_id, error) in last.failed {
            records.insert(repo_id, RecordOutcome::Failed(error));
        }
        Ok(Some(SourceSnapshot { records, state: versions.into_iter().collect(), problem: last.problem }))
    }
}
