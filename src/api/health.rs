//! Liveness, readiness and metrics routes, outside the API base paths.
//!
//! `/healthz` answers while the process runs; `/readyz` and Kubeflow's `/readyz/health` check that the
//! store answers and that this replica's index has caught up with the change log at start (503
//! otherwise); `/readyz/isDirty` answers `false` (Kubeflow's schema-dirty flag: modelcat
//! migrates in one transaction per version, so a started server is never dirty). `GET /` is a 404, which
//! Kubeflow's Python suite polls for.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
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

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    if !state.replica.follow_state().caught_up {
        return (StatusCode::SERVICE_UNAVAILABLE, "the search index is catching up with the change log".to_owned());
    }
    match state.registry.ping().await {
        Ok(()) => (StatusCode::OK, "ok".to_owned()),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, format!("store unavailable: {error}"))
        }
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
