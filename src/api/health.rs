//! Liveness, readiness and metrics routes, outside the API base paths.
//!
//! `/healthz` answers while the process runs (from the first second: the listener is bound before the
//! catalog loads); `/readyz` and Kubeflow's `/readyz/health` answer 503 with the load's figures (sources
//! loaded of total, models indexed, elapsed time) until the catalog has loaded and this replica's index
//! has caught up with the change log, then check that the store answers; `/readyz/isDirty` answers `false` (Kubeflow's schema-dirty flag: modelcat
//! migrates in one transaction per version, so a started server is never dirty). `GET /` is a 404, which
//! Kubeflow's Python suite polls for. `/metrics` renders the request metrics and, read at each scrape,
//! the resource gauges (`modelcat_process_*`, `modelcat_cache_*`, segments, WAL, tasks).

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
    // The recorder is process-wide: two applications in one process (tests) must not interleave setting
    // their gauges and rendering them.
    static SCRAPE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let rendered = {
        let _scrape = SCRAPE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        record_resources(&state);
        state.metrics.render()
    };
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], rendered)
}

/// Sets the resource gauges, read at each scrape: the process's memory and descriptors, tokio tasks,
/// index segments, the SQLite database and WAL files and the caches' estimated sizes.
fn record_resources(state: &AppState) {
    use metrics::gauge;
    let process = crate::telemetry::resources::Process::read();
    let optional = [
        ("modelcat_process_heap_bytes", process.heap_bytes),
        ("modelcat_process_file_bytes", process.file_bytes),
        ("modelcat_process_open_fds", process.open_fds),
        ("modelcat_sqlite_wal_bytes", state.replica.backend().wal_bytes()),
        ("modelcat_sqlite_db_bytes", state.replica.backend().db_bytes()),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            gauge!(name).set(value as f64);
        }
    }
    gauge!("modelcat_tokio_alive_tasks").set(tokio::runtime::Handle::current().metrics().num_alive_tasks() as f64);
    gauge!("modelcat_index_segments").set(state.catalog.segments() as f64);
    gauge!("modelcat_index_mapped_files").set(state.catalog.mapped_files() as f64);
    gauge!("modelcat_hub_listing_repos").set(state.mirror.listing.len() as f64);
    let (hub_bytes, hub_entries) = state.mirror.cache_size();
    let caches = state.catalog.cache_sizes().into_iter().chain([("hub_repos", hub_bytes, hub_entries)]);
    for (cache, bytes, entries) in caches {
        gauge!("modelcat_cache_bytes", "cache" => cache).set(bytes as f64);
        gauge!("modelcat_cache_entries", "cache" => cache).set(entries as f64);
    }
}
