//! `modelcat bench …`: benchmarks that print figures (nothing is asserted).
//!
//! [`registry`] measures the registry API, [`catalog`] the catalog, [`hf`] the Hub mirror (sync and API):
//! they run the server in this process on a loopback port and drive it with HTTP clients in the same
//! process, so client cost is included. [`replicas`] runs several servers as child processes on one
//! PostgreSQL database and measures convergence, throughput and failover; [`peers`] runs two instances,
//! one following the other's change feed; [`startup`] times a server's first answer and its readiness
//! on a large catalog; [`soak`] runs a steady mixed load for many minutes and samples the server's
//! resources; [`governance`] times lifecycle steps, the gates and webhook deliveries; [`polling`] sends a polling platform's conditional requests at a fixed rate; [`ui`] times the
//! web UI's pages from a separate process. Child
//! processes are started by [`server`].

pub mod catalog;
pub mod governance;
pub mod hf;
pub mod mcp;
pub mod peers;
pub mod polling;
pub mod registry;
pub mod replicas;
pub mod server;
pub mod soak;
pub mod startup;
pub mod ui;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;

/// How many clients, for how long.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub concurrency: usize,
    /// Seconds per scenario.
    pub duration: u64,
}

/// An HTTP client for a bench, sending `token` as its bearer credential when given.
pub fn client(token: Option<&str>, idle_per_host: usize) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    let builder = reqwest::Client::builder().default_headers(headers).pool_max_idle_per_host(idle_per_host);
    Ok(builder.timeout(Duration::from_secs(30)).build()?)
}

/// Prints the table header scenarios print under.
pub fn header() {
    println!("{:<34} {:>10} {:>10} {:>10} {:>10} {:>8}", "scenario", "ops/s", "p50 ms", "p90 ms", "p99 ms", "errors");
}

/// A tiny deterministic generator (xorshift64*), enough to spread requests over the data set.
pub struct Random(pub u64);

impl Random {
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound
    }
}

pub async fn expect_ok(response: reqwest::Response) -> anyhow::Result<()> {
    let status = response.status();
    let _ = response.bytes().await?;
    if status.is_success() { Ok(()) } else { bail!("unexpected status {status}") }
}

/// The figures of one scenario.
pub struct Outcome {
    name: &'static str,
    latencies: Vec<Duration>,
    errors: u64,
    elapsed: Duration,
}

/// A fresh directory under the system's temporary directory, removed (with everything in it) when
/// dropped: where a bench's servers keep their data.
pub struct Scratch(pub std::path::PathBuf);

impl Scratch {
    pub fn new(bench: &str) -> anyhow::Result<Scratch> {
        let root = std::env::temp_dir().join(format!("modelcat_bench_{bench}_{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&root)?;
        Ok(Scratch(root))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `fraction` percentile of sorted latencies, in milliseconds (NaN when there are none).
pub fn percentile_ms(sorted: &[Duration], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1000.0
}

/// The sources file of the benches that serve the sample catalogs and a Hub mirror of `gen/*` from the
/// fake Hub at `hub_url`.
pub fn sample_sources(catalogs: &std::path::Path, hub_url: &str) -> anyhow::Result<String> {
    use anyhow::Context as _;
    let catalogs = std::fs::canonicalize(catalogs)
        .with_context(|| format!("the sample catalogs ({}): run from the checkout", catalogs.display()))?;
    Ok(format!(
        "model_catalogs:\n\
         - {{id: example, name: Example, type: yaml, labels: [Examples], properties: {{yamlCatalogPath: {}}}}}\n\
         - {{id: open_models, name: Open Models, type: yaml, properties: {{yamlCatalogPath: {}}}}}\n\
         - {{id: hf, name: Hub, type: hf, includedModels: [gen/*], properties: {{url: \"{hub_url}\"}}}}\n",
        catalogs.join("example-models.yaml").display(),
        catalogs.join("open-models.yaml").display(),
    ))
}

impl Outcome {
    pub fn percentile(&self, fraction: f64) -> f64 {
        percentile_ms(&self.latencies, fraction)
    }

    /// Successful operations per second.
    pub fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    pub fn print(&self) {
        let rate = self.rate();
        println!(
            "{:<34} {:>10.0} {:>10.2} {:>10.2} {:>10.2} {:>8}",
            self.name,
            rate,
            self.percentile(0.50),
            self.percentile(0.90),
            self.percentile(0.99),
            self.errors
        );
    }
}

/// Runs `operation` from `concurrency` workers for the bench duration (after a one-second warm-up).
pub async fn scenario<C, F, Fut>(load: Load, name: &'static str, context: Arc<C>, operation: F) -> Outcome
where
    C: Send + Sync + 'static,
    F: Fn(Arc<C>, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let warm_up = Instant::now() + Duration::from_secs(1);
    let deadline = warm_up + Duration::from_secs(load.duration);
    let mut workers = Vec::new();
    for worker in 0..load.concurrency.max(1) {
        let operation = operation.clone();
        let context = context.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut seed = 0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(worker as u64 + 1);
            loop {
                let started = Instant::now();
                if started >= deadline {
                    break;
                }
                seed = seed.wrapping_add(0x9e37_79b9);
                let result = operation(context.clone(), seed).await;
                if started < warm_up {
                    continue;
                }
                match result {
                    Ok(()) => latencies.push(started.elapsed()),
                    Err(error) => {
                        if errors == 0 {
                            eprintln!("  {name}: {error:#}");
                        }
                        errors += 1;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut outcome = Outcome { name, latencies: Vec::new(), errors: 0, elapsed: Duration::from_secs(load.duration) };
    for worker in workers {
        if let Ok((latencies, errors)) = worker.await {
            outcome.latencies.extend(latencies);
            outcome.errors += errors;
        }
    }
    outcome.latencies.sort_unstable();
    outcome
}
