//! This process as one replica among several sharing a store.
//!
//! [`Replica`] carries the replica's id, the leases it holds, and how far its index follows the change
//! log; the catalog's follower publishes that position, Hub sources take and give up leases through it,
//! and `…/status` shows it. [`Replica::run_housekeeping`] records a heartbeat (id and applied position)
//! every few seconds and prunes the change log: entries older than the retention go, but never one that a
//! live replica (heard from within `replica_timeout`) has not applied yet.
//!
//! The id comes from the configuration, or else from `<data_dir>/replica-id`, created once with a random
//! value, so a restarted replica keeps its id and takes back its own leases at once.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::store::lease::{self, Lease};
use crate::store::sql::Backend;
use crate::store::{changes, now_millis, replicas};

/// Replication settings (the `replication` section of the server config).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicationSettings {
    /// This replica's id; `None` reads or creates `<data_dir>/replica-id`.
    pub replica_id: Option<String>,
    /// How long a lease lasts without renewal (failover time after a crash).
    pub lease_ttl: Duration,
    /// How long change-log entries are kept.
    pub log_retention: Duration,
    /// How often a replica records its heartbeat and position.
    pub heartbeat: Duration,
    /// A replica not heard from for this long no longer holds back pruning.
    pub replica_timeout: Duration,
    /// How often the follower reads the log without being woken (the safety net under `NOTIFY`).
    pub poll_interval: Duration,
}

impl Default for ReplicationSettings {
    fn default() -> Self {
        ReplicationSettings {
            replica_id: None,
            lease_ttl: Duration::from_secs(15),
            log_retention: Duration::from_secs(24 * 3600),
            heartbeat: Duration::from_secs(2),
            replica_timeout: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// How far this replica's index follows the change log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowState {
    /// The log epoch `position` belongs to.
    pub epoch: String,
    /// The last applied log position.
    pub position: i64,
    /// The log's head when last read.
    pub head: i64,
    /// Whether the initial catch-up finished.
    pub caught_up: bool,
    /// Whether this start resumed from the index's checkpoint (rather than reloading from the store).
    pub resumed: bool,
    /// How many times the index was rebuilt from the store because the log could not be followed.
    pub rebuilds: u64,
    /// The last error reading or applying the log, cleared by the next success.
    pub error: Option<String>,
}

struct Inner {
    id: String,
    /// The deployment's id, shared by every replica of the store ([`crate::store::instance_id`]).
    instance: String,
    backend: Arc<dyn Backend>,
    settings: ReplicationSettings,
    started_at: i64,
    leases: Mutex<BTreeMap<String, Lease>>,
    follow: watch::Sender<FollowState>,
    stopping: watch::Sender<bool>,
}

/// This replica; cheap to clone.
#[derive(Clone)]
pub struct Replica(Arc<Inner>);

impl std::fmt::Debug for Replica {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Replica").field("id", &self.0.id).finish()
    }
}

/// How often a replica that does not hold a lease tries to take it.
const LEASE_POLL: Duration = Duration::from_millis(500);

impl Replica {
    /// The replica for a store of deployment `instance`, its id from `settings` or the data directory.
    pub fn new(
        backend: Arc<dyn Backend>,
        instance: String,
        settings: ReplicationSettings,
        data_dir: &Path,
    ) -> std::io::Result<Replica> {
        let id = match &settings.replica_id {
            Some(id) => id.clone(),
            None => persistent_id(data_dir)?,
        };
        Ok(Replica(Arc::new(Inner {
            id,
            instance,
            backend,
            settings,
            started_at: now_millis(),
            leases: Mutex::default(),
            follow: watch::channel(FollowState::default()).0,
            stopping: watch::channel(false).0,
        })))
    }

    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The deployment this replica belongs to (what peers know it by).
    pub fn instance(&self) -> &str {
        &self.0.instance
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.0.backend
    }

    pub fn settings(&self) -> &ReplicationSettings {
        &self.0.settings
    }

    /// The leases this replica holds now.
    pub fn leases(&self) -> Vec<Lease> {
        self.0.leases.lock().expect("leases").values().cloned().collect()
    }

    /// The follower's latest state.
    pub fn follow_state(&self) -> FollowState {
        self.0.follow.borrow().clone()
    }

    /// Waits on the follower's state (the change feed wakes on each applied position).
    pub fn watch_follow(&self) -> watch::Receiver<FollowState> {
        self.0.follow.subscribe()
    }

    /// Publishes the follower's state (the follower calls this).
    pub fn set_follow_state(&self, update: impl FnOnce(&mut FollowState)) {
        self.0.follow.send_modify(update);
    }

