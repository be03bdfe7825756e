//! MCP sources in the reloader. Each enabled source's YAML file is read and parsed on the blocking pool
//! and its servers filtered by `includedServers` / `excludedServers`. A file that cannot be read or
//! parsed keeps the source's last good servers and shows the error; servers left out for problems of
//! their own make the source `partially-available` with those problems as its error. A file whose bytes
//! did not change is not parsed again.
//!
//! A server's times are the ones its catalog gives; without them, the time the reloader first saw it
//! (create) and last saw its content change (update), kept across reloads.
//!
//! After a change the reloader rebuilds one [`McpServers`] snapshot, published with the view.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use modelcat_sources::config::{SourceConfig, SourceKind};
use modelcat_sources::mcp::{McpServer, parse_mcp_catalog};
use modelcat_sources::{NameFilter, SourceStatus};

use super::Reloader;
use crate::catalog::SourceView;
use crate::mcp::{Entry, McpServers};
use crate::store::now_millis;

/// One MCP source's live state.
pub(super) struct McpRuntime {
    config: SourceConfig,
    filter: NameFilter,
    /// Hash of the file bytes last parsed.
    content: Option<u64>,
    servers: BTreeMap<String, Served>,
    status: SourceStatus,
    error: Option<String>,
    last_loaded: Option<i64>,
}

struct Served {
    server: Arc<McpServer>,
    hash: u64,
    create_time: i64,
    update_time: i64,
}

impl McpRuntime {
    fn new(config: SourceConfig, previous: Option<McpRuntime>) -> McpRuntime {
        let (status, error) = match &config.kind {
            _ if !config.enabled => (SourceStatus::Disabled, None),
            Ok(_) => (SourceStatus::Available, None),
            Err(message) => (SourceStatus::Error, Some(message.clone())),
        };
        // First-seen times outlive a config edit of the same source.
        let servers = previous.map(|previous| previous.servers).unwrap_or_default();
        McpRuntime { filter: config.name_filter(), config, content: None, servers, status, error, last_loaded: None }
    }

    pub(super) fn view(&self) -> SourceView {
        SourceView {
            config: self.config.clone(),
            status: self.status,
            error: self.error.clone(),
            models: if self.config.enabled { self.servers.len() } else { 0 },
            last_loaded: self.last_loaded,
            sync: None,
        }
    }

    pub(super) fn yaml_path(&self) -> Option<&Path> {
        match &self.config.kind {
            Ok(SourceKind::Yaml { path }) if self.config.enabled => Some(path),
            _ => None,
        }
    }

    /// Takes a read of the source's file: the bytes' hash and, when they changed, the parse.
    fn absorb(&mut self, read: Result<(u64, Option<modelcat_sources::mcp::McpCatalog>), String>) {
        let (content, catalog) = match read {
            Ok(read) => read,
            Err(error) => {
                tracing::error!(source = %self.config.id, %error, "MCP source failed to load; keeping its last good servers");
                self.status = SourceStatus::Error;
                self.error = Some(error);
                return;
            }
        };
        self.last_loaded = Some(now_millis());
        let Some(catalog) = catalog else { return };
        self.content = Some(content);
        let now = now_millis();
        let mut servers = BTreeMap::new();
        for server in catalog.servers.into_iter().filter(|server| self.filter.allows(&server.name)) {
            let hash = server.content_hash();
            let previous = self.servers.remove(&server.name);
            let create_time = server.create_time.or(previous.as_ref().map(|p| p.create_time)).unwrap_or(now);
            let unchanged = previous.as_ref().filter(|previous| previous.hash == hash);
            let update_time =
                server.update_time.or(unchanged.map(|previous| previous.update_time)).unwrap_or(now).max(create_time);
            servers.insert(server.name.clone(), Served { server: Arc::new(server), hash, create_time, update_time });
        }
        tracing::info!(source = %self.config.id, servers = servers.len(), left_out = catalog.problems.len(), "MCP source loaded");
        self.servers = servers;
        if catalog.problems.is_empty() {
            self.status = SourceStatus::Available;
            self.error = None;
        } else {
            self.status = SourceStatus::PartiallyAvailable;
            self.error = Some(catalog.problems.join("; "));
        }
    }
}

/// Reads and, unless its bytes hash to `unchanged`, parses an MCP catalog file.
fn read(path: &Path, unchanged: Option<u64>) -> Result<(u64, Option<modelcat_sources::mcp::McpCatalog>), String> {
    let bytes = std::fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let hash = xxhash_rust::xxh3::xxh3_64(&bytes);
    if unchanged == Some(hash) {
        return Ok((hash, None));
    }
    let catalog = parse_mcp_catalog(&bytes).map_err(|message| format!("{}: {message}", path.display()))?;
    Ok((hash, Some(catalog)))
}

impl Reloader {
    /// Makes `sources` the MCP sources; returns the ids to (re)load.
    pub(super) fn install_mcp(&mut self, sources: &[SourceConfig]) -> Vec<String> {
        let wanted: HashSet<&str> = sources.iter().map(|source| source.id.as_str()).collect();
        let before = self.mcp.len();
        self.mcp.retain(|id, _| wanted.contains(id.as_str()));
        self.mcp_changed |= self.mcp.len() != before;
        let mut refresh = Vec::new();
        for source in sources {
            let id = source.id.to_string();
            if self.mcp.get(&id).is_some_and(|runtime| runtime.config == *source) {
                continue;
            }
            let runtime = McpRuntime::new(source.clone(), self.mcp.remove(&id));
            self.mcp.insert(id.clone(), runtime);
            refresh.push(id);
        }
        self.mcp_changed |= !refresh.is_empty();
        refresh
    }

    /// Reloads these MCP sources' files.
    pub(super) async fn refresh_mcp(&mut self, ids: Vec<String>) {
        for id in ids {
            let Some(runtime) = self.mcp.get_mut(&id) else { continue };
            let Some(path) = runtime.yaml_path().map(Path::to_path_buf) else { continue };
            let unchanged = runtime.content;
            let read = tokio::task::spawn_blocking(move || read(&path, unchanged))
                .await
                .unwrap_or_else(|error| Err(error.to_string()));
            self.mcp_changed |= !matches!(read, Ok((_, None)));
            runtime.absorb(read);
        }
    }

    /// The servers of every enabled MCP source, rebuilt when one of them changed.
    pub(super) fn mcp_servers(&mut self) -> Arc<McpServers> {
        if std::mem::take(&mut self.mcp_changed) {
            let entries = self.mcp.values().filter(|runtime| runtime.config.enabled).flat_map(|runtime| {
                runtime.servers.values().map(|served| {
                    Entry::new(
                        runtime.config.id.as_str(),
                        served.server.clone(),
                        served.create_time,
                        served.update_time,
                    )
                })
            });
            self.mcp_servers = Arc::new(McpServers::new(entries.collect()));
        }
        self.mcp_servers.clone()
    }
}
