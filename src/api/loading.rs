//! While the catalog loads (see [`crate::catalog::progress`]), the families that read it answer 503 with
//! `Retry-After` and the load's figures, each in its own envelope: Kubeflow's catalog
//! (`{"code", "message", "progress"}`), the Hub's (`{"error"}` with `X-Error-Message`) and modelcat's
//! feed (`{"code": "unavailable", …}`). The registry is not gated: it serves from the first second, and
//! what it writes meanwhile reaches the catalog through the change log once the load is done.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::hf::wire::HfError;
use crate::app::AppState;
use crate::catalog::progress::Figures;
use crate::federation::feed::FeedError;

/// How long clients are asked to wait before retrying.
const RETRY_AFTER_SECS: &str = "2";

/// The load's figures while it runs; `None` once the catalog serves.
fn loading(state: &AppState) -> Option<Figures> {
    let progress = state.catalog.progress();
    (!progress.is_loaded()).then(|| progress.figures())
}

/// What a client reads while the catalog loads.
pub fn message(figures: &Figures) -> String {
    let mut message = format!(
        "the catalog is loading: {} of {} sources, {} models indexed, {:.1} s so far",
        figures.sources_loaded,
        figures.sources_total,
        figures.models_indexed,
        figures.elapsed_ms as f64 / 1000.0
    );
    if let Some(error) = &figures.error {
        message.push_str(&format!(" ({error})"));
    }
    message
}

fn retry_later(mut response: Response) -> Response {
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
    response
}

/// Kubeflow catalog routes.
pub async fn catalog(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(figures) = loading(&state) else { return next.run(request).await };
    let body = serde_json::json!({"code": "Service Unavailable", "message": message(&figures), "progress": figures});
    retry_later((StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response())
}

/// Hub-compatible routes.
pub async fn hub(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(figures) = loading(&state) else { return next.run(request).await };
    let error =
        HfError { status: StatusCode::SERVICE_UNAVAILABLE, code: None, message: message(&figures), commit: None };
    retry_later(error.into_response())
}

/// modelcat's change feed.
pub async fn feed(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(figures) = loading(&state) else { return next.run(request).await };
    FeedError::Unavailable(message(&figures)).into_response()
}
