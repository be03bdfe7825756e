//! One search across asset kinds (`GET /api/modelcat/v1/search`): models and MCP servers in one ranked
//! list, with the kinds as a facet. Kubeflow keeps its catalogs apart; a person looking for "postgres"
//! wants the model and the tool server alike.
//!
//! Contract:
//! - `q` searches each kind as its own API does: models by word prefixes (the model catalog's `q`),
//!   servers by substring of name, description or provider (the MCP catalog's). Without `q`, everything.
//! - `kind` (`model`, `mcp_server`; repeated or comma-separated) limits the kinds; `source` the sources.
//! - Order: with `q`, hits whose name contains `q` come first, then the rest; within each group the
//!   kinds interleave, each in its own relevance (models: BM25, which already ranks name matches first;
//!   servers: name). Without `q`, by name. Each page merges the first `offset + pageSize` hits of each
//!   kind, so a model whose name contains `q` but ranks below that window is ordered within a later page.
//! - `facets.kind` counts every match of each kind (for the kinds asked), whatever the page.
//! - Items carry `kind`, `id`, `name`, `source_id`, `description`, `provider` and `url`, the path of the
//!   item in its own API. Paging as elsewhere: `pageSize` (default 20), `nextPageToken`.
//! - The caller's source restrictions hold as in the catalogs. Errors use the modelcat envelope.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use modelcat_index::{SortBy, StoredModel};
use serde_json::{Value as Json, json};

use super::Family;
use super::catalog::Readable;
use super::params::Params;
use crate::app::AppState;
use crate::catalog::OwnedSearch;
use crate::mcp::{Entry, Order, Query};
use crate::pagination;
use crate::registry::{Cursor, CursorValue};

const DEFAULT_PAGE_SIZE: u32 = 20;
const KINDS: [&str; 2] = ["model", "mcp_server"];

fn bad_request(message: impl AsRef<str>) -> Response {
    Family::Modelcat.error(StatusCode::BAD_REQUEST, message.as_ref())
}

/// One hit before rendering.
enum Hit<'a> {
    Model(StoredModel),
    Server(&'a Entry),
}

impl Hit<'_> {
    fn name(&self) -> &str {
        match self {
            Hit::Model(model) => &model.record.name,
            Hit::Server(entry) => &entry.server.name,
        }
    }

    fn render(&self) -> Json {
        match self {
            Hit::Model(model) => json!({
                "kind": "model",
                "id": model.id.to_string(),
                "name": model.record.name,
                "source_id": model.source_id,
                "description": model.record.description,
                "provider": model.record.provider,
                "url": format!("{}/sources/{}/models/{}", super::catalog::BASE_PATH, model.source_id, model.record.name),
            }),
            Hit::Server(entry) => json!({
                "kind": "mcp_server",
                "id": entry.id.to_string(),
                "name": entry.server.name,
                "source_id": entry.source_id,
                "description": entry.server.description,
                "provider": entry.server.provider,
                "url": format!("{}/mcp_servers/{}", super::catalog::mcp::BASE_PATH, entry.id),
            }),
        }
    }
}

pub async fn search(State(state): State<AppState>, readable: Readable, params: Params) -> Response {
    match run(&state, &readable, &params).await {
        Ok(body) => axum::Json(body).into_response(),
        Err(response) => response,
    }
}

async fn run(state: &AppState, readable: &Readable, params: &Params) -> Result<Json, Response> {
    let size = params
        .page_size(DEFAULT_PAGE_SIZE, state.page_limits.max_page_size)
        .map_err(|error| bad_request(error.message))? as usize;
    let q = params.get("q").map(str::trim).filter(|q| !q.is_empty());
    let kinds: Vec<&str> = match params.all("kind") {
        kinds if kinds.is_empty() => KINDS.to_vec(),
        kinds => {
            if let Some(unknown) = kinds.iter().find(|kind| !KINDS.contains(kind)) {
                return Err(bad_request(format!("unknown kind {unknown:?}: use model or mcp_server")));
            }
            kinds
        }
    };
    let wanted: Vec<String> = params.all("source").into_iter().map(str::to_owned).collect();
    let sources: Option<Vec<String>> = match (wanted.is_empty(), readable.sources()) {
        (true, None) => None,
        (true, Some(allowed)) => Some(allowed.to_vec()),
        (false, allowed) => {
            Some(wanted.into_iter().filter(|id| allowed.is_none_or(|allowed| allowed.contains(id))).collect())
        }
    };
    let hash = pagination::query_hash(&params.list_parameters().iter().map(String::as_str).collect::<Vec<_>>());
    let offset = match pagination::decode(params.get("nextPageToken").unwrap_or_default(), &hash)
        .map_err(|error| bad_request(error.to_string()))?
    {
        Some(Cursor { sort_value: CursorValue::Int(offset), .. }) if offset >= 0 => offset as usize,
        Some(_) => return Err(bad_request("invalid nextPageToken")),
        None => 0,
    };
    // Each kind's first `offset + size + 1` hits are enough to merge this page and see if more follow.
    let window = offset + size + 1;

    let (models, model_total) = if kinds.contains(&"model") {
        let search = OwnedSearch {
            q: q.map(str::to_owned),
            sources: sources.clone(),
            sort: Some(if q.is_some() { SortBy::Relevance } else { SortBy::Name }),
            limit: window,
            count: true,
            ..OwnedSearch::default()
        };
        let hits = state.catalog.search(search).await.map_err(|error| match error {
            modelcat_index::IndexError::Query(message) => bad_request(message),
            other => {
                tracing::error!(error = %other, "search failed");
                Family::Modelcat.error(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
            }
        })?;
        (hits.models, hits.total.unwrap_or_default())
    } else {
        (Vec::new(), 0)
    };
    let view = state.catalog.view();
    let (servers, server_total) = if kinds.contains(&"mcp_server") {
        let query = Query { q, sources: sources.as_deref(), order: Order::Name, limit: window, ..Query::default() };
        let page = view.mcp.search(&query).map_err(|error| bad_request(error.to_string()))?;
        (page.servers, page.total)
    } else {
        (Vec::new(), 0)
    };

    // With `q`: name matches first, then each kind's own rank, interleaved. Without: by name. The sort
    // is stable, so at equal keys models (listed first) stay ahead.
    let needle = q.map(str::to_lowercase);
    let mut hits: Vec<(usize, Hit<'_>)> = models.into_iter().map(Hit::Model).enumerate().collect();
    hits.extend(servers.into_iter().map(Hit::Server).enumerate());
    hits.sort_by_cached_key(|(rank, hit)| {
        let name = hit.name().to_lowercase();
        match &needle {
            Some(needle) => (!name.contains(needle.as_str()), String::new(), *rank),
            None => (false, name, *rank),
        }
    });
    let total = model_total + server_total;
    let items: Vec<Json> = hits.iter().skip(offset).take(size).map(|(_, hit)| hit.render()).collect();
    let more = offset + items.len() < total;
    let next = (more && !items.is_empty())
        .then(|| {
            pagination::encode(&Cursor { sort_value: CursorValue::Int((offset + items.len()) as i64), id: 0 }, &hash)
        })
        .unwrap_or_default();
    let mut counts = serde_json::Map::new();
    for kind in &kinds {
        let count = if *kind == "model" { model_total } else { server_total };
        counts.insert((*kind).to_owned(), json!(count));
    }
    Ok(json!({
        "items": items,
        "size": items.len(),
        "pageSize": size,
        "nextPageToken": next,
        "total": total,
        "facets": {"kind": counts},
    }))
}
