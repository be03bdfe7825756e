//! The Hugging Face Hub-compatible metadata API over the mirror (`hf-compat.md`), so `huggingface_hub`,
//! `hf-hub` and friends work against modelcat with `HF_ENDPOINT`.
//!
//! - `GET /api/models`: search the listing (`search`, `author`, ANDed `filter` tags, `pipeline_tag`,
//!   `gated`, `sort`, `direction`, `limit`, `full`, `cardData`, `config`, `expand`/`expand[]`), with an
//!   absolute `Link: <…>; rel="next"` that repeats the query and carries a keyset cursor bound to it.
//!   Old clients' spellings (`True`, `expand[]`, `language`/`library`/`tags`/`task`, `model_name`) are
//!   accepted; unknown parameters are ignored, unknown `expand` values are a 400.
//! - `GET /api/models/{id}[/revision/{rev}]`, `…/tree/{rev}[/{path}]`, `…/refs`, `POST …/paths-info/{rev}`:
//!   the stored documents. Paths are split on their raw (still percent-encoded) segments, so
//!   `refs%2Fpr%2F1` is one revision and `sub%2Fdir` one path.
//! - `HEAD`/`GET /{id}/resolve/{rev}/{path}`: mirrored files, answered directly (no redirects, no
//!   compression, no Xet headers) with `X-Repo-Commit`, a quoted `ETag`, the exact `Content-Length`,
//!   `Accept-Ranges` and single `Range`s (206/416). Files the repo lists but the mirror holds no content
//!   for still answer `HEAD`; their `GET` is an `EntryNotFound` that says so. Safetensors files are
//!   mirrored as their header only: ranges inside it are served.
//! - Errors use the Hub's envelope ([`wire::HfError`]); unknown `/api/…` paths are a JSON 404 too.

pub mod wire;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value as Json};

use crate::api::params::form_pairs;
use crate::app::AppState;
use crate::mirror::RepoDocs;
use crate::mirror::listing::{Query, SortKey};
use wire::HfError;

/// Largest page of `GET /api/models` (and its default).
const MAX_LIMIT: usize = 1000;

/// The Hub-compatible routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/models", get(list_models))
        .route("/api/models/{*rest}", get(model_route).post(model_route))
        .route("/{name}/resolve/{*rest}", get(resolve))
        .route("/{owner}/{name}/resolve/{*rest}", get(resolve))
}

/// A JSON response with the Hub's content type.
fn json_response(value: &Json) -> Response {
    let body = serde_json::to_vec(value).expect("JSON values serialize");
    ([(header::CONTENT_TYPE, "application/json; charset=utf-8")], body).into_response()
}

/// The 404 for `/api/…` paths no route serves.
pub fn unknown_api_path(path: &str) -> Response {
    HfError::not_found(format!("{path} is not an API route this mirror serves")).into_response()
}

// ---- GET /api/models ----

/// The list parameters as parsed.
struct ListParams {
    query: Query,
    full: bool,
    card: bool,
    config: bool,
    expand: Vec<String>,
    /// Binds cursors to the query that produced them.
    fingerprint: u64,
}

fn flag(value: &str) -> bool {
    matches!(value.to_ascii_lowercase().as_str(), "true" | "1" | "yes")
}

