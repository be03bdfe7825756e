//! The change feed this instance serves to its peers, read from the change log and the search index.
//!
//! - **What it carries:** the store-backed sources, whose changes the log records: registered models,
//!   Hub mirrors and, when asked for, what peer sources took from other registries. YAML catalog files
//!   are not in the log (every replica reads them itself); a peer that wants them polls this instance's
//!   Kubeflow catalog API instead (`protocol: kubeflow-catalog`).
//! - **Consistency:** a page serves log entries up to this replica's applied position only, and reads
//!   the records they name from the index, which holds at least that position. So any replica behind a
//!   load balancer serves any cursor, and a record read is never older than its entry. A snapshot reads
//!   one point-in-time view of the index, taken after reading the applied position it ends with: entries
//!   after that position may already be in it, and applying them again changes nothing.
//! - **Cursors** carry the log epoch. One the log no longer covers (pruned), from another epoch (the
//!   database was replaced) or ahead of the head is refused with [`FeedError::Gone`]: the consumer takes
//!   a snapshot.
//! - **Loops:** a record whose origin chain names the consumer (`exclude`), or that would exceed the
//!   consumer's hop limit, is sent as a tombstone, so a copy the consumer holds goes away.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use modelcat_index::{DocKey, IndexError, ModelScan, StoredModel};
use modelcat_sources::config::SourceKind;
use modelcat_sources::peer::{Hop, origin_of, strip_origin};

use super::wire::{Cursor, Event, Page};
use crate::catalog::Catalog;
use crate::replica::Replica;
use crate::store::changes::{self, ALL, Domain};

/// Entries read per page unless asked otherwise, and at most.
pub const DEFAULT_LIMIT: i64 = 500;
pub const MAX_LIMIT: i64 = 5000;
/// The longest long poll.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// Why a feed request cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The cursor cannot be continued from; `code` says why.
    #[error("{message}")]
    Gone { code: &'static str, message: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// Not ready yet, or the store or index failed (logged; the consumer retries).
    #[error("{0}")]
    Unavailable(String),
}

impl From<IndexError> for FeedError {
    fn from(error: IndexError) -> Self {
        FeedError::Unavailable(format!("search index: {error}"))
    }
}

impl From<crate::store::DbError> for FeedError {
    fn from(error: crate::store::DbError) -> Self {
        FeedError::Unavailable(format!("store: {error}"))
    }
}

/// What a consumer asks for.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Source ids to serve; `None` serves the sources that originated here (registry and Hub mirrors).
    pub sources: Option<HashSet<String>>,
    /// Serve every store-backed source, peers included (`sources=*`).
    pub all: bool,
    /// The consumer's instance id: records that passed through it are not sent back.
    pub exclude: Option<String>,
    /// The consumer's hop limit.
    pub max_hops: Option<usize>,
}

/// The feed of this instance; cheap to clone.
#[derive(Clone)]
pub struct Feed {
    pub replica: Replica,
    pub catalog: Catalog,
}

/// The store-backed sources by domain, as configured now.
struct Sources {
    registry: Option<String>,
    /// Selected source ids.
    selected: HashSet<String>,
}

impl Sources {
    fn key(&self, change: &changes::Change) -> Option<String> {
        let source = match change.domain {
            Domain::Registry => self.registry.clone()?,
            Domain::Hf | Domain::Peer => change.source_id.clone(),
        };
        self.selected.contains(&source).then_some(source)
    }
}

/// One thing a page sends, before records are read.
enum Item {
    Record(DocKey),
    Reset(String),
}

impl Feed {
    fn sources(&self, selection: &Selection) -> Sources {
        let view = self.catalog.view();
        let mut registry = None;
        let mut selected = HashSet::new();
        for source in &view.sources {
            let id = source.config.id.to_string();
            let originated = match &source.config.kind {
                Ok(SourceKind::Registry) => {
                    registry = Some(id.clone());
                    true
                }
                Ok(SourceKind::Hf(_)) => true,
                Ok(SourceKind::Peer(_)) => false,
                _ => continue,
            };
            let wanted = match &selection.sources {
                _ if selection.all => true,
                Some(ids) => ids.contains(&id),
                None => originated,
            };
            if wanted {
                selected.insert(id);
            }
        }
        Sources { registry, selected }
    }

    /// The applied position, once the initial catch-up is done.
    fn applied(&self) -> Result<Cursor, FeedError> {
        let state = self.replica.follow_state();
        if !state.caught_up || state.epoch.is_empty() {
            return Err(FeedError::Unavailable("the search index is still catching up with the change log".into()));
        }
        Ok(Cursor { epoch: state.epoch, position: state.position })
    }

    /// Fails unless the log can be continued from `cursor`.
    async fn check(&self, cursor: &Cursor) -> Result<(), FeedError> {
        let bounds = changes::bounds(&**self.replica.backend()).await?;
        let gone = |code, message: String| Err(FeedError::Gone { code, message });
        if cursor.epoch != bounds.epoch {
            return gone(
                "cursor_epoch",
                "the cursor belongs to another change log (the peer's database was replaced); take a snapshot".into(),
            );
        }
        if cursor.position < bounds.pruned_through {
            return gone(
                "cursor_expired",
                format!("the change log was pruned through {} past the cursor; take a snapshot", bounds.pruned_through),
            );
        }
        if cursor.position > bounds.head {
            return gone(
                "cursor_ahead",
                "the cursor is ahead of the change log (it was reset); take a snapshot".into(),
            );
        }
        Ok(())
    }

