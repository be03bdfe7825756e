//! The Kubeflow Model Catalog API (`/api/model_catalog/v1alpha1`), read-only except `sources/preview`.
//!
//! Kubeflow behaviour kept: default page size 10, `NAME` order by default (case-insensitive, also with
//! `q`), `source`/`sourceLabel` as repeated or comma-separated values (not both), `sourceLabel=null` for
//! unlabelled sources, model names with `/` in the path, 404 for unknown sources and models.
//!
//! Additions: `orderBy=RELEVANCE` ranks `q` by BM25 with name matches first; `facets=license,tasks,…` adds
//! `"facets": {field: {value: count}}` to `/models` for the same query and filters; `filter_options`
//! lists `counts` beside `values`; `GET …/status` shows the sources-config state (files, last rejected
//! edit) and per-source model counts and load times.
//!
//! Page tokens carry an offset bound to the query's parameters; reusing one with other parameters is a 400.
//!
//! A token restricted to named sources ([`Readable`]) sees only those: in `/sources`, `/models` (and its
//! facets), `filter_options`, `/status` and model pages (another source is a 404, as an unknown one).

pub mod mcp;
mod wire;

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use modelcat_index::{IndexError, PropertyOptions, SortBy};
use modelcat_sources::config::{FieldFilter, NamedQueries};
use modelcat_sources::{ArtifactKind, NameFilter};
use serde_json::{Map, Value as Json, json};

use crate::api::error::ApiError;
use crate::api::params::Params;
use crate::app::AppState;
use crate::auth::Identity;
use crate::catalog::artifacts::{self, Artifact, ArtifactOrder};
use crate::catalog::perf::{self, PerfProperties};
use crate::catalog::{OwnedSearch, SourceView};
use crate::filter::{self, Expr};
use crate::pagination;
use crate::registry::{Cursor, CursorValue};

pub const BASE_PATH: &str = "/api/model_catalog/v1alpha1";

/// The OpenAPI document of this API as modelcat serves it (`GET …/openapi.yaml`).
pub const OPENAPI: &str = include_str!("openapi.yaml");

/// The `v1` path of the same API (KEP-0004).
pub const V1_BASE_PATH: &str = "/api/model_catalog/v1";

/// The document for the `v1` path.
pub static OPENAPI_V1: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| v1_document(OPENAPI, BASE_PATH, V1_BASE_PATH));

/// A `v1alpha1` document served at its `v1` path: the same, but for its server URL and version.
fn v1_document(document: &str, base: &str, v1_base: &str) -> String {
    document.replacen(&format!("url: {base}\n"), &format!("url: {v1_base}\n"), 1).replacen(
        "version: v1alpha1\n",
        "version: v1\n",
        1,
    )
}

/// Page size of catalog lists without `pageSize` (Kubeflow's).
const DEFAULT_PAGE_SIZE: u32 = 10;

type ApiResult = Result<Response, ApiError>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sources", get(find_sources))
        .route("/sources/preview", post(preview))
        .route("/sources/{source_id}/models/{*rest}", get(model_route))
        .route("/models", get(find_models))
        .route("/models/filter_options", get(filter_options))
        .route("/labels", get(find_labels))
        .route("/status", get(status))
}

impl From<IndexError> for ApiError {
    fn from(error: IndexError) -> Self {
        match error {
            IndexError::Query(message) => ApiError::bad_request(message),
            internal => {
                tracing::error!(error = %internal, "catalog request failed");
                ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
            }
        }
    }
}

/// The page size, offset and query hash of a list request.
struct Paging {
    size: usize,
    offset: usize,
    hash: String,
}

