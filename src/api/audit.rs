//! `GET /api/modelcat/v1/audit`: the audit log, oldest first, for admins.
//!
//! Filters: `actor`, `action`, `entity` (`registered_model/12`, or a kind with a trailing slash:
//! `registered_model/`), `since` and `until` (ms since the epoch). Paging: `pageSize` (default 100, at
//! most 1000) and `pageToken` (the `nextPageToken` of the previous page). Entries not chained yet (on
//! PostgreSQL, for a second or so) are not listed.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Family;
use super::params::Params;
use crate::app::AppState;
use crate::store::audit::{self, Filter};

pub async fn list(State(state): State<AppState>, params: Params) -> Response {
    let bad = |message: String| Family::Modelcat.error(StatusCode::BAD_REQUEST, &message);
    let number = |key: &str| -> Result<Option<i64>, String> {
        params
            .get(key)
            .map(|text| text.parse::<i64>().map_err(|_| format!("{key} must be an integer, got {text:?}")))
            .transpose()
    };
    let (since, until, after, size) = match (number("since"), number("until"), number("pageToken"), number("pageSize"))
    {
        (Ok(since), Ok(until), Ok(after), Ok(size)) => (since, until, after, size),
        (Err(message), ..) | (_, Err(message), ..) | (_, _, Err(message), _) | (.., Err(message)) => {
            return bad(message);
        }
    };
    let limit = size.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return bad(format!("pageSize must be 1 to 1000, got {limit}"));
    }
    let text = |key: &str| params.get(key).filter(|value| !value.is_empty()).map(str::to_owned);
    let filter = Filter {
        actor: text("actor"),
        action: text("action"),
        entity: text("entity"),
        since,
        until,
        after: after.unwrap_or(0),
        limit: limit + 1,
    };
    match audit::page(&*state.backend, &filter).await {
        Ok(mut items) => {
            let more = items.len() as i64 > limit;
            items.truncate(limit as usize);
            let next = if more { items.last().map(|item| item.entry.seq.to_string()) } else { None };
            Json(json!({"items": items, "size": items.len(), "nextPageToken": next.unwrap_or_default()}))
                .into_response()
        }
        Err(error) => {
            tracing::error!(%error, "cannot read the audit log");
            Family::Modelcat.error(StatusCode::SERVICE_UNAVAILABLE, "the audit log cannot be read right now")
        }
    }
}
