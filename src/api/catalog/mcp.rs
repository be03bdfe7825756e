//! The Kubeflow MCP Catalog API (`/api/mcp_catalog/v1alpha1`, and `v1`): MCP servers and their tools,
//! read-only, from [`crate::mcp`]. It shares the model catalog's envelope, paging, source selection and
//! token restrictions.
//!
//! Kubeflow behaviour kept: `q` (substring of name, description or provider), `name` (SQL `LIKE`),
//! `sourceLabel` (an unknown label is an empty page), `filterQuery`, `namedQuery` (ANDed with
//! `filterQuery`; an unknown one is a 400), `includeTools` with `toolLimit`, ids as decimal strings,
//! `toolCount` on every server, 404 for unknown servers and tools, 400 for a server id that is not a
//! number. Additions: `source` as on `/models`, `counts` beside `values` in `filter_options`, and
//! `filterQuery` / `orderBy=NAME` on a server's tools.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use modelcat_sources::mcp::McpTool;
use serde_json::{Map, Value as Json, json};

use super::{
    ApiResult, Paging, Readable, json as reply, named_queries, parse_filter, query_filter, selected_sources, wire,
};
use crate::api::error::ApiError;
use crate::api::params::Params;
use crate::app::AppState;
use crate::mcp::{Entry, FilterError, Order, Query, filter as mcp_filter};

pub const BASE_PATH: &str = "/api/mcp_catalog/v1alpha1";
/// The `v1` path of the same API (KEP-0004).
pub const V1_BASE_PATH: &str = "/api/mcp_catalog/v1";

/// The OpenAPI document of this API as modelcat serves it.
pub const OPENAPI: &str = include_str!("mcp.openapi.yaml");

/// The document for the `v1` path.
pub static OPENAPI_V1: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| super::v1_document(OPENAPI, BASE_PATH, V1_BASE_PATH));

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/mcp_servers", get(find_servers))
        .route("/mcp_servers/filter_options", get(filter_options))
        .route("/mcp_servers/{server_id}", get(get_server))
        .route("/mcp_servers/{server_id}/tools", get(find_tools))
        .route("/mcp_servers/{server_id}/tools/{tool_name}", get(get_tool))
}

impl From<FilterError> for ApiError {
    fn from(error: FilterError) -> Self {
        ApiError::bad_request(error.to_string())
    }
}

/// `includeTools` and `toolLimit`: how many tools to show per server (`None`: none).
fn shown_tools(params: &Params) -> Result<Option<usize>, ApiError> {
    let include = match params.get("includeTools").unwrap_or_default() {
        "" | "false" => false,
        "true" => true,
        other => return Err(ApiError::bad_request(format!("invalid includeTools {other:?}: use true or false"))),
    };
    let limit = match params.get("toolLimit").filter(|limit| !limit.is_empty()) {
        None => usize::MAX,
        Some(text) => match text.parse::<i64>() {
            Ok(limit) if limit > 0 => limit as usize,
            // Upstream: zero or less means no limit.
            Ok(_) => usize::MAX,
            Err(_) => return Err(ApiError::bad_request(format!("invalid toolLimit {text:?}: not an integer"))),
        },
    };
    Ok(include.then_some(limit))
}

fn tool(tool: &McpTool) -> Json {
    serde_json::to_value(tool).unwrap_or_default()
}

/// An MCP server on the wire: its catalog fields, `id`, `source_id`, `toolCount`, decimal-string times,
/// custom properties and, when asked, its first `tools`.
fn server(entry: &Entry, tools: Option<usize>) -> Json {
    let server = &entry.server;
    let mut object = match serde_json::to_value(&**server) {
        Ok(Json::Object(object)) => object,
        _ => Map::new(),
    };
    object.insert("id".into(), json!(entry.id.to_string()));
    object.insert("source_id".into(), json!(entry.source_id));
    object.insert("toolCount".into(), json!(server.tools.len()));
    object.insert("createTimeSinceEpoch".into(), json!(entry.create_time.to_string()));
    object.insert("lastUpdateTimeSinceEpoch".into(), json!(entry.update_time.to_string()));
    object.insert("customProperties".into(), wire::properties(&server.custom_properties));
    if let Some(limit) = tools {
        object.insert("tools".into(), Json::Array(server.tools.iter().take(limit).map(tool).collect()));
    }
    Json::Object(object)
}

