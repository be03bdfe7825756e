//! Logs and metrics: `tracing` to stderr (text or JSON, filtered by `RUST_LOG`, default `info`,
//! with tantivy's own logs at `error`: it warns about benign races between merges and commits), and a
//! process-wide Prometheus recorder whose handle renders `/metrics`.
//!
//! The recorder keeps every histogram sample until an upkeep drains it into the buckets: a scrape does,
//! and so does the task [`spawn_upkeep`] starts, so an unscraped server does not grow by a few bytes per
//! request. [`resources`] reads the process's own memory and descriptors for the resource gauges.

pub mod resources;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global log subscriber; later calls do nothing.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,tantivy=error"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _already_installed = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// How often histogram samples are drained into their buckets without a scrape.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Starts the recorder's upkeep task on the current runtime (one per server; a second is harmless).
pub fn spawn_upkeep() {
    let handle = metrics_handle();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            ticks.tick().await;
            handle.run_upkeep();
        }
    });
}

/// Returns the Prometheus handle, installing the global recorder on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), &buckets)
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            let _already_installed = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