    /// One page after `since`: at most `limit` entries; with nothing new, waits up to `wait` for more.
    pub async fn page(
        &self,
        since: &Cursor,
        limit: i64,
        wait: Duration,
        selection: &Selection,
    ) -> Result<Page, FeedError> {
        self.check(since).await?;
        let mut follow = self.replica.watch_follow();
        let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
        let applied = loop {
            let applied = self.applied()?;
            if applied.epoch == since.epoch && applied.position > since.position {
                break applied;
            }
            match tokio::time::timeout_at(deadline, follow.changed()).await {
                Ok(Ok(())) => continue,
                _ => return Ok(self.finish(Vec::new(), since.clone())),
            }
        };
        let log = changes::read_after(&**self.replica.backend(), since.position, limit.clamp(1, MAX_LIMIT)).await?;
        let log: Vec<changes::Change> = log.into_iter().take_while(|change| change.seq <= applied.position).collect();
        let next =
            Cursor { epoch: since.epoch.clone(), position: log.last().map_or(applied.position, |last| last.seq) };
        let sources = self.sources(selection);
        let mut items = Vec::new();
        for change in &log {
            let (Some(source), Some(name)) = (sources.key(change), change.name.clone()) else { continue };
            if name == ALL {
                items.push(Item::Reset(source));
            } else {
                items.push(Item::Record(DocKey { source_id: source, name }));
            }
        }
        let events = self.events(items, selection).await?;
        Ok(self.finish(events, next))
    }

    fn finish(&self, changes: Vec<Event>, cursor: Cursor) -> Page {
        Page { changes, cursor: cursor.encode(), instance: self.replica.instance().to_owned() }
    }

    /// Reads what the items name; each record once, at its last mention.
    async fn events(&self, items: Vec<Item>, selection: &Selection) -> Result<Vec<Event>, FeedError> {
        let mut last: HashMap<&DocKey, usize> = HashMap::new();
        for (position, item) in items.iter().enumerate() {
            if let Item::Record(key) = item {
                last.insert(key, position);
            }
        }
        let keys: Vec<DocKey> = last.keys().map(|key| (*key).clone()).collect();
        let mut found = self.catalog.models(keys).await?;
        let mut events = Vec::new();
        for (position, item) in items.iter().enumerate() {
            match item {
                Item::Record(key) if last[key] == position => match found.remove(key) {
                    Some(model) => events.push(self.event(model, selection)),
                    None => events.push(Event::Delete { source: key.source_id.clone(), name: key.name.clone() }),
                },
                Item::Record(_) => {}
                Item::Reset(source) => {
                    events.push(Event::Reset { source: source.clone() });
                    let mut scan = self.catalog.scan(vec![source.clone()]).await?;
                    loop {
                        let (chunk, rest) = next_chunk(scan, 1000).await?;
                        scan = rest;
                        if chunk.is_empty() {
                            break;
                        }
                        events.extend(chunk.into_iter().map(|model| self.event(model, selection)));
                    }
                }
            }
        }
        Ok(events)
    }

    /// A stored model as this consumer may see it: an upsert with its origin chain, or a tombstone when
    /// the chain names the consumer or is too long.
    pub fn event(&self, model: StoredModel, selection: &Selection) -> Event {
        let StoredModel { source_id, mut record, .. } = model;
        let mut origin = origin_of(&record);
        origin.push(Hop { instance: self.replica.instance().to_owned(), source: source_id.clone() });
        let looped = selection.exclude.as_ref().is_some_and(|me| origin.iter().any(|hop| &hop.instance == me));
        let too_far = selection.max_hops.is_some_and(|max| origin.len() > max);
        if looped || too_far {
            return Event::Delete { source: source_id, name: record.name };
        }
        strip_origin(&mut record);
        Event::Upsert { source: source_id, name: record.name.clone(), record: Box::new(record), origin }
    }

    /// Starts a snapshot: the position it continues from, and a point-in-time walk over the selected
    /// sources.
    pub async fn snapshot(&self, selection: &Selection) -> Result<(Cursor, ModelScan), FeedError> {
        let cursor = self.applied()?;
        let sources: Vec<String> = self.sources(selection).selected.into_iter().collect();
        let scan = self.catalog.scan(sources).await?;
        Ok((cursor, scan))
    }
}

/// The next `count` models of a scan, read on the blocking pool.
pub async fn next_chunk(mut scan: ModelScan, count: usize) -> Result<(Vec<StoredModel>, ModelScan), FeedError> {
    let read = tokio::task::spawn_blocking(move || scan.next_chunk(count).map(|chunk| (chunk, scan)))
        .await
        .map_err(|error| FeedError::Unavailable(error.to_string()))?;
    Ok(read?)
}