impl Paging {
    /// `scope` names the list (a route and its path parameters), so a token only continues that list.
    fn parse(params: &Params, scope: &str, max: u32) -> Result<Paging, ApiError> {
        let size = params.page_size(DEFAULT_PAGE_SIZE, max)? as usize;
        let parameters = params.list_parameters();
        let parts: Vec<&str> = std::iter::once(scope).chain(parameters.iter().map(String::as_str)).collect();
        let hash = pagination::query_hash(&parts);
        let offset = match pagination::decode(params.get("nextPageToken").unwrap_or_default(), &hash)? {
            Some(Cursor { sort_value: CursorValue::Int(offset), .. }) if offset >= 0 => offset as usize,
            Some(_) => return Err(ApiError::bad_request("invalid nextPageToken")),
            None => 0,
        };
        Ok(Paging { size, offset, hash })
    }

    /// The token of the page after one that served `served` items, when `more` follow.
    fn next(&self, served: usize, more: bool) -> Option<String> {
        let end = self.offset + served;
        (served > 0 && more)
            .then(|| pagination::encode(&Cursor { sort_value: CursorValue::Int(end as i64), id: 0 }, &self.hash))
    }

    /// One page of an in-memory list, as a list body.
    fn page<T>(&self, items: &[T], render: impl Fn(&T) -> Json) -> Map<String, Json> {
        let page: Vec<Json> = items.iter().skip(self.offset).take(self.size).map(render).collect();
        let next = self.next(page.len(), self.offset + page.len() < items.len());
        wire::list(page, self.size, next)
    }
}

fn json(body: impl serde::Serialize) -> Response {
    axum::Json(body).into_response()
}

fn parse_filter(params: &Params) -> Result<Option<Expr>, ApiError> {
    Ok(filter::parse(params.get("filterQuery").unwrap_or_default())?)
}

/// `filterQuery` ANDed with the `namedQuery` it names among `queries` (an unknown one is a 400).
fn query_filter(params: &Params, queries: &NamedQueries) -> Result<Option<Expr>, ApiError> {
    let mut filters: Vec<Expr> = parse_filter(params)?.into_iter().collect();
    if let Some(name) = params.get("namedQuery").filter(|name| !name.is_empty()) {
        filters.push(named_filter(queries, name)?);
    }
    Ok(match filters.len() {
        0 | 1 => filters.pop(),
        _ => Some(Expr::And(filters)),
    })
}

/// A named query as a filter (its conditions ANDed), as upstream renders one into `filterQuery`.
fn named_filter(queries: &NamedQueries, name: &str) -> Result<Expr, ApiError> {
    let fields = queries.get(name).ok_or_else(|| ApiError::bad_request(format!("unknown named query {name:?}")))?;
    let literal = |value: &Json| match value {
        Json::String(text) => Ok(format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))),
        Json::Number(number) => Ok(number.to_string()),
        Json::Bool(flag) => Ok(flag.to_string()),
        other => Err(format!("value {other} is not a string, number or boolean")),
    };
    let condition = |field: &str, filter: &FieldFilter| -> Result<String, String> {
        let property = field.split('.').map(|part| format!("`{part}`")).collect::<Vec<_>>().join(".");
        let value = match (&filter.value, filter.operator.to_uppercase().as_str()) {
            (Json::Array(values), "IN" | "NOT IN") => {
                format!("({})", values.iter().map(literal).collect::<Result<Vec<_>, _>>()?.join(", "))
            }
            (value, _) => literal(value)?,
        };
        Ok(format!("{property} {} {value}", filter.operator))
    };
    let conditions: Result<Vec<String>, String> =
        fields.iter().map(|(field, filter)| condition(field, filter).map(|text| format!("({text})"))).collect();
    let text =
        conditions.map_err(|error| ApiError::bad_request(format!("named query {name:?}: {error}")))?.join(" AND ");
    match filter::parse(&text) {
        Ok(Some(expr)) => Ok(expr),
        Ok(None) => Err(ApiError::bad_request(format!("named query {name:?} has no conditions"))),
        Err(error) => Err(ApiError::bad_request(format!("named query {name:?}: {error}"))),
    }
}

