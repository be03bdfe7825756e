//! The index follower: keeps this replica's search index in step with the store's change log.
//!
//! It numbers what was committed since it last looked ([`changes::sequence`]), reads the log after its
//! applied position and hands each page of entries to the reloader (the one
//! task that changes the index), which re-reads what they name from the store and applies it; the
//! reloader then records the new position as the index commit's checkpoint, so position and documents
//! are durable together. The follower wakes on the backend's commit signal (this process's writes, and
//! on PostgreSQL every `NOTIFY` and listener reconnect) and, as a safety net, every `poll_interval`
//! (which also numbers what a process that died after committing left unnumbered).
//!
//! At start ([`plan`]) the index's checkpoint decides: if it names the log's epoch and a position the
//! log still covers, the follower resumes there and the registry is not re-read; otherwise (a new or
//! rebuilt index, a pruned position, another epoch) every store-backed source is loaded whole and
//! following starts from the head read before that load. The same check runs on every wake, so a
//! replica that falls behind the pruned part, or a database replaced underneath it, rebuilds rather
//! than skips.

use std::time::{Duration, Instant};

use modelcat_index::CatalogIndex;
use tokio::sync::{mpsc, oneshot};

use super::reload::Command;
use crate::replica::Replica;
use crate::store::changes::{self, Bounds};

/// Entries read per page.
const PAGE: i64 = 1000;
/// Pages handed to the reloader before waiting for them while catching up.
const PAGES_IN_FLIGHT: usize = 10;
/// The shortest time between the starts of two steps: under a stream of writes, each step (one index
/// commit) takes what arrived meanwhile, instead of committing once per write; an idle follower answers
/// at once. A step that took longer spaces the next one as far apart, so batches grow with the load
/// while an index commit's fixed cost is paid at most about once per step's time.
const MIN_STEP_INTERVAL: Duration = Duration::from_millis(50);

/// What the index holds: the log epoch and the position it has applied.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    pub epoch: String,
    pub position: i64,
}

impl Checkpoint {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Where following starts, decided before the initial load.
#[derive(Debug, Clone)]
pub struct Plan {
    pub start: Checkpoint,
    /// Whether the index's checkpoint is usable (store-backed sources need not be re-read).
    pub resume: bool,
}

/// Reads the log's bounds and the index's checkpoint.
pub async fn plan(replica: &Replica, index: &CatalogIndex, fresh: bool) -> Result<Plan, String> {
    let bounds = changes::bounds(&**replica.backend()).await.map_err(|error| error.to_string())?;
    let stored: Option<Checkpoint> =
        index.checkpoint().map_err(|error| error.to_string())?.and_then(|payload| serde_json::from_str(&payload).ok());
    let plan = match stored {
        Some(stored) if !fresh && bounds.covers(&stored.epoch, stored.position) => Plan { start: stored, resume: true },
        stored => {
            if let Some(stored) = stored.filter(|_| !fresh) {
                tracing::warn!(
                    position = stored.position,
                    head = bounds.head,
                    pruned_through = bounds.pruned_through,
                    same_epoch = stored.epoch == bounds.epoch,
                    "the change log no longer covers the index's position: rebuilding from the store"
                );
            }
            Plan { start: Checkpoint { epoch: bounds.epoch.clone(), position: bounds.head }, resume: false }
        }
    };
    Ok(plan)
}

/// Follows the log; see the module docs.
pub struct Follower {
    replica: Replica,
    reloader: mpsc::UnboundedSender<Command>,
    at: Checkpoint,
}

impl Follower {
    /// A follower at `plan`'s start; `run` first records that start in the index.
    pub fn new(replica: Replica, reloader: mpsc::UnboundedSender<Command>, plan: &Plan) -> Follower {
        replica.set_follow_state(|state| {
            state.epoch = plan.start.epoch.clone();
            state.position = plan.start.position;
            state.resumed = plan.resume;
        });
        Follower { replica, reloader, at: plan.start.clone() }
    }

    /// Records the starting checkpoint and applies everything up to the head; returns once caught up
    /// (or the store failed, which the follower state shows).
    pub async fn catch_up(&mut self) {
        let recorded = self.send(|ack| Command::Log { changes: Vec::new(), to: self.at.clone(), ack }).await;
        if let Err(error) = recorded.and(self.step().await) {
            tracing::warn!(%error, "cannot catch up with the change log yet");
        }
        self.replica.set_follow_state(|state| state.caught_up = true);
    }