fn parse_list(pairs: &[(String, String)]) -> Result<(ListParams, Option<String>), HfError> {
    let mut query = Query { limit: MAX_LIMIT, ..Query::default() };
    let (mut full, mut card, mut config) = (false, false, false);
    let expand = wire::expand_values(pairs)?;
    let mut cursor = None;
    let mut bound = Vec::new();
    for (key, value) in pairs {
        match key.as_str() {
            "search" | "model_name" if !value.is_empty() => query.search = Some(value.to_lowercase()),
            "author" if !value.is_empty() => query.author = Some(value.to_lowercase()),
            "filter" | "language" | "library" | "tags" | "task" => {
                query.tags.extend(value.split(',').filter(|tag| !tag.is_empty()).map(str::to_owned))
            }
            "pipeline_tag" if !value.is_empty() => query.pipeline_tag = Some(value.clone()),
            "gated" => query.gated = Some(flag(value)),
            "sort" if !value.is_empty() => {
                query.sort = Some(SortKey::parse(value).ok_or_else(|| {
                    HfError::bad_request(format!(
                        "invalid sort {value:?}: expected downloads, likes, lastModified, createdAt or trendingScore"
                    ))
                })?)
            }
            "direction" => query.ascending = value != "-1",
            "limit" => {
                let limit: usize = value.parse().map_err(|_| {
                    HfError::bad_request(format!("invalid limit {value:?}: expected a positive integer"))
                })?;
                query.limit = limit.clamp(1, MAX_LIMIT);
            }
            "full" => full = flag(value),
            "cardData" => card = flag(value),
            "config" => config = flag(value),
            "cursor" => cursor = Some(value.clone()),
            _ => {}
        }
        if !matches!(key.as_str(), "cursor" | "limit") {
            bound.push(format!("{key}={value}"));
        }
    }
    bound.sort_unstable();
    let fingerprint = xxhash_rust::xxh3::xxh3_64(bound.join("&").as_bytes());
    Ok((ListParams { query, full, card, config, expand, fingerprint }, cursor))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Cursor {
    /// Sort value and id of the last item served.
    v: f64,
    id: String,
    /// The query fingerprint.
    q: u64,
}

/// Decodes a listing cursor bound to the query `fingerprint`: the sort value and id to continue after.
pub fn decode_cursor(text: &str, fingerprint: u64) -> Result<(f64, String), HfError> {
    let invalid = || HfError::bad_request("invalid cursor: use the Link header of the previous page as it is");
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if cursor.q != fingerprint {
        return Err(HfError::bad_request("invalid cursor: it belongs to a list with other parameters"));
    }
    Ok((cursor.v, cursor.id))
}

async fn list_models(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Result<Response, HfError> {
    let pairs = form_pairs(uri.query().unwrap_or_default());
    let (mut params, cursor) = parse_list(&pairs)?;
    if let Some(cursor) = cursor {
        params.query.after = Some(decode_cursor(&cursor, params.fingerprint)?);
    }
    let listing = state.mirror.listing.clone();
    let query = params.query.clone();
    let (page, more) = if query.search.is_none() && !query.tags.is_empty() {
        // A rare tag may be checked against the whole listing: keep that off the async workers.
        tokio::task::spawn_blocking(move || listing.query(&query)).await.map_err(|error| HfError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: None,
            message: error.to_string(),
            commit: None,
        })?
    } else {
        listing.query(&query)
    };
    let needs_documents = params.full || params.card || params.config || !params.expand.is_empty();
    let documents = if needs_documents {
        let ids: Vec<&str> = page.iter().map(|entry| &*entry.id).collect();
        state.mirror.store.infos(&ids).await?
    } else {
        Default::default()
    };
    let items: Vec<Json> = page
        .iter()
        .map(|entry| {
            let info = documents.get(&*entry.id).and_then(|text| serde_json::from_str::<Map<String, Json>>(text).ok());
            match info {
                Some(info) if !params.expand.is_empty() => wire::expanded(&info, &params.expand),
                Some(info) => wire::list_item(&entry.item, &info, params.full, params.card, params.config),
                None => Json::Object(entry.item.clone()),
            }
        })
        .collect();
    let mut response = json_response(&Json::Array(items));
    if more && let Some(last) = page.last() {
        let sort = params.query.sort.unwrap_or(SortKey::TrendingScore);
        let cursor = Cursor { v: last.key(sort), id: last.id.to_string(), q: params.fingerprint };
        let cursor = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).expect("cursors serialize"));
        let mut next = form_urlencoded::Serializer::new(String::new());
        for (key, value) in pairs.iter().filter(|(key, _)| key != "cursor") {
            next.append_pair(key, value);
        }
        next.append_pair("cursor", &cursor);
        let link = format!("<{}/api/models?{}>; rel=\"next\"", base_url(&state, &headers), next.finish());
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    Ok(response)
}

/// The absolute base URL clients reach this server at: `public_base_url`, else `http://{Host}`.
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(base) = &state.public_base_url {
        return base.clone();
    }
    let host = headers.get(header::HOST).and_then(|host| host.to_str().ok()).unwrap_or("localhost");
    format!("http://{host}")
}

// ---- /api/models/{id}/… ----

/// What follows a repo id under `/api/models/`.
enum SubRoute {
    Info(Option<String>),
    Tree { revision: String, path: String },
    Refs,
    PathsInfo(String),
    Commits,
}

const KEYWORDS: &[&str] = &["revision", "tree", "refs", "commits", "paths-info", "safetensors-metadata"];

