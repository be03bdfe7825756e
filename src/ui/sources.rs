//! `/ui/sources`: every source's status, size, last load or sync, errors and Hub sync progress; the
//! sources file's state. `/ui/mirror`: the Hub mirror's sources, what they take from the Hub and how
//! their last sync went. Both refresh themselves every few seconds (htmx, or a meta refresh without
//! JavaScript).

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use modelcat_sources::config::SourceKind;

use super::{Readable, UiError, format};
use crate::app::AppState;
use crate::catalog::SourceView;

struct Row {
    name: String,
    id: String,
    kind: &'static str,
    asset: &'static str,
    status: &'static str,
    count: usize,
    loaded: String,
    error: String,
    href: String,
    sync: Option<Sync>,
    /// The include and exclude patterns (what a mirror takes).
    included: String,
    excluded: String,
}

struct Sync {
    syncing: bool,
    done: usize,
    listed: usize,
    failed: usize,
    last_success: String,
    finished: String,
    summary: String,
}

struct Overview {
    rows: Vec<Row>,
    files: Vec<String>,
    config_error: String,
}

#[derive(Template)]
#[template(path = "sources.html")]
struct SourcesPage<'a> {
    frame: super::frame::Frame,
    overview: &'a Overview,
}

#[derive(Template)]
#[template(path = "sources_list.html")]
struct SourcesList<'a> {
    overview: &'a Overview,
}

#[derive(Template)]
#[template(path = "mirror.html")]
struct MirrorPage<'a> {
    frame: super::frame::Frame,
    overview: &'a Overview,
}

#[derive(Template)]
#[template(path = "mirror_list.html")]
struct MirrorList<'a> {
    overview: &'a Overview,
}

/// `GET /ui/mirror`: the Hugging Face sources only.
pub async fn mirror(
    State(state): State<AppState>,
    readable: Readable,
    headers: HeaderMap,
) -> Result<Response, UiError> {
    let view = state.catalog.view();
    let rows = view
        .sources
        .iter()
        .filter(|source| matches!(source.config.kind, Ok(SourceKind::Hf(_))))
        .filter(|source| {
            readable.sources().is_none_or(|allowed| allowed.iter().any(|id| id == source.config.id.as_str()))
        })
        .map(|source| row(source, "models"))
        .collect();
    let overview = Overview { rows, files: Vec::new(), config_error: String::new() };
    let fragment = super::wants_fragment(&headers);
    Ok(super::page_or_fragment(
        fragment,
        &MirrorPage { frame: Default::default(), overview: &overview },
        &MirrorList { overview: &overview },
    ))
}

/// `GET /ui/sources`.
pub async fn page(State(state): State<AppState>, readable: Readable, headers: HeaderMap) -> Result<Response, UiError> {
    let view = state.catalog.view();
    let allowed = |source: &&SourceView| {
        readable.sources().is_none_or(|allowed| allowed.iter().any(|id| id == source.config.id.as_str()))
    };
    let models = view.sources.iter().filter(allowed).map(|source| row(source, "models"));
    let servers = view.mcp_sources.iter().filter(allowed).map(|source| row(source, "MCP servers"));
    let overview = Overview {
        rows: models.chain(servers).collect(),
        files: view.config_files.iter().map(|file| file.display().to_string()).collect(),
        config_error: view.config_error.clone().unwrap_or_default(),
    };
    let fragment = super::wants_fragment(&headers);
    Ok(super::page_or_fragment(
        fragment,
        &SourcesPage { frame: Default::default(), overview: &overview },
        &SourcesList { overview: &overview },
    ))
}

fn row(source: &SourceView, asset: &'static str) -> Row {
    let config = &source.config;
    let kind = match &config.kind {
        Ok(SourceKind::Yaml { .. }) => "YAML catalog",
        Ok(SourceKind::Hf(_)) => "Hugging Face mirror",
        Ok(SourceKind::Peer(_)) => "peer registry",
        Ok(SourceKind::Registry) => "this registry",
        Err(_) => "invalid",
    };
    let time = |value: Option<i64>| value.map(format::time).unwrap_or_default();
    Row {
        name: config.name.clone(),
        id: config.id.to_string(),
        kind,
        asset,
        status: source.status.as_str(),
        count: source.models,
        loaded: time(source.last_loaded),
        error: source.error.clone().unwrap_or_default(),
        href: format!("/ui?{}", format::query(&[("source".to_owned(), config.id.to_string())])),
        included: config.included_models.join(", "),
        excluded: config.excluded_models.join(", "),
        sync: source.sync.as_ref().map(|sync| Sync {
            syncing: sync.syncing,
            done: sync.done,
            listed: sync.listed,
            failed: sync.failed,
            last_success: time(sync.last_success_at),
            finished: time(sync.finished_at),
            summary: sync.summary.clone().unwrap_or_default(),
        }),
    }
}
