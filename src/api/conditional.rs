//! Conditional requests and caching headers.
//!
//! Contract:
//! - Reads of the catalog, the Hub-compatible API documents and the registry carry an `ETag`: a hash of
//!   the answer's bytes. The tag changes exactly when the answer does, whichever replica computes it, and
//!   is the same for the same answer.
//! - An answer that carries its handler's own tag keeps it, and `If-None-Match` is compared with that
//!   tag: a registry record's version, which `If-Match` takes too. Hub file downloads (`/resolve/`) are
//!   left as their handler made them (their tags are git blob ids, which clients rely on).
//! - A read whose `If-None-Match` names the current tag (or `*`) is answered `304 Not Modified` with the
//!   tag and no body.
//! - Catalog answers other than the status depend only on this replica's index and sources, so their
//!   tags are remembered per [`crate::catalog::Catalog::revision`] and caller: a repeated conditional
//!   request is answered 304 without running the handler while nothing has changed. The memo is bounded
//!   by bytes; any change drops it whole. Other reads always run their handler and compare the tag of its
//!   answer.
//! - `Cache-Control`: tagged reads are `no-cache` (store, but revalidate), `private` when the caller sent
//!   credentials; the API documents may be kept an hour; every other answer is `no-store`. Tagged reads
//!   vary by `Authorization`.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::auth::Identity;
use crate::catalog::cache::GenerationCache;

/// Largest answer tagged; larger ones (none today) go out untagged.
const MAX_TAGGED_BYTES: usize = 64 << 20;

/// Remembered tags of catalog answers: (request and caller hash) → tag, per catalog revision.
pub type TagMemo = GenerationCache<u128, u128>;

/// A memo of at most `max_bytes` (estimated).
pub fn memo(max_bytes: u64) -> TagMemo {
    GenerationCache::new(max_bytes)
}

/// How a route's answers are cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    /// Tagged, and remembered per catalog revision.
    Catalog,
    /// Tagged from the handler's answer each time.
    Tagged,
    /// A static document: `max-age` an hour.
    Document,
    /// Not stored.
    NoStore,
    /// Left as the handler made it: Hub files, whose tags are blob ids.
    Untouched,
}

fn policy(path: &str) -> Policy {
    if path.contains("/resolve/") || path.starts_with("/ui/assets/") {
        // UI assets are immutable at their hashed URLs (see `crate::ui::assets`).
        Policy::Untouched
    } else if path == "/ui/sources" || path == "/ui/mirror" {
        // Sync progress moves on its own.
        Policy::Tagged
    } else if path == "/ui" || path.starts_with("/ui/") {
        Policy::Catalog
    } else if path.ends_with("/openapi.yaml") || path == "/api" {
        Policy::Document
    } else if path.starts_with("/api/mcp_catalog/")
        || path == "/api/modelcat/v1/search"
        || (path.starts_with("/api/model_catalog/") && !path.ends_with("/status"))
    {
        // The status also shows this replica's log position and leases, which move on their own.
        Policy::Catalog
    } else if path.starts_with("/api/model_catalog/")
        || path.starts_with("/api/model_registry/")
        || path.starts_with("/api/models")
    {
        Policy::Tagged
    } else {
        Policy::NoStore
    }
}

