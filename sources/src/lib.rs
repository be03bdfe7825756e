//! modelcat-sources: fetching normalized model records from somewhere.
//!
//! The contract every catalog source keeps (YAML catalog files, the Hugging Face Hub, peer registries,
//! modelcat's own registry):
//!
//! - [`Source::fetch`] returns `None` when nothing changed since the state it is given, or a **complete
//!   snapshot**: every record id the source offers right now, each with a [`RecordOutcome`]. Ids missing from the snapshot are deletions. [`RecordOutcome::Unchanged`]
//!   lets an incremental source (the Hub) skip refetching while deletions are still detected, and
//!   [`RecordOutcome::Failed`] reports a per-record failure without dropping the last good copy.
//! - A fetch that fails as a whole returns [`SourceError`]; the caller keeps the last good records and
//!   shows the error on the source's [`SourceStatus`]. A fetch never deletes mirrored data by failing.
//! - Fetching is idempotent and side-effect free apart from the returned [`SyncState`], which the caller
//!   persists and hands back on the next fetch.
//! - [`NameFilter`] applies Kubeflow's `includedModels` / `excludedModels` semantics.
//!
//! Also here: [`config`], the sources file (Kubeflow's `sources.yaml`, layered and strict), and
//! [`YamlSource`], the YAML catalog provider, [`hf`], the Hub source's settings and record mapping, and
//! [`peer`], the peer source's settings and the origin chain peer records carry, and [`mcp`], MCP server
//! catalogs.
//!
//! This crate knows nothing about HTTP servers, SQL or the search index.

pub mod config;
pub mod hf;
pub mod mcp;
mod name_filter;
pub mod peer;
mod record;
mod yaml;

use std::collections::BTreeMap;
use std::fmt;

pub use name_filter::{NameFilter, PatternError};
pub use record::{ArtifactCommon, ArtifactKind, ArtifactRecord, MetadataValue, ModelRecord};
pub use yaml::{YamlSource, parse_catalog, record_from_api};

/// The id of a configured source (`id` in the sources file).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceId(String);

impl SourceId {
    /// Parses a source id: non-empty, at most 128 characters, no whitespace or `:` (it prefixes record keys).
    pub fn parse(text: &str) -> Result<SourceId, SourceError> {
        let valid = !text.is_empty() && text.len() <= 128 && !text.chars().any(|c| c.is_whitespace() || c == ':');
        if valid { Ok(SourceId(text.to_owned())) } else { Err(SourceError::InvalidId(text.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// What a source remembers between fetches (cursors, per-record `sha`/`lastModified`, file hashes).
pub type SyncState = BTreeMap<String, String>;

/// The outcome of one record in a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordOutcome {
    /// New or changed content.
    Changed(Box<ModelRecord>),
    /// Same content as the previous fetch; the caller keeps what it has.
    Unchanged,
    /// This record could not be fetched; the caller keeps the last good copy.
    Failed(String),
}

/// A complete snapshot of a source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceSnapshot {
    /// Every record the source offers, by model name.
    pub records: BTreeMap<String, RecordOutcome>,
    /// State to hand back to the next fetch.
    pub state: SyncState,
    /// Set when the source could not refresh everything (an upstream listing failed, say) and serves its
    /// last good copy of the rest.
    pub problem: Option<String>,
}

impl SourceSnapshot {
    /// The status this snapshot earns: some failures make a source partially available, all an error.
    pub fn status(&self) -> SourceStatus {
        let failed = self.records.values().filter(|outcome| matches!(outcome, RecordOutcome::Failed(_))).count();
        match failed {
            _ if failed == self.records.len() && (failed > 0 || self.problem.is_some()) => SourceStatus::Error,
            0 if self.problem.is_none() => SourceStatus::Available,
            _ => SourceStatus::PartiallyAvailable,
        }
    }
}

/// A source's health as the catalog API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceStatus {
    Available,
    PartiallyAvailable,
    Error,
    Disabled,
}

impl SourceStatus {
    /// The Kubeflow wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceStatus::Available => "available",
            SourceStatus::PartiallyAvailable => "partially-available",
            SourceStatus::Error => "error",
            SourceStatus::Disabled => "disabled",
        }
    }
}

/// A provider of model records; see the crate docs for the contract.
#[async_trait::async_trait]
pub trait Source: fmt::Debug + Send + Sync + 'static {
    fn id(&self) -> &SourceId;

    /// Fetches a complete snapshot, given the state the previous fetch returned; `None` means nothing
    /// changed since that fetch.
    async fn fetch(&self, previous: &SyncState) -> Result<Option<SourceSnapshot>, SourceError>;

    /// The state to hand the first fetch when the index already holds records of this source (their
    /// content hashes by name): a source whose state is derived from content hashes skips re-reading
    /// what the index holds. The default starts from nothing.
    fn resume_state(&self, _indexed: &std::collections::HashMap<String, u64>) -> SyncState {
        SyncState::new()
    }

    /// Where a syncing source (one that mirrors a remote into the store) stands; `None` for sources
    /// that do not sync.
    fn sync_status(&self) -> Option<SyncStatus> {
        None
    }
}

/// A syncing source's progress, so a caller can tell "empty" from "not synced yet".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStatus {
    /// A sync is running now.
    pub syncing: bool,
    /// A sync has finished at least once (until then the source's records are incomplete).
    pub first_sync_done: bool,
    /// Of the running sync, as far as this replica knows (the replica running it knows): candidates
    /// listed, repos done (fetched, unchanged or failed), failures.
    pub listed: usize,
    pub done: usize,
    pub failed: usize,
    /// When the running sync started and the last one finished, and when one last finished without a
    /// problem (ms since the epoch).
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub last_success_at: Option<i64>,
    /// The last finished sync's one-line summary.
    pub summary: Option<String>,
}

/// Why a source or its configuration failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    #[error("invalid source id {0:?}: use 1-128 characters without whitespace or ':'")]
    InvalidId(String),
    #[error(transparent)]
    Pattern(#[from] PatternError),
    #[error("{0}")]
    Fetch(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated() {
        assert_eq!(SourceId::parse("hf_models").map(|id| id.to_string()), Ok("hf_models".to_owned()));
        assert!(SourceId::parse("").is_err());
        assert!(SourceId::parse("a:b").is_err());
        assert!(SourceId::parse("a b").is_err());
    }

    #[test]
    fn status_follows_failures() {
        let mut snapshot = SourceSnapshot::default();
        snapshot.records.insert("a".into(), RecordOutcome::Unchanged);
        assert_eq!(snapshot.status(), SourceStatus::Available);
        snapshot.records.insert("b".into(), RecordOutcome::Failed("timeout".into()));
        assert_eq!(snapshot.status(), SourceStatus::PartiallyAvailable);
        snapshot.records.remove("a");
        assert_eq!(snapshot.status().as_str(), "error");
        let mut stale = SourceSnapshot { problem: Some("listing failed".into()), ..SourceSnapshot::default() };
        assert_eq!(stale.status(), SourceStatus::Error);
        stale.records.insert("a".into(), RecordOutcome::Unchanged);
        assert_eq!(stale.status(), SourceStatus::PartiallyAvailable);
    }
}