/// The catalog sources the caller may read (a token's restriction), `None` for all.
pub struct Readable(Option<Vec<String>>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Readable {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Readable, Self::Rejection> {
        Ok(Readable(parts.extensions.get::<Identity>().and_then(|identity| identity.sources.clone())))
    }
}

impl Readable {
    /// The sources a restricted token may read; `None` for all.
    pub fn sources(&self) -> Option<&[String]> {
        self.0.as_deref()
    }

    fn allows(&self, source_id: &str) -> bool {
        self.0.as_ref().is_none_or(|sources| sources.iter().any(|allowed| allowed == source_id))
    }
}

async fn find_sources(State(state): State<AppState>, readable: Readable, params: Params) -> ApiResult {
    let view = state.catalog.view();
    let paging = Paging::parse(&params, "sources", state.page_limits.max_page_size)?;
    let name = params.get("name").unwrap_or_default().to_lowercase();
    // As upstream: MCP sources under `mcp_servers`, none for an asset type that does not exist.
    let (listed, asset_type): (&[SourceView], _) = match params.get("assetType").unwrap_or_default() {
        "" | "models" => (&view.sources, "models"),
        "mcp_servers" => (&view.mcp_sources, "mcp_servers"),
        _ => (&[], ""),
    };
    let mut sources: Vec<_> = listed
        .iter()
        .filter(|source| source.config.name.to_lowercase().contains(&name))
        .filter(|source| readable.allows(source.config.id.as_str()))
        .collect();
    let descending = params.descending()?;
    match params.get("orderBy").filter(|order| !order.is_empty()) {
        None => {}
        Some("ID") => sources.sort_by(|a, b| a.config.id.cmp(&b.config.id)),
        Some("NAME") => sources.sort_by_key(|source| source.config.name.to_lowercase()),
        Some(other) => return Err(ApiError::bad_request(format!("invalid orderBy {other:?}: use ID or NAME"))),
    }
    if descending {
        sources.reverse();
    }
    Ok(json(paging.page(&sources, |source| wire::source(source, asset_type))))
}

/// The enabled sources a `/models` request selects, among those the caller may read; `None` for all of
/// them (the index holds no others: disabled and removed sources are deleted from it).
fn selected_sources(
    sources: &[SourceView],
    params: &Params,
    readable: &Readable,
) -> Result<Option<Vec<String>>, ApiError> {
    let wanted = params.all("source");
    let labels = params.all("sourceLabel");
    if !wanted.is_empty() && !labels.is_empty() {
        return Err(ApiError::bad_request("give source or sourceLabel, not both"));
    }
    if wanted.is_empty() && labels.is_empty() && readable.0.is_none() {
        return Ok(None);
    }
    let enabled = sources.iter().filter(|source| source.config.enabled && readable.allows(source.config.id.as_str()));
    let selected = enabled.filter(|source| {
        if wanted.is_empty() && labels.is_empty() {
            true
        } else if !wanted.is_empty() {
            wanted.contains(&source.config.id.as_str())
        } else {
            labels.iter().any(|label| match *label {
                "null" => source.config.labels.is_empty(),
                label => source.config.labels.iter().any(|own| own == label),
            })
        }
    });
    Ok(Some(selected.map(|source| source.config.id.to_string()).collect()))
}

/// `orderBy` of `/models` as an index sort.
fn model_order(params: &Params, descending: bool) -> Result<SortBy, ApiError> {
    if params.get("recommendations").is_some_and(|flag| flag == "true") {
        let default = PerfProperties::default().latency;
        let latency = params.get("latencyProperty").filter(|name| !name.is_empty()).unwrap_or(&default);
        return Ok(SortBy::Number(modelcat_index::schema::value_path("an", latency)));
    }
    let spread = |name: &str| modelcat_index::schema::value_path(if descending { "ax" } else { "an" }, name);
    Ok(match params.get("orderBy").filter(|order| !order.is_empty()).unwrap_or("NAME") {
        "NAME" => SortBy::Name,
        "CREATE_TIME" => SortBy::CreateTime,
        "LAST_UPDATE_TIME" => SortBy::UpdateTime,
        "ID" => SortBy::Id,
        "RELEVANCE" => SortBy::Relevance,
        "ACCURACY" => SortBy::Number(spread("overall_average")),
        other => {
            let invalid = || {
                ApiError::bad_request(format!(
                    "invalid orderBy {other:?}: use NAME, CREATE_TIME, LAST_UPDATE_TIME, ID, ACCURACY, RELEVANCE, \
                     <property>.<double_value|int_value> or artifacts.<property>.<double_value|int_value>"
                ))
            };
            let (path, suffix) = other.rsplit_once('.').ok_or_else(invalid)?;
            let (artifact, name) = match path.strip_prefix("artifacts.") {
                Some(name) => (true, name),
                None => (false, path),
            };
            if name.is_empty() {
                return Err(invalid());
            }
            match (artifact, suffix) {
                (true, "double_value" | "int_value") => SortBy::Number(spread(name)),
                (false, "double_value") => SortBy::Number(modelcat_index::schema::value_path("pd", name)),
                (false, "int_value") => SortBy::Number(modelcat_index::schema::value_path("pi", name)),
                (_, "string_value") => {
                    return Err(ApiError::bad_request(format!(
                        "orderBy {other:?}: sorting by string properties is not supported"
                    )));
                }
                _ => return Err(invalid()),
            }
        }
    })
}

async fn find_models(State(state): State<AppState>, readable: Readable, params: Params) -> ApiResult {
    let view = state.catalog.view();
    let paging = Paging::parse(&params, "models", state.page_limits.max_page_size)?;
    let descending = params.descending()?;
    let search = OwnedSearch {
        q: params.get("q").map(str::trim).filter(|q| !q.is_empty()).map(str::to_owned),
        filter: query_filter(&params, &view.named_queries)?,
        sources: selected_sources(&view.sources, &params, &readable)?,
        sort: Some(model_order(&params, descending)?),
        descending,
        offset: paging.offset,
        limit: paging.size,
        facets: params.all("facets").into_iter().map(str::to_owned).collect(),
        count: false,
    };
    let faceted = !search.facets.is_empty();
    let hits = state.catalog.search(search).await?;
    let items: Vec<Json> = hits.models.iter().map(wire::model).collect();
    let next = paging.next(items.len(), hits.more);
    let mut body = wire::list(items, paging.size, next);
    if faceted {
        let facets = hits.facets.iter().map(|(name, counts)| {
            let counts: Map<String, Json> = counts.iter().map(|(value, count)| (value.clone(), json!(count))).collect();
            (name.clone(), Json::Object(counts))
        });
        body.insert("facets".into(), Json::Object(facets.collect()));
    }
    Ok(json(body))
}

async fn filter_options(State(state): State<AppState>, readable: Readable) -> ApiResult {
    let options = state.catalog.filter_options(readable.0).await?;
    let mut filters = Map::new();
    for (name, option) in options.iter() {
        filters.insert(name.clone(), self::option(option));
    }
    let mut body = Map::new();
    body.insert("filters".into(), Json::Object(filters));
    let view = state.catalog.view();
    if !view.named_queries.is_empty() {
        body.insert("namedQueries".into(), named_queries(&view.named_queries, &options));
    }
    Ok(json(body))
}

/// One `filter_options` entry: string values (with counts) or a numeric range.
fn option(option: &PropertyOptions) -> Json {
    match option {
        PropertyOptions::Strings(values) => json!({
            "type": "string",
            "values": values.iter().map(|(value, _)| value).collect::<Vec<_>>(),
            "counts": values.iter().map(|(value, count)| (value.clone(), json!(count))).collect::<Map<_, _>>(),
        }),
        PropertyOptions::Range { min, max } => json!({"type": "number", "range": {"min": min, "max": max}}),
    }
}

/// Named queries with `"min"` / `"max"` values replaced by that field's range bound.
fn named_queries(queries: &NamedQueries, options: &BTreeMap<String, PropertyOptions>) -> Json {
    let rendered = queries.iter().map(|(name, fields)| {
        let fields = fields.iter().map(|(field, filter)| {
            let value = match (&filter.value, options.get(field)) {
                (Json::String(bound), Some(PropertyOptions::Range { min, .. })) if bound == "min" => json!(min),
                (Json::String(bound), Some(PropertyOptions::Range { max, .. })) if bound == "max" => json!(max),
                (value, _) => value.clone(),
            };
            (field.clone(), json!({"operator": filter.operator, "value": value}))
        });
        (name.clone(), Json::Object(fields.collect()))
    });
    Json::Object(rendered.collect())
}

async fn find_labels(State(state): State<AppState>, params: Params) -> ApiResult {
    let view = state.catalog.view();
    let paging = Paging::parse(&params, "labels", state.page_limits.max_page_size)?;
    let asset = params.get("assetType").filter(|asset| !asset.is_empty());
    if let Some(asset) = asset.filter(|asset| !["models", "mcp_servers"].contains(asset)) {
        return Err(ApiError::bad_request(format!("invalid assetType {asset:?}: use models or mcp_servers")));
    }
    let mut labels: Vec<&Map<String, Json>> = view
        .labels
        .iter()
        .filter(|label| {
            asset.is_none_or(|asset| label.get("assetType").and_then(Json::as_str).unwrap_or("models") == asset)
        })
        .collect();
    if let Some(key) = params.get("orderBy").filter(|key| !key.is_empty()) {
        let descending = params.descending()?;
        // Labels with the key first, by value; the rest keep their order.
        labels.sort_by(|a, b| match (a.get(key).and_then(Json::as_str), b.get(key).and_then(Json::as_str)) {
            (Some(x), Some(y)) if descending => y.cmp(x),
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
    }
    Ok(json(paging.page(&labels, |label| Json::Object((*label).clone()))))
}

pub(crate) async fn status(State(state): State<AppState>, readable: Readable) -> ApiResult {
    let view = state.catalog.view();
    let statuses = |sources: &[SourceView], count: &str| -> Vec<Json> {
        let readable = sources.iter().filter(|source| readable.allows(source.config.id.as_str()));
        readable
            .map(|source| {
                json!({"id": source.config.id.as_str(), "status": source.status.as_str(), "error": source.error,
                       count: source.models, "lastLoadedSinceEpoch": source.last_loaded.map(|time| time.to_string()),
                       "sync": source.sync.as_ref().map(wire::sync_status)})
            })
            .collect()
    };
    let follow = state.replica.follow_state();
    let auth = state.authenticator.settings();
    let leases: Vec<Json> = state
        .replica
        .leases()
        .iter()
        .map(|lease| json!({"name": lease.name, "fence": lease.fence, "expiresAtSinceEpoch": lease.expires_at.to_string()}))
        .collect();
    let replica = json!({
        "id": state.replica.id(),
        "instance": state.replica.instance(),
        "position": follow.position,
        "head": follow.head,
        "lag": follow.head - follow.position,
        "caughtUp": follow.caught_up,
        "resumedFromCheckpoint": follow.resumed,
        "rebuilds": follow.rebuilds,
        "error": follow.error,
        "leases": leases,
    });
    Ok(json(json!({
        "configFiles": view.config_files,
        "configError": view.config_error,
        "sources": statuses(&view.sources, "models"),
        "mcpSources": statuses(&view.mcp_sources, "servers"),
        "replica": replica,
        "load": state.catalog.progress().figures(),
        "auth": {"methods": auth.method_names(), "warning": auth.warning()},
    })))
}

/// `GET /sources/{id}/models/{name}`, `…/{name}/artifacts` and `…/{name}/artifacts/performance`.
async fn model_route(
    State(state): State<AppState>,
    readable: Readable,
    Path((source_id, rest)): Path<(String, String)>,
    params: Params,
) -> ApiResult {
    let (name, tail) = if let Some(name) = rest.strip_suffix("/artifacts/performance") {
        (name, Tail::Performance)
    } else if let Some(name) = rest.strip_suffix("/artifacts") {
        (name, Tail::Artifacts)
    } else {
        (rest.as_str(), Tail::Model)
    };
    let view = state.catalog.view();
    let readable = readable.allows(&source_id);
    if !readable || !view.sources.iter().any(|source| source.config.id.as_str() == source_id && source.config.enabled) {
        return Err(ApiError::not_found(format!("source {source_id} not found")));
    }
    let Some(model) = state.catalog.model(&source_id, name).await? else {
        return Err(ApiError::not_found(format!("model {name} not found in source {source_id}")));
    };
    if tail == Tail::Model {
        return Ok(json(wire::model(&model)));
    }
    let key = format!("{source_id}:{name}");
    let mut artifacts = artifacts::with_ids(&key, &model.record.artifacts);
    let types = [params.all("artifactType"), params.all("artifact_type")].concat();
    for kind in &types {
        if !matches!(*kind, "model-artifact" | "metrics-artifact") {
            return Err(ApiError::bad_request(format!(
                "invalid artifactType {kind:?}: use model-artifact or metrics-artifact"
            )));
        }
    }
    if !types.is_empty() {
        artifacts.retain(|artifact| types.contains(&artifact.record.kind.wire_type()));
    }
    if tail == Tail::Performance {
        artifacts = performance(artifacts, &params)?;
    }
    if let Some(expr) = parse_filter(&params)? {
        artifacts.retain(|artifact| artifacts::matches(artifact, &expr));
    }
    let order =
        ArtifactOrder::parse(params.get("orderBy").filter(|order| !order.is_empty())).map_err(ApiError::bad_request)?;
    artifacts::sort(&mut artifacts, &order, params.descending()?);
    let paging = Paging::parse(&params, &format!("{source_id}:{rest}"), state.page_limits.max_page_size)?;
    Ok(json(paging.page(&artifacts, wire::artifact)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tail {
    Model,
    Artifacts,
    Performance,
}

/// Performance artifacts, sized for `targetRPS` and reduced to `recommendations` when asked.
fn performance(artifacts: Vec<Artifact>, params: &Params) -> Result<Vec<Artifact>, ApiError> {
    let mut names = PerfProperties::default();
    let overrides = [
        ("latencyProperty", &mut names.latency),
        ("rpsProperty", &mut names.rps),
        ("hardwareCountProperty", &mut names.hardware_count),
        ("hardwareTypeProperty", &mut names.hardware_type),
    ];
    for (key, name) in overrides {
        if let Some(value) = params.get(key).filter(|value| !value.is_empty()) {
            *name = value.to_owned();
        }
    }
    let mut artifacts: Vec<Artifact> = artifacts
        .into_iter()
        .filter(|artifact| matches!(&artifact.record.kind, ArtifactKind::Metrics { metrics_type } if metrics_type == "performance-metrics"))
        .collect();
    if let Some(text) = params.get("targetRPS").filter(|text| !text.is_empty()) {
        let target: i32 = text.parse().ok().filter(|target| *target > 0).ok_or_else(|| {
            ApiError::bad_request(format!("invalid targetRPS {text:?}: expected a positive 32-bit integer"))
        })?;
        for artifact in &mut artifacts {
            perf::size_for(&mut artifact.record.common.properties, &names, target);
        }
    }
    match params.get("recommendations") {
        None | Some("" | "false") => Ok(artifacts),
        Some("true") => {
            let properties: Vec<_> = artifacts.iter().map(|artifact| &artifact.record.common.properties).collect();
            let keep = perf::recommend(&properties, &names);
            Ok(keep.into_iter().map(|position| artifacts[position].clone()).collect())
        }
        Some(other) => Err(ApiError::bad_request(format!("invalid recommendations {other:?}: use true or false"))),
    }
}

/// A source definition to preview (the `config` part).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PreviewConfig {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    included_models: Vec<String>,
    #[serde(default)]
    excluded_models: Vec<String>,
    #[serde(default)]
    properties: BTreeMap<String, Json>,
    #[allow(dead_code, reason = "accepted so a sources entry can be pasted as is")]
    id: Option<String>,
    #[allow(dead_code, reason = "accepted so a sources entry can be pasted as is")]
    name: Option<String>,
    #[allow(dead_code, reason = "accepted so a sources entry can be pasted as is")]
    enabled: Option<bool>,
    #[allow(dead_code, reason = "accepted so a sources entry can be pasted as is")]
    labels: Option<Vec<String>>,
}

async fn preview(
    State(state): State<AppState>,
    params: Params,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult {
    // A body that is not a multipart form is refused in this API's envelope, not as axum's plain text.
    let mut multipart = multipart
        .map_err(|rejection| ApiError::new(rejection.status(), format!("invalid form: {}", rejection.body_text())))?;
    let unprocessable = |message: String| ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, message);
    let mut config = None;
    let mut data = None;
    while let Some(field) = multipart.next_field().await.map_err(|error| ApiError::bad_request(error.to_string()))? {
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = field.bytes().await.map_err(|error| ApiError::bad_request(error.to_string()))?;
        match name.as_str() {
            "config" => config = Some(bytes),
            "catalogData" => data = Some(bytes),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unexpected form field {other:?}: use config and catalogData"
                )));
            }
        }
    }
    let config = config.ok_or_else(|| ApiError::bad_request("the config form field is required"))?;
    let config: PreviewConfig =
        serde_norway::from_slice(&config).map_err(|error| unprocessable(format!("invalid config: {error}")))?;
    if config.kind != "yaml" {
        return Err(unprocessable(format!("preview supports yaml sources, not {:?}", config.kind)));
    }
    let filter = NameFilter::new(&config.included_models, &config.excluded_models)
        .map_err(|error| unprocessable(error.to_string()))?;
    let data = match data {
        Some(data) => data.to_vec(),
        None => {
            let Some(Json::String(path)) = config.properties.get("yamlCatalogPath") else {
                return Err(unprocessable("give catalogData or properties.yamlCatalogPath".into()));
            };
            let base = state
                .catalog
                .view()
                .config_files
                .first()
                .and_then(|file| file.parent().map(std::path::Path::to_path_buf));
            let path = base.unwrap_or_default().join(path);
            tokio::fs::read(&path)
                .await
                .map_err(|error| unprocessable(format!("cannot read {}: {error}", path.display())))?
        }
    };
    let records = modelcat_sources::parse_catalog(&data)
        .map_err(|error| unprocessable(format!("invalid catalogData: {error}")))?;
    let all: Vec<(String, bool)> = records
        .into_iter()
        .map(|record| {
            let included = filter.allows(&record.name);
            (record.name, included)
        })
        .collect();
    let included = all.iter().filter(|(_, included)| *included).count();
    let shown: Vec<&(String, bool)> =
        match params.get("filterStatus").filter(|status| !status.is_empty()).unwrap_or("all") {
            "all" => all.iter().collect(),
            "included" => all.iter().filter(|(_, included)| *included).collect(),
            "excluded" => all.iter().filter(|(_, included)| !*included).collect(),
            other => {
                return Err(ApiError::bad_request(format!(
                    "invalid filterStatus {other:?}: use all, included or excluded"
                )));
            }
        };
    let paging = Paging::parse(&params, "preview", state.page_limits.max_page_size)?;
    let mut body = paging.page(&shown, |(name, included)| json!({"name": name, "included": included}));
    body.insert(
        "summary".into(),
        json!({"totalModels": all.len(), "includedModels": included, "excludedModels": all.len() - included}),
    );
    Ok(json(body))
}
