//! [`PeerSource`]: a `peer` catalog source, synced by exactly one replica at a time.
//!
//! Creating one starts a task that bids for the source's lease (`peer:<source id>`). The holder syncs:
//! - `modelcat`: long polls of the peer's change feed from the cursor stored with the records, each page
//!   applied in one fenced transaction with its cursor. Without a cursor, or when the peer answers 410,
//!   it takes a snapshot: records are applied in batches as they stream in, then whatever the snapshot
//!   no longer holds is removed together with the new cursor.
//! - `kubeflow-catalog` / `kubeflow-registry`: every `syncInterval`, a full listing
//!   ([`super::kubeflow`]; a catalog's unchanged models keep their stored artifacts between full sweeps)
//!   applied the same way as a snapshot.
//!
//! A failure (peer down, 401/403, 5xx, timeout, unreadable answer) keeps the records, is recorded as the
//! source's problem (once per distinct message, so a flapping peer does not grow the change log) and is
//! retried with exponential backoff and jitter, capped by `syncInterval`. A snapshot or listing that would
//! remove more than half of the records, or all of them, is refused and reported unless the source sets
//! `allowMassRemoval`.
//!
//! On every replica, [`Source::fetch`] reads the stored records back (only those whose hash moved).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use modelcat_sources::peer::{Hop, PeerParams, Protocol, set_origin};
use modelcat_sources::{RecordOutcome, Source, SourceError, SourceId, SourceSnapshot, SyncState};

use super::client::{PeerClient, PeerError};
use super::store::{Key, PeerStore, Write};
use super::wire::Event;
use crate::replica::{HeldLease, Replica};
use crate::store::changes::Entry;
use crate::store::lease::LeaseError;
use crate::store::now_millis;
use crate::store::syncs::{self, SyncRecord};

/// How long one long poll waits at the peer.
const POLL_WAIT: Duration = Duration::from_secs(25);
/// Entries per feed page, and records per snapshot batch.
const PAGE: usize = 2000;
/// The first retry delay after a failure.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Every this many polls of a Kubeflow catalog, every model's artifacts are fetched again.
const FULL_SWEEP_EVERY: u64 = 12;

/// A `peer` catalog source; dropping it stops its sync task.
#[derive(Debug)]
pub struct PeerSource {
    id: SourceId,
    store: PeerStore,
    task: tokio::task::JoinHandle<()>,
}

impl PeerSource {
    /// Starts the source's sync task on `replica`.
    pub fn start(id: SourceId, params: PeerParams, replica: Replica) -> PeerSource {
        let store = PeerStore::new(replica.backend().clone());
        let sync = Sync {
            id: id.to_string(),
            params,
            store: store.clone(),
            replica: replica.clone(),
            recorded: None,
            polls: 0,
        };
        PeerSource { id, store, task: tokio::spawn(sync.run()) }
    }
}