async fn find_servers(State(state): State<AppState>, readable: Readable, params: Params) -> ApiResult {
    let view = state.catalog.view();
    let paging = Paging::parse(&params, "mcp_servers", state.page_limits.max_page_size)?;
    let tools = shown_tools(&params)?;
    let order = Order::parse(params.get("orderBy").unwrap_or_default()).map_err(ApiError::bad_request)?;
    let filter = query_filter(&params, &view.mcp_named_queries)?;
    let sources = selected_sources(&view.mcp_sources, &params, &readable)?;
    let query = Query {
        q: params.get("q").map(str::trim).filter(|q| !q.is_empty()),
        name: params.get("name").filter(|name| !name.is_empty()),
        sources: sources.as_deref(),
        filter: filter.as_ref(),
        order,
        descending: params.descending()?,
        offset: paging.offset,
        limit: paging.size,
    };
    let page = view.mcp.search(&query)?;
    let items: Vec<Json> = page.servers.iter().map(|entry| server(entry, tools)).collect();
    let next = paging.next(items.len(), page.more);
    Ok(reply(wire::list(items, paging.size, next)))
}

/// The server `id` names, if the caller may read its source. An id that is not a number is a 400, as
/// upstream.
fn readable_server<'a>(
    servers: &'a crate::mcp::McpServers,
    readable: &Readable,
    id: &str,
) -> Result<&'a Entry, ApiError> {
    if id.is_empty() || !id.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(ApiError::bad_request(format!("invalid server ID {id:?}: ids are decimal numbers")));
    }
    servers
        .get(id)
        .filter(|entry| readable.allows(&entry.source_id))
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("MCP server {id} not found")))
}

async fn get_server(
    State(state): State<AppState>,
    readable: Readable,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult {
    let view = state.catalog.view();
    let entry = readable_server(&view.mcp, &readable, &id)?;
    Ok(reply(server(entry, shown_tools(&params)?)))
}

async fn find_tools(
    State(state): State<AppState>,
    readable: Readable,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult {
    let view = state.catalog.view();
    let entry = readable_server(&view.mcp, &readable, &id)?;
    let paging = Paging::parse(&params, &format!("tools:{id}"), state.page_limits.max_page_size)?;
    let filter = parse_filter(&params)?;
    let mut tools = Vec::with_capacity(entry.server.tools.len());
    for candidate in &entry.server.tools {
        if filter.as_ref().map(|expr| mcp_filter::tool_matches(expr, candidate)).transpose()?.unwrap_or(true) {
            tools.push(candidate);
        }
    }
    match params.get("orderBy").unwrap_or_default() {
        // The catalog's order, as upstream's insertion order.
        "" | "ID" => {}
        "NAME" => tools.sort_by(|a, b| a.name.cmp(&b.name)),
        other => return Err(ApiError::bad_request(format!("invalid orderBy {other:?}: use ID or NAME"))),
    }
    if params.descending()? {
        tools.reverse();
    }
    Ok(reply(paging.page(&tools, |candidate| tool(candidate))))
}

async fn get_tool(
    State(state): State<AppState>,
    readable: Readable,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult {
    let view = state.catalog.view();
    let entry = readable_server(&view.mcp, &readable, &id)?;
    let found = entry.server.tools.iter().find(|candidate| candidate.name == name);
    let found = found
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("tool {name:?} not found on MCP server {id}")))?;
    Ok(reply(json!({"serverId": entry.id.to_string(), "serverName": entry.server.name, "tool": tool(found)})))
}

async fn filter_options(State(state): State<AppState>, readable: Readable) -> ApiResult {
    let view = state.catalog.view();
    // A token restricted to some sources sees the options of those sources' servers only.
    let restricted;
    let options = match &readable.0 {
        None => view.mcp.filter_options(),
        Some(_) => {
            restricted =
                crate::mcp::options(view.mcp.entries().iter().filter(|entry| readable.allows(&entry.source_id)));
            &restricted
        }
    };
    let mut filters = Map::new();
    for (name, option) in options {
        filters.insert(name.clone(), super::option(option));
    }
    let mut body = Map::new();
    body.insert("filters".into(), Json::Object(filters));
    if !view.mcp_named_queries.is_empty() {
        body.insert("namedQueries".into(), named_queries(&view.mcp_named_queries, options));
    }
    Ok(reply(body))
}
