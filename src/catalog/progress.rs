//! The catalog's initial load, as the health routes, the status and the log show it.
//!
//! [`LoadProgress`] counts sources loaded of the total and models indexed while the initial load runs
//! (the reloader reports each source as its load completes), and flips to loaded once the sources are
//! in and the index has caught up with the change log. Until then the catalog and Hub-compatible APIs
//! answer 503 and `/readyz` shows the figures; the registry serves from the first second.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// How often the log reports a running load.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// The initial load's progress; shared by the catalog handle and the reloader.
#[derive(Debug)]
pub struct LoadProgress {
    started: Instant,
    sources_total: AtomicUsize,
    /// Models per source loaded so far (a source reloaded during the load counts once).
    sources: Mutex<HashMap<String, usize>>,
    loaded: watch::Sender<bool>,
    /// Why the load could not finish (the store was unreachable, say); the load retries.
    error: Mutex<Option<String>>,
}

/// A snapshot of the figures.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    pub loaded: bool,
    pub sources_loaded: usize,
    pub sources_total: usize,
    pub models_indexed: u64,
    pub elapsed_ms: u64,
    pub error: Option<String>,
}

impl Default for LoadProgress {
    fn default() -> Self {
        LoadProgress {
            started: Instant::now(),
            sources_total: AtomicUsize::new(0),
            sources: Mutex::default(),
            loaded: watch::channel(false).0,
            error: Mutex::new(None),
        }
    }
}

impl LoadProgress {
    /// The load will fetch `count` sources.
    pub fn expect_sources(&self, count: usize) {
        self.sources_total.store(count, Ordering::Relaxed);
    }

    /// Source `id` finished loading with `models` models.
    pub fn source_loaded(&self, id: &str, models: usize) {
        if !self.is_loaded() {
            self.sources.lock().expect("sources").insert(id.to_owned(), models);
        }
    }

    pub fn set_error(&self, error: Option<String>) {
        *self.error.lock().expect("load error") = error;
    }

    /// The load is done: the catalog serves.
    pub fn finish(&self) {
        let figures = self.figures();
        tracing::info!(
            sources = figures.sources_loaded,
            models = figures.models_indexed,
            elapsed_ms = figures.elapsed_ms,
            "catalog loaded: serving"
        );
        self.loaded.send_replace(true);
    }

    pub fn is_loaded(&self) -> bool {
        *self.loaded.borrow()
    }

    /// Resolves once the load is done.
    pub async fn wait(&self) {
        let mut loaded = self.loaded.subscribe();
        let _ = loaded.wait_for(|loaded| *loaded).await;
    }

    pub fn figures(&self) -> Figures {
        let (sources_loaded, models_indexed) = {
            let sources = self.sources.lock().expect("sources");
            (sources.len(), sources.values().sum::<usize>() as u64)
        };
        Figures {
            loaded: self.is_loaded(),
            sources_loaded,
            sources_total: self.sources_total.load(Ordering::Relaxed).max(sources_loaded),
            models_indexed,
            elapsed_ms: self.started.elapsed().as_millis() as u64,
            error: self.error.lock().expect("load error").clone(),
        }
    }

    /// Logs the figures every few seconds until the load is done.
    pub async fn report(self: std::sync::Arc<Self>) {
        let mut loaded = self.loaded.subscribe();
        loop {
            tokio::select! {
                _ = loaded.wait_for(|loaded| *loaded) => return,
                () = tokio::time::sleep(REPORT_EVERY) => {}
            }
            let figures = self.figures();
            let rate = figures.models_indexed as f64 / (figures.elapsed_ms.max(1) as f64 / 1000.0);
            tracing::info!(
                sources = figures.sources_loaded,
                of = figures.sources_total,
                models = figures.models_indexed,
                models_per_second = rate.round() as u64,
                elapsed_s = figures.elapsed_ms / 1000,
                "loading the catalog"
            );
        }
    }
}