    /// Waits until this replica holds lease `name`; `None` once the replica is stopping.
    pub async fn acquire(&self, name: &str) -> Option<HeldLease> {
        let mut stopping = self.0.stopping.subscribe();
        loop {
            if *stopping.borrow() {
                return None;
            }
            match lease::acquire(&*self.0.backend, name, &self.0.id, self.0.settings.lease_ttl).await {
                Ok(Some(lease)) => {
                    tracing::info!(lease = name, fence = lease.fence, "lease acquired");
                    metrics::counter!("modelcat_lease_changes_total", "lease" => name.to_owned(), "change" => "acquired")
                        .increment(1);
                    self.0.leases.lock().expect("leases").insert(name.to_owned(), lease.clone());
                    return Some(HeldLease::start(self.clone(), lease));
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(lease = name, %error, "cannot bid for a lease"),
            }
            tokio::select! {
                () = tokio::time::sleep(LEASE_POLL) => {}
                _ = stopping.changed() => {}
            }
        }
    }

    /// Stops counting `lease` as held; `false` when it was not (already released or lost).
    fn forget(&self, lease: &Lease, change: &'static str) -> bool {
        let held = self.0.leases.lock().expect("leases").remove(&lease.name);
        let was_held = held.is_some_and(|held| held.fence == lease.fence);
        if was_held {
            metrics::counter!("modelcat_lease_changes_total", "lease" => lease.name.clone(), "change" => change)
                .increment(1);
        }
        was_held
    }

    /// Gives up a lease this replica holds, so another replica can take it at once.
    async fn release(&self, lease: &Lease) {
        if !self.forget(lease, "released") {
            return;
        }
        match lease::release(&*self.0.backend, lease).await {
            Ok(()) => tracing::info!(lease = %lease.name, fence = lease.fence, "lease released"),
            Err(error) => tracing::warn!(lease = %lease.name, %error, "cannot release a lease; it will expire"),
        }
    }

    /// Stops bidding for leases and releases every held one, so other replicas take over at once
    /// (graceful shutdown).
    pub async fn shutdown(&self) {
        self.0.stopping.send_replace(true);
        for lease in self.leases() {
            self.release(&lease).await;
        }
    }

    /// Records heartbeats and prunes the log until the replica stops.
    pub async fn run_housekeeping(self) {
        let mut stopping = self.0.stopping.subscribe();
        loop {
            let position = self.follow_state().position;
            if let Err(error) = replicas::heartbeat(&*self.0.backend, &self.0.id, position, self.0.started_at).await {
                tracing::warn!(%error, "cannot record this replica's heartbeat");
            }
            if let Err(error) = self.prune().await {
                tracing::warn!(%error, "cannot prune the change log");
            }
            match changes::compact(&*self.0.backend).await {
                Ok(deleted) => metrics::counter!("modelcat_change_log_compacted_total").increment(deleted),
                Err(error) => tracing::warn!(%error, "cannot compact the change log"),
            }
            tokio::select! {
                () = tokio::time::sleep(self.0.settings.heartbeat) => {}
                _ = stopping.changed() => return,
            }
        }
    }

    /// Prunes entries past the retention that every live replica has applied.
    pub async fn prune(&self) -> Result<i64, crate::store::DbError> {
        let settings = &self.0.settings;
        let live = replicas::live(&*self.0.backend, settings.replica_timeout.as_millis() as i64).await?;
        let keep_after = live.iter().map(|replica| replica.position).min();
        let older_than = now_millis() - settings.log_retention.as_millis() as i64;
        let through = changes::prune(&*self.0.backend, older_than, keep_after).await?;
        Ok(through)
    }
}

/// A lease this replica holds, renewed in the background until it is lost or dropped.
pub struct HeldLease {
    replica: Replica,
    lease: Lease,
    lost: watch::Receiver<bool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl HeldLease {
    fn start(replica: Replica, lease: Lease) -> HeldLease {
        let (lost_sender, lost) = watch::channel(false);
        let renewer = tokio::spawn({
            let (replica, mut lease) = (replica.clone(), lease.clone());
            async move {
                let ttl = replica.0.settings.lease_ttl;
                let mut valid_until = Instant::now() + ttl;
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    let renewed_at = Instant::now();
                    match lease::renew(&*replica.0.backend, &mut lease, ttl).await {
                        Ok(true) => {
                            valid_until = renewed_at + ttl;
                            if let Some(held) = replica.0.leases.lock().expect("leases").get_mut(&lease.name) {
                                held.expires_at = lease.expires_at;
                            }
                        }
                        Ok(false) => break,
                        Err(error) if Instant::now() < valid_until => {
                            tracing::warn!(lease = %lease.name, %error, "cannot renew a lease; retrying");
                        }
                        Err(error) => {
                            tracing::warn!(lease = %lease.name, %error, "cannot renew a lease before it expired");
                            break;
                        }
                    }
                }
                if replica.forget(&lease, "lost") {
                    tracing::warn!(lease = %lease.name, fence = lease.fence, "lease lost");
                }
                let _ = lost_sender.send(true);
            }
        });
        HeldLease { replica, lease, lost, renewer }
    }

    /// The lease, for fencing writes.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Resolves once the lease is lost.
    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        let _ = lost.wait_for(|lost| *lost).await;
    }
}

impl Drop for HeldLease {
    /// Stops renewing and releases the lease (a source removed from the config, a task stopped).
    fn drop(&mut self) {
        self.renewer.abort();
        let (replica, lease) = (self.replica.clone(), self.lease.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { replica.release(&lease).await });
        }
    }
}

/// Reads `<data_dir>/replica-id`, creating it on first start.
fn persistent_id(data_dir: &Path) -> std::io::Result<String> {
    let path = data_dir.join("replica-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        _ => {
            let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
            let host = host.trim();
            let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
            let id = if host.is_empty() { format!("replica-{suffix}") } else { format!("{host}-{suffix}") };
            std::fs::create_dir_all(data_dir)?;
            std::fs::write(&path, &id)?;
            Ok(id)
        }
    }
}
