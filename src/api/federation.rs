//! The modelcat API family (`/api/modelcat/v1`): the change feed peers follow.
//!
//! - `GET /changes?since=<cursor>&limit=&wait=<seconds>`: a long poll; with nothing new it answers an
//!   empty page whose cursor is the current head. With `Accept: text/event-stream` the same feed is sent
//!   as Server-Sent Events (`change` events, a `bookmark` when only the cursor moved, comment heartbeats),
//!   resuming from `Last-Event-ID`.
//! - `GET /snapshot`: every selected record as NDJSON, streamed from one point-in-time view, ending with
//!   `{"end": {"cursor", "count", "instance"}}`.
//! - Both take `sources` (comma-separated source ids, or `*`; default: the sources that originated
//!   here), `exclude` (the consumer's instance id) and `maxHops`.
//!
//! Errors use one envelope, `{"code": "<machine code>", "message": "…"}`: 400 `bad_request`, 404
//! `not_found`, 410
//! `cursor_expired` / `cursor_epoch` / `cursor_ahead` (take a snapshot), 503 `unavailable`.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::stream::{self, Stream, StreamExt};

use super::params::Params;
use crate::app::AppState;
pub use crate::federation::feed::FeedError;
use crate::federation::feed::{self, DEFAULT_LIMIT, Feed, Selection};
use crate::federation::wire::{Cursor, Event, SnapshotEnd, SnapshotLine};

pub const BASE_PATH: &str = "/api/modelcat/v1";
/// How long one SSE poll waits before it loops (heartbeats keep the connection open meanwhile).
const STREAM_WAIT: Duration = Duration::from_secs(25);

pub fn router() -> Router<AppState> {
    Router::new().route("/changes", get(changes)).route("/snapshot", get(snapshot))
}

impl IntoResponse for FeedError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            FeedError::Gone { code, .. } => (StatusCode::GONE, *code),
            FeedError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            FeedError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            FeedError::Unavailable(message) => {
                tracing::warn!(error = %message, "change feed unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
        };
        let body = serde_json::json!({ "code": code, "message": self.to_string() });
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

fn feed(state: &AppState) -> Feed {
    Feed { replica: state.replica.clone(), catalog: state.catalog.clone() }
}

fn selection(params: &Params) -> Result<Selection, FeedError> {
    let mut selection = Selection::default();
    if let Some(sources) = params.get("sources").filter(|sources| !sources.is_empty()) {
        if sources == "*" {
            selection.all = true;
        } else {
            selection.sources = Some(sources.split(',').map(|id| id.trim().to_owned()).collect());
        }
    }
    selection.exclude = params.get("exclude").filter(|id| !id.is_empty()).map(str::to_owned);
    if let Some(hops) = params.get("maxHops") {
        let hops = hops.parse().ok().filter(|hops| *hops >= 1);
        selection.max_hops = Some(hops.ok_or(FeedError::BadRequest("maxHops must be a positive integer".into()))?);
    }
    Ok(selection)
}

fn number(params: &Params, name: &str, default: i64, max: i64) -> Result<i64, FeedError> {
    match params.get(name) {
        None => Ok(default),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|value| (0..=max).contains(value))
            .ok_or_else(|| FeedError::BadRequest(format!("{name} must be an integer from 0 to {max}"))),
    }
}