    /// Follows until the reloader stops.
    pub async fn run(mut self) {
        let mut commits = self.replica.backend().commits();
        let poll = self.replica.settings().poll_interval;
        let mut last_step = Instant::now();
        let mut spacing = MIN_STEP_INTERVAL;
        loop {
            tokio::select! {
                changed = commits.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(poll) => {}
            }
            if self.reloader.is_closed() {
                return;
            }
            tokio::time::sleep(spacing.saturating_sub(last_step.elapsed())).await;
            commits.borrow_and_update();
            last_step = Instant::now();
            let stepped = self.step().await;
            spacing = last_step.elapsed().max(MIN_STEP_INTERVAL);
            if let Err(error) = stepped {
                tracing::warn!(%error, "cannot follow the change log; retrying");
                self.replica.set_follow_state(|state| state.error = Some(error));
            }
        }
    }

    /// Applies every entry after the current position, or rebuilds when the log cannot be followed.
    async fn step(&mut self) -> Result<(), String> {
        let backend = self.replica.backend().clone();
        changes::sequence(&*backend).await.map_err(|error| error.to_string())?;
        let bounds: Bounds = changes::bounds(&*backend).await.map_err(|error| error.to_string())?;
        if !bounds.covers(&self.at.epoch, self.at.position) {
            tracing::warn!(
                position = self.at.position,
                head = bounds.head,
                pruned_through = bounds.pruned_through,
                "the change log no longer covers this replica's position: rebuilding from the store"
            );
            let to = Checkpoint { epoch: bounds.epoch.clone(), position: bounds.head };
            self.send(|ack| Command::Rebuild { to: to.clone(), ack }).await?;
            self.at = to;
            self.replica.set_follow_state(|state| state.rebuilds += 1);
        }
        // Pages follow one another only while catching up on a backlog; a partial page ends the step, so
        // what arrives meanwhile waits for the next one (see `MIN_STEP_INTERVAL`). A backlog's pages are
        // handed over up to `PAGES_IN_FLIGHT` at a time: the reloader takes every page queued when it is
        // free in one index commit, so a long catch-up pays a commit per few thousand entries, not per
        // page.
        loop {
            let mut in_flight = Vec::new();
            let mut full = true;
            let mut read = self.at.clone();
            while full && in_flight.len() < PAGES_IN_FLIGHT {
                let page =
                    changes::read_after(&*backend, read.position, PAGE).await.map_err(|error| error.to_string())?;
                let Some(last) = page.last().map(|change| change.seq) else { break };
                full = page.len() == PAGE as usize;
                metrics::histogram!("modelcat_follower_batch_entries").record(page.len() as f64);
                let to = Checkpoint { epoch: read.epoch.clone(), position: last };
                in_flight.push(self.dispatch(|ack| Command::Log { changes: page, to: to.clone(), ack })?);
                read = to;
            }
            let started = Instant::now();
            if in_flight.is_empty() {
                break;
            }
            // The position moves only once every page handed over was applied.
            for done in in_flight {
                done.await.map_err(|_| "the catalog stopped".to_owned())??;
            }
            self.at = read;
            metrics::histogram!("modelcat_follower_apply_seconds").record(started.elapsed().as_secs_f64());
            if !full {
                break;
            }
        }
        self.publish(bounds.head);
        Ok(())
    }

    fn publish(&self, head: i64) {
        let (position, head) = (self.at.position, head.max(self.at.position));
        metrics::gauge!("modelcat_follower_position").set(position as f64);
        metrics::gauge!("modelcat_follower_lag_entries").set((head - position) as f64);
        let epoch = self.at.epoch.clone();
        self.replica.set_follow_state(|state| {
            state.epoch = epoch;
            state.position = position;
            state.head = head;
            state.error = None;
        });
    }

    /// Sends a command to the reloader and waits for it to be applied.
    async fn send(&self, command: impl FnOnce(oneshot::Sender<Result<(), String>>) -> Command) -> Result<(), String> {
        self.dispatch(command)?.await.map_err(|_| "the catalog stopped".to_owned())?
    }

    /// Sends a command to the reloader; the receiver resolves once it is applied.
    fn dispatch(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<(), String>>) -> Command,
    ) -> Result<oneshot::Receiver<Result<(), String>>, String> {
        let (ack, done) = oneshot::channel();
        self.reloader.send(command(ack)).map_err(|_| "the catalog stopped".to_owned())?;
        Ok(done)
    }
}