/// Tags answers, answers 304 and sets `Cache-Control` (see the module docs). Runs inside authentication.
pub async fn conditional(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let reading = matches!(*request.method(), Method::GET | Method::HEAD);
    let policy = match policy(request.uri().path()) {
        Policy::Untouched => Policy::Untouched,
        _ if !reading => Policy::NoStore,
        policy => policy,
    };
    let credentials = request.headers().contains_key(header::AUTHORIZATION);
    if policy == Policy::Untouched {
        return next.run(request).await;
    }
    if matches!(policy, Policy::NoStore | Policy::Document) {
        let mut response = next.run(request).await;
        let value = if policy == Policy::Document && response.status().is_success() {
            "public, max-age=3600"
        } else {
            "no-store"
        };
        response.headers_mut().entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static(value));
        return response;
    }
    let wanted = request.headers().get(header::IF_NONE_MATCH).cloned();
    let remembered = (policy == Policy::Catalog).then(|| (state.catalog.revision(), request_key(&request)));
    if let (Some(wanted), Some((revision, key))) = (&wanted, remembered)
        && let Some(tag) = state.tags.get(revision, &key)
        && matches(wanted, &etag(tag))
    {
        return not_modified(etag(tag), credentials);
    }
    let response = next.run(request).await;
    if response.status() != StatusCode::OK {
        return with_no_store(response);
    }
    // A handler's own tag (a registry record's version, which `If-Match` takes too) stands.
    if let Some(own) = response.headers().get(header::ETAG).cloned() {
        if wanted.as_ref().is_some_and(|wanted| matches(wanted, &own)) {
            return not_modified(own, credentials);
        }
        let mut response = response;
        set_caching(response.headers_mut(), credentials);
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes: Bytes = match axum::body::to_bytes(body, MAX_TAGGED_BYTES).await {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::warn!(%error, "an answer could not be read for tagging");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let tag = xxhash_rust::xxh3::xxh3_128(&bytes);
    if let Some((revision, key)) = remembered {
        state.tags.insert(revision, key, tag);
    }
    let tag = etag(tag);
    if wanted.as_ref().is_some_and(|wanted| matches(wanted, &tag)) {
        return not_modified(tag, credentials);
    }
    parts.headers.insert(header::ETAG, tag);
    set_caching(&mut parts.headers, credentials);
    Response::from_parts(parts, Body::from(bytes))
}

/// What the answer depends on besides the catalog's state: the path and query, the host (absolute
/// links), the UI's encoding and fragment headers, and the caller (restrictions and permissions).
fn request_key(request: &Request) -> u128 {
    let mut key = Vec::with_capacity(256);
    key.extend_from_slice(request.method().as_str().as_bytes());
    key.push(0);
    key.extend_from_slice(request.uri().to_string().as_bytes());
    key.push(0);
    // The host (absolute links), and what shapes a UI answer: its encoding and page or fragment.
    let shaping = ["hx-request", "hx-history-restore-request"].map(header::HeaderName::from_static);
    for name in [header::HOST, header::HeaderName::from_static("x-forwarded-host"), header::ACCEPT_ENCODING]
        .into_iter()
        .chain(shaping)
    {
        if let Some(value) = request.headers().get(name) {
            key.extend_from_slice(value.as_bytes());
        }
        key.push(0);
    }
    if let Some(identity) = request.extensions().get::<Identity>()
        && let Ok(caller) = serde_json::to_vec(identity)
    {
        key.extend_from_slice(&caller);
    }
    xxhash_rust::xxh3::xxh3_128(&key)
}

fn etag(tag: u128) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{tag:032x}\"")).expect("hex is a valid header value")
}

/// Whether an `If-None-Match` value names `tag` (weak comparison, as RFC 9110 asks for this header).
fn matches(wanted: &HeaderValue, tag: &HeaderValue) -> bool {
    let (Ok(wanted), Ok(tag)) = (wanted.to_str(), tag.to_str()) else { return false };
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    let ours = opaque(tag);
    wanted.split(',').any(|candidate| candidate.trim() == "*" || opaque(candidate) == ours)
}

fn not_modified(tag: HeaderValue, credentials: bool) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    response.headers_mut().insert(header::ETAG, tag);
    set_caching(response.headers_mut(), credentials);
    response
}

fn set_caching(headers: &mut HeaderMap, credentials: bool) {
    let value = if credentials { "private, no-cache" } else { "no-cache" };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    headers.append(header::VARY, HeaderValue::from_static("authorization"));
}

fn with_no_store(mut response: Response) -> Response {
    response.headers_mut().entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists_and_star() {
        let tag = etag(0xabcdef);
        let ours = tag.to_str().unwrap().to_owned();
        for header in [ours.clone(), format!("W/{ours}"), format!("\"other\", {ours}"), "*".to_owned()] {
            assert!(matches(&HeaderValue::from_str(&header).unwrap(), &tag), "{header}");
        }
        assert!(matches(&HeaderValue::from_static("\"7\""), &HeaderValue::from_static("W/\"7\"")));
        assert!(!matches(&HeaderValue::from_static("\"00\""), &tag));
        assert!(!matches(&HeaderValue::from_static(""), &tag));
    }

    #[test]
    fn routes_get_their_policy() {
        assert_eq!(policy("/api/model_catalog/v1alpha1/models"), Policy::Catalog);
        assert_eq!(policy("/api/mcp_catalog/v1alpha1/mcp_servers/7/tools"), Policy::Catalog);
        assert_eq!(policy("/api/model_catalog/v1/status"), Policy::Tagged);
        assert_eq!(policy("/api/model_registry/v1alpha3/registered_models/1"), Policy::Tagged);
        assert_eq!(policy("/api/models/org/m"), Policy::Tagged);
        assert_eq!(policy("/org/m/resolve/main/config.json"), Policy::Untouched);
        assert_eq!(policy("/api/model_catalog/v1alpha1/openapi.yaml"), Policy::Document);
        assert_eq!(policy("/api/modelcat/v1/changes"), Policy::NoStore);
    }
}