async fn changes(State(state): State<AppState>, headers: HeaderMap, params: Params) -> Response {
    match changes_response(state, &headers, &params).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn changes_response(state: AppState, headers: &HeaderMap, params: &Params) -> Result<Response, FeedError> {
    let selection = selection(params)?;
    let limit = number(params, "limit", DEFAULT_LIMIT, feed::MAX_LIMIT)?.max(1);
    let last_event = headers.get("last-event-id").and_then(|value| value.to_str().ok());
    let since = last_event.or(params.get("since")).filter(|since| !since.is_empty()).ok_or_else(|| {
        FeedError::BadRequest("since is required: start from the cursor that ends a snapshot (GET /snapshot)".into())
    })?;
    let since = Cursor::decode(since)
        .ok_or_else(|| FeedError::BadRequest(format!("{since:?} is not a cursor of this feed")))?;
    let feed = feed(&state);
    let wants_stream = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/event-stream"));
    if wants_stream {
        // Refuse a cursor that cannot be followed before the stream starts, with a proper status.
        feed.page(&since, 1, Duration::ZERO, &selection).await?;
        return Ok(Sse::new(event_stream(feed, since, limit, selection))
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
            .into_response());
    }
    let wait = Duration::from_secs(number(params, "wait", 0, feed::MAX_WAIT.as_secs() as i64)? as u64);
    let page = feed.page(&since, limit, wait, &selection).await?;
    Ok(axum::Json(page).into_response())
}

/// The feed as SSE: each page's changes, the last one carrying the page's cursor as its id.
fn event_stream(
    feed: Feed,
    since: Cursor,
    limit: i64,
    selection: Selection,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let pages = stream::unfold(Some(since), move |cursor| {
        let (feed, selection) = (feed.clone(), selection.clone());
        async move {
            let cursor = cursor?;
            let (events, next) = match feed.page(&cursor, limit, STREAM_WAIT, &selection).await {
                Ok(page) => {
                    let next = Cursor::decode(&page.cursor);
                    let moved = next.as_ref() != Some(&cursor);
                    (page_events(page, moved), next)
                }
                Err(FeedError::Unavailable(_)) => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    (Vec::new(), Some(cursor))
                }
                Err(error) => {
                    let body = serde_json::json!({"message": error.to_string()});
                    (vec![SseEvent::default().event("error").data(body.to_string())], None)
                }
            };
            Some((stream::iter(events.into_iter().map(Ok)), next))
        }
    });
    pages.flatten()
}

fn page_events(page: crate::federation::wire::Page, moved: bool) -> Vec<SseEvent> {
    let mut events: Vec<SseEvent> = page
        .changes
        .iter()
        .map(|change| SseEvent::default().event("change").data(serde_json::to_string(change).unwrap_or_default()))
        .collect();
    match events.pop() {
        Some(last) => events.push(last.id(page.cursor)),
        None if moved => events.push(SseEvent::default().event("bookmark").id(page.cursor).data("{}")),
        None => {}
    }
    events
}

async fn snapshot(State(state): State<AppState>, params: Params) -> Response {
    let started = async {
        let selection = selection(&params)?;
        let feed = feed(&state);
        let (cursor, scan) = feed.snapshot(&selection).await?;
        Ok::<_, FeedError>((feed, selection, cursor, scan))
    };
    let (feed, selection, cursor, scan) = match started.await {
        Ok(started) => started,
        Err(error) => return error.into_response(),
    };
    let lines = stream::unfold(Some((scan, 0u64)), move |state| {
        let (feed, selection, cursor) = (feed.clone(), selection.clone(), cursor.clone());
        async move {
            let (scan, count) = state?;
            match feed::next_chunk(scan, 500).await {
                Ok((chunk, _)) if chunk.is_empty() => {
                    let end =
                        SnapshotEnd { cursor: cursor.encode(), count, instance: feed.replica.instance().to_owned() };
                    Some((Ok(Bytes::from(line(&SnapshotLine::End { end }))), None))
                }
                Ok((chunk, scan)) => {
                    let mut text = Vec::new();
                    let mut sent = 0;
                    for model in chunk {
                        let event = feed.event(model, &selection);
                        if matches!(event, Event::Upsert { .. }) {
                            text.extend_from_slice(&line(&SnapshotLine::Record(event)));
                            sent += 1;
                        }
                    }
                    Some((Ok(Bytes::from(text)), Some((scan, count + sent))))
                }
                // Cut short without the end line: the consumer sees a truncated snapshot.
                Err(error) => Some((Err(std::io::Error::other(error.to_string())), None)),
            }
        }
    });
    ([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(lines)).into_response()
}

fn line(line: &SnapshotLine) -> Vec<u8> {
    let mut text = serde_json::to_vec(line).unwrap_or_default();
    text.push(b'\n');
    text
}