/// Splits `rest` (raw, percent-encoded) into a repo id and a sub-route. A two-segment id wins over a
/// keyword when that repo is mirrored (`org/refs` is a model, `gpt2/refs` are refs).
fn split_model_path(state: &AppState, rest: &str) -> Result<(String, SubRoute), HfError> {
    let segments: Vec<String> =
        rest.split('/').map(|segment| percent_decode_str(segment).decode_utf8_lossy().into_owned()).collect();
    let keyword_at = match segments.get(1) {
        Some(second) if KEYWORDS.contains(&second.as_str()) => {
            let two = format!("{}/{second}", segments[0]);
            if segments.len() == 2 && state.mirror.listing.contains(&two) { None } else { Some(1) }
        }
        _ => None,
    };
    let id_len = keyword_at.unwrap_or(segments.len().min(2));
    let repo_id = segments[..id_len].join("/");
    let tail = &segments[id_len..];
    let route = match tail {
        [] => SubRoute::Info(None),
        [keyword, revision] if keyword == "revision" => SubRoute::Info(Some(revision.clone())),
        [keyword, revision, path @ ..] if keyword == "tree" => {
            SubRoute::Tree { revision: revision.clone(), path: path.join("/") }
        }
        [keyword] if keyword == "refs" => SubRoute::Refs,
        [keyword, revision] if keyword == "paths-info" => SubRoute::PathsInfo(revision.clone()),
        [keyword, ..] if keyword == "commits" => SubRoute::Commits,
        _ => return Err(HfError::not_found(format!("/api/models/{rest} is not an API route this mirror serves"))),
    };
    Ok((repo_id, route))
}

/// A mirrored repo's documents, or `RepoNotFound`.
async fn load(state: &AppState, repo_id: &str) -> Result<Arc<RepoDocs>, HfError> {
    state.mirror.repo(repo_id).await?.ok_or_else(|| HfError::repo_not_found(repo_id))
}

async fn model_route(State(state): State<AppState>, request: Request) -> Result<Response, HfError> {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let rest = uri.path().strip_prefix("/api/models/").unwrap_or_default().trim_end_matches('/').to_owned();
    let (repo_id, route) = split_model_path(&state, &rest)?;
    let pairs = form_pairs(uri.query().unwrap_or_default());
    let param = |key: &str| pairs.iter().find(|(name, _)| name == key).map(|(_, value)| value.as_str());
    if method == Method::POST && !matches!(route, SubRoute::PathsInfo(_)) {
        return Err(HfError::not_found(format!("POST /api/models/{rest} is not an API route this mirror serves")));
    }
    match route {
        SubRoute::Info(revision) => {
            let repo = load(&state, &repo_id).await?;
            if let Some(revision) = revision {
                wire::check_revision(&revision, &repo.sha, &repo.refs)?;
            }
            let expand = wire::expand_values(&pairs)?;
            let blobs = param("blobs").is_some_and(flag);
            Ok(json_response(&wire::model_info(&repo.info, &expand, blobs)))
        }
        SubRoute::Tree { revision, path } => {
            let repo = load(&state, &repo_id).await?;
            wire::check_revision(&revision, &repo.sha, &repo.refs)?;
            let recursive = param("recursive").is_some_and(flag);
            let files = wire::files(&repo.info);
            let items = wire::tree(&files, &repo.sha, &path, recursive).ok_or_else(|| {
                HfError::entry_not_found(format!("{path} is not a directory of {repo_id}"), &repo.sha)
            })?;
            Ok(json_response(&Json::Array(items)))
        }
        SubRoute::Refs => {
            let repo = load(&state, &repo_id).await?;
            let mut refs = match &repo.refs {
                Json::Object(refs) => refs.clone(),
                _ => Map::new(),
            };
            for key in ["branches", "converts", "tags"] {
                refs.entry(key).or_insert_with(|| Json::Array(Vec::new()));
            }
            if param("include_prs").is_some_and(flag) {
                refs.entry("pullRequests").or_insert_with(|| Json::Array(Vec::new()));
            } else {
                refs.remove("pullRequests");
            }
            Ok(json_response(&Json::Object(refs)))
        }
        SubRoute::PathsInfo(revision) => {
            let repo = load(&state, &repo_id).await?;
            wire::check_revision(&revision, &repo.sha, &repo.refs)?;
            let body = axum::body::to_bytes(request.into_body(), 1 << 20)
                .await
                .map_err(|error| HfError::bad_request(format!("cannot read the form body: {error}")))?;
            let form = form_pairs(&String::from_utf8_lossy(&body));
            let paths: Vec<String> =
                form.into_iter().filter(|(key, _)| key == "paths").map(|(_, value)| value).collect();
            Ok(json_response(&Json::Array(wire::paths_info(&wire::files(&repo.info), &repo.sha, &paths))))
        }
        SubRoute::Commits => {
            load(&state, &repo_id).await?;
            Err(HfError::not_found(format!("the commit history of {repo_id} is not mirrored")))
        }
    }
}

// ---- HEAD/GET /{id}/resolve/{rev}/{path} ----