impl Drop for PeerSource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why one sync step failed.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Peer(#[from] PeerError),
    #[error("store: {0}")]
    Store(#[from] crate::store::DbError),
    /// The lease was lost: stop writing.
    #[error("{0}")]
    Fenced(LeaseError),
    #[error("{0}")]
    MassRemoval(String),
}

impl From<LeaseError> for Failure {
    fn from(error: LeaseError) -> Self {
        match error {
            LeaseError::Db(error) => Failure::Store(error),
            fenced => Failure::Fenced(fenced),
        }
    }
}

/// The sync task's state.
struct Sync {
    id: String,
    params: PeerParams,
    store: PeerStore,
    replica: Replica,
    /// The problem last recorded in the store (`Some(None)`: recorded healthy).
    recorded: Option<Option<String>>,
    /// Polls of a Kubeflow peer so far.
    polls: u64,
}

impl Sync {
    /// Holds the lease and syncs while it is held; bids again once it is lost.
    async fn run(mut self) {
        let lease_name = format!("peer:{}", self.id);
        let replica = self.replica.clone();
        while let Some(held) = replica.acquire(&lease_name).await {
            self.recorded = None;
            tokio::select! {
                () = self.sync_while_held(&held) => {}
                () = held.lost() => tracing::warn!(source = %self.id, "lost the sync lease; another replica syncs this peer"),
            }
        }
    }

    async fn sync_while_held(&mut self, held: &HeldLease) {
        let cap = self.params.sync_interval.max(FIRST_RETRY);
        let mut retry = FIRST_RETRY;
        let mut client = None;
        loop {
            let started = now_millis();
            // One client (and its connections) per holding; rebuilt only until it can be built.
            let outcome = match client.clone().map_or_else(|| PeerClient::new(&self.params), Ok) {
                Ok(ready) => {
                    let outcome = self.step(&ready, held).await;
                    client = Some(ready);
                    outcome
                }
                Err(error) => Err(Failure::Peer(error)),
            };
            let failed = outcome.is_err();
            let held_on = match outcome {
                Ok(summary) => {
                    retry = FIRST_RETRY;
                    self.record(None, summary, started, held).await
                }
                Err(Failure::Fenced(_)) => return,
                Err(failure) => {
                    let problem = failure.to_string();
                    tracing::warn!(source = %self.id, error = %problem, "peer sync failed; keeping the last good records");
                    self.record(Some(problem), None, started, held).await
                }
            };
            if !held_on {
                return;
            }
            let wait = match self.params.protocol {
                _ if failed => {
                    let wait = jitter(retry);
                    retry = (retry * 2).min(cap);
                    wait
                }
                // A long poll waits at the peer.
                Protocol::Modelcat => Duration::ZERO,
                _ => self.params.sync_interval,
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// One step: a feed page or snapshot, or a full listing. Returns a summary worth recording, if any.
    async fn step(&mut self, client: &PeerClient, held: &HeldLease) -> Result<Option<String>, Failure> {
        match self.params.protocol {
            Protocol::Modelcat => self.follow(client, held).await,
            Protocol::KubeflowCatalog | Protocol::KubeflowRegistry => {
                let started = Instant::now();
                self.polls += 1;
                let known = if self.polls % FULL_SWEEP_EVERY == 1 {
                    super::kubeflow::Known::new()
                } else {
                    let records = self.store.all(&self.id).await?;
                    let known = records.into_iter().map(|((peer_source, name), record)| {
                        ((peer_source, name), (record.update_time, record.artifacts))
                    });
                    known.collect()
                };
                let records = super::kubeflow::list(client, &self.params, &known).await?;
                let count = records.len();
                let (mut batch, mut seen) = (Vec::new(), HashSet::new());
                let instance = kubeflow_instance(&self.params.url);
                for (peer_source, mut record) in records {
                    seen.insert((peer_source.clone(), record.name.clone()));
                    set_origin(&mut record, &[Hop { instance: instance.clone(), source: peer_source.clone() }]);
                    batch.push(Write::Upsert { peer_source, record: Box::new(record) });
                }
                let removals = self.removals(self.store.keys(&self.id).await?, &seen)?;
                let removed = removals.len();
                batch.extend(removals);
                let changed =
                    self.store.apply(&self.id, &batch, None, Some(held.lease())).await?.saturating_sub(removed);
                Ok(Some(format!(
                    "listed {count} models in {} ms: {changed} changed, {removed} removed",
                    started.elapsed().as_millis()
                )))
            }
        }
    }

    /// A long poll from the stored cursor, or a snapshot when there is none or the peer refuses it.
    async fn follow(&self, client: &PeerClient, held: &HeldLease) -> Result<Option<String>, Failure> {
        let Some(cursor) = self.store.cursor(&self.id).await? else { return self.snapshot(client, held).await };
        let mut query = self.query();
        query.push(("since", cursor.clone()));
        query.push(("limit", PAGE.to_string()));
        query.push(("wait", POLL_WAIT.as_secs().to_string()));
        let asked = Instant::now();
        let page = match client.changes(&query, POLL_WAIT).await {
            Err(PeerError::Gone(why)) => {
                tracing::info!(source = %self.id, %why, "the peer cannot continue from our cursor: taking a snapshot");
                return self.snapshot(client, held).await;
            }
            page => page?,
        };
        if page.changes.is_empty() && page.cursor == cursor {
            // A peer that answers an idle long poll at once (it ignores `wait`) is not asked in a loop.
            if asked.elapsed() < Duration::from_secs(1) {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            return Ok(None);
        }
        let writes: Vec<Write> = page.changes.into_iter().map(write).collect();
        self.store.apply(&self.id, &writes, Some(&page.cursor), Some(held.lease())).await?;
        Ok(None)
    }

    /// Takes a snapshot: applies its records in batches as they stream in, then removes what it no
    /// longer holds and stores its cursor, in one transaction (a refused mass removal stores no cursor,
    /// so the next attempt snapshots again).
    async fn snapshot(&self, client: &PeerClient, held: &HeldLease) -> Result<Option<String>, Failure> {
        let started = Instant::now();
        let existing = self.store.keys(&self.id).await?;
        let mut reader = client.snapshot(&self.query()).await?;
        let (mut seen, mut changed) = (HashSet::new(), 0);
        loop {
            let batch = reader.next_batch(PAGE).await?;
            if batch.is_empty() {
                break;
            }
            let writes: Vec<Write> = batch.into_iter().map(write).collect();
            for written in &writes {
                if let Write::Upsert { peer_source, record } = written {
                    seen.insert((peer_source.clone(), record.name.clone()));
                }
            }
            changed += self.store.apply(&self.id, &writes, None, Some(held.lease())).await?;
        }
        let cursor = reader.end().map(|end| end.cursor.clone());
        let removals = self.removals(existing, &seen)?;
        let removed = removals.len();
        self.store.apply(&self.id, &removals, cursor.as_deref(), Some(held.lease())).await?;
        let summary = format!(
            "snapshot of {} records in {} ms: {changed} changed, {removed} removed",
            seen.len(),
            started.elapsed().as_millis()
        );
        tracing::info!(source = %self.id, "{summary}");
        Ok(Some(summary))
    }

    /// The deletions of the records a complete listing no longer holds, unless they are a mass removal
    /// the source does not allow.
    fn removals(&self, existing: HashSet<Key>, seen: &HashSet<Key>) -> Result<Vec<Write>, Failure> {
        let gone: Vec<Write> = existing
            .iter()
            .filter(|key| !seen.contains(*key))
            .map(|(peer_source, name)| Write::Delete { peer_source: peer_source.clone(), name: name.clone() })
            .collect();
        let massive = !existing.is_empty() && (seen.is_empty() || gone.len() * 2 > existing.len());
        if massive && !self.params.allow_mass_removal {
            return Err(Failure::MassRemoval(format!(
                "refused to remove {} of {} records the peer no longer lists (more than half); set \
                 properties.allowMassRemoval: true on the source if that is intended",
                gone.len(),
                existing.len()
            )));
        }
        Ok(gone)
    }

    /// What this instance asks a modelcat feed for.
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query =
            vec![("exclude", self.replica.instance().to_owned()), ("maxHops", self.params.max_hops.to_string())];
        if let Some(sources) = &self.params.sources {
            query.push(("sources", sources.join(",")));
        }
        query
    }

    /// Records the step's outcome when it differs from what the store shows (or a summary is worth
    /// showing); `false` once the lease is lost.
    async fn record(
        &mut self,
        problem: Option<String>,
        summary: Option<String>,
        started_at: i64,
        held: &HeldLease,
    ) -> bool {
        if summary.is_none() && self.recorded.as_ref() == Some(&problem) {
            return true;
        }
        let record = SyncRecord {
            started_at,
            finished_at: now_millis(),
            failed: Vec::new(),
            summary: summary
                .unwrap_or_else(|| problem.clone().unwrap_or_else(|| format!("following {}", self.params.url))),
            problem: problem.clone(),
        };
        let status = Entry::peer(&self.id, None);
        match syncs::record(&**self.store.backend(), status, &record, Some(held.lease())).await {
            Ok(()) => {
                self.recorded = Some(problem);
                true
            }
            Err(LeaseError::Db(error)) => {
                tracing::warn!(source = %self.id, %error, "cannot record the peer's status");
                true
            }
            Err(_) => false,
        }
    }
}

/// A feed change as a store write, the origin chain moved into the record's properties.
fn write(event: Event) -> Write {
    match event {
        Event::Upsert { source, name, mut record, origin } => {
            record.name = name;
            set_origin(&mut record, &origin);
            Write::Upsert { peer_source: source, record }
        }
        Event::Delete { source, name } => Write::Delete { peer_source: source, name },
        Event::Reset { source } => Write::Reset { peer_source: source },
    }
}

/// How a Kubeflow peer (which has no instance id) appears in origin chains: its host and port.
fn kubeflow_instance(url: &str) -> String {
    let host = url.split_once("://").map_or(url, |(_, rest)| rest);
    host.chars().map(|c| if c == ':' || c == '/' || c.is_whitespace() { '_' } else { c }).collect()
}

/// `delay` scaled by a random factor in [0.5, 1.5), so retries from many replicas spread out.
fn jitter(delay: Duration) -> Duration {
    let random = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
    delay.mul_f64(0.5 + random)
}

#[async_trait::async_trait]
impl Source for PeerSource {
    fn id(&self) -> &SourceId {
        &self.id
    }

    /// The stored records of this source: those whose hash moved since `previous` are read, the rest are
    /// unchanged; the last recorded problem makes the source partially available (or an error while it
    /// holds nothing). Records are named as the catalog names them: should two of the peer's sources hold
    /// the same name, the one from the source sorted last is served.
    async fn fetch(&self, previous: &SyncState) -> Result<Option<SourceSnapshot>, SourceError> {
        let failed = |error: crate::store::DbError| SourceError::Fetch(error.to_string());
        let versions = self.store.versions(self.id.as_str()).await.map_err(failed)?;
        let state: SyncState = versions.into_iter().map(|((_, name), hash)| (name, hash)).collect();
        let changed: Vec<&str> = state
            .iter()
            .filter(|(name, hash)| previous.get(*name) != Some(*hash))
            .map(|(name, _)| name.as_str())
            .collect();
        let mut records: BTreeMap<String, RecordOutcome> =
            state.keys().map(|name| (name.clone(), RecordOutcome::Unchanged)).collect();
        for (_, record) in self.store.named(self.id.as_str(), &changed).await.map_err(failed)? {
            records.insert(record.name.clone(), RecordOutcome::Changed(Box::new(record)));
        }
        let last = syncs::last(&**self.store.backend(), self.id.as_str()).await.map_err(failed)?.unwrap_or_default();
        Ok(Some(SourceSnapshot { records, state, problem: last.problem }))
    }

    /// The state is every record's content hash by name, so what the index holds need not be read again.
    fn resume_state(&self, indexed: &HashMap<String, u64>) -> SyncState {
        indexed.iter().map(|(name, hash)| (name.clone(), content_hash_text(*hash))).collect()
    }
}

/// How a content hash is written in the store.
pub fn content_hash_text(hash: u64) -> String {
    format!("{hash:016x}")
}
