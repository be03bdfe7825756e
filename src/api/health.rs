//! Liveness, readiness and metrics routes, outside the API base paths.
//!
//! `/healthz` answers while the process runs (from the first second: the listener is bound before the
//! catalog loads); `/readyz` and Kubeflow's `/readyz/health` answer 503 with the load's figures (sources
//! loaded of total, models indexed, elapsed time) until the catalog has loaded and this replica's index
//! has caught up with the change log, then check that the store answers; `/readyz/isDirty` answers `false` (Kubeflow's schema-dirty flag: modelcat
//! migrates in one transaction per version, so a started server is never dirty). `GET /` is a 404, which
//! Kubeflow's Python suite polls for.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/readyz/health", get(ready))
        .route("/readyz/isDirty", get(|| async { "false" }))
        .route("/metrics", get(metrics))
}

async fn ready(State(state): State<AppState>) -> Response {
    let figures = state.catalog.progress().figures();
    if !figures.loaded {
        let body =
            serde_json::json!({"status": "loading", "message": super::loading::message(&figures), "progress": figures});
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    }
    match state.registry.ping().await {
        Ok(()) => (StatusCode::OK, "ok".to_owned()).into_response(),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, format!("store unavailable: {error}")).into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