/// `(repo_id, revision, path)` of a raw `/{repo_id}/resolve/{revision}/{path}`, each part percent-decoded.
fn resolve_target(raw: &str) -> Option<(String, String, String)> {
    let segments: Vec<&str> = raw.trim_start_matches('/').split('/').collect();
    let at = segments.iter().position(|segment| *segment == "resolve")?;
    let decode = |parts: &[&str]| {
        parts.iter().map(|part| percent_decode_str(part).decode_utf8_lossy()).collect::<Vec<_>>().join("/")
    };
    let (revision, path) = segments.get(at + 1..)?.split_first()?;
    Some((decode(&segments[..at]), decode(&[revision]), decode(path)))
}

/// A header value from text that should be ASCII (hex digests, numbers); stored upstream data is not
/// trusted to be, so anything else is dropped rather than failing the request.
fn ascii(value: &str) -> HeaderValue {
    let visible: String = value.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').collect();
    HeaderValue::from_str(&visible).expect("visible ASCII is a valid header value")
}

async fn resolve(State(state): State<AppState>, request: Request) -> Result<Response, HfError> {
    let (repo_id, revision, file_path) = resolve_target(request.uri().path())
        .ok_or_else(|| HfError::not_found("use /{repo_id}/resolve/{revision}/{path}"))?;
    let repo = load(&state, &repo_id).await?;
    if repo.gated() && crate::mirror::gated_file(&file_path) {
        return Err(HfError::gated(&repo_id));
    }
    wire::check_revision(&revision, &repo.sha, &repo.refs)?;
    let entry = wire::files(&repo.info).into_iter().find(|entry| entry.path == file_path).ok_or_else(|| {
        HfError::entry_not_found(format!("Entry not found: {file_path} is not a file of {repo_id}"), &repo.sha)
    })?;
    let is_head = request.method() == Method::HEAD;
    let mut headers = HeaderMap::new();
    headers.insert("x-repo-commit", ascii(&repo.sha));
    headers.insert(header::ETAG, ascii(&format!("\"{}\"", entry.etag())));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(wire::content_type(&entry.path)));
    let range_header = request.headers().get(header::RANGE).and_then(|value| value.to_str().ok());
    let Ok(range) = wire::byte_range(range_header, entry.size) else {
        let mut error = HfError::bad_request(format!("range not satisfiable for {file_path} of {} bytes", entry.size));
        error.status = StatusCode::RANGE_NOT_SATISFIABLE;
        let mut response = error.into_response();
        response.headers_mut().insert(header::CONTENT_RANGE, ascii(&format!("bytes */{}", entry.size)));
        return Ok(response);
    };
    if is_head && range.is_none() {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(entry.size));
        return Ok((StatusCode::OK, headers, Body::empty()).into_response());
    }
    let not_mirrored = |held: usize| {
        let held = if held == 0 { "none of its content".to_owned() } else { format!("only its first {held} bytes") };
        let message =
            format!("{file_path} of {repo_id} ({} bytes) is listed, but this metadata mirror holds {held}", entry.size);
        HfError::entry_not_found(message, &repo.sha)
    };
    let content = state.mirror.store.file(&repo_id, &entry.path).await?.unwrap_or_default();
    let (status, body) = match range {
        None if content.len() as u64 == entry.size => (StatusCode::OK, content),
        None => return Err(not_mirrored(content.len())),
        // Inside a partially mirrored file (a safetensors header), serve what is held: a shorter 206 is
        // still a valid answer, and says so in Content-Range.
        Some((start, _)) if start >= content.len() as u64 => return Err(not_mirrored(content.len())),
        Some((start, end)) => {
            let end = end.min(content.len() as u64 - 1);
            headers.insert(header::CONTENT_RANGE, ascii(&format!("bytes {start}-{end}/{}", entry.size)));
            (StatusCode::PARTIAL_CONTENT, content[start as usize..=end as usize].to_vec())
        }
    };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    let body = if is_head { Body::empty() } else { Body::from(body) };
    Ok((status, headers, body).into_response())
}

#[cfg(test)]
mod tests {
    use super::resolve_target;

    #[test]
    fn resolve_paths_split_before_decoding() {
        let target = |raw| resolve_target(raw).map(|(repo, revision, path)| format!("{repo} | {revision} | {path}"));
        assert_eq!(
            target("/org/m1/resolve/refs%2Fpr%2F1/sub%2Fdir/a%20b.json").as_deref(),
            Some("org/m1 | refs/pr/1 | sub/dir/a b.json")
        );
        assert_eq!(target("/gpt2/resolve/main/onnx/model.onnx").as_deref(), Some("gpt2 | main | onnx/model.onnx"));
        assert_eq!(target("/gpt2/config.json"), None);
    }
}
