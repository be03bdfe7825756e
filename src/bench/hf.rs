//! `modelcat bench hf`: syncs models from the in-process fake Hub into a fresh SQLite store, then serves
//! them and loads the Hub-compatible API.
//!
//! - full sync of `models` generated models (`gen/*`): models/s and Hub requests per model. The fake Hub
//!   answers as fast as it can (`--hub-latency-ms` adds a fixed delay per request), so the figure is
//!   modelcat's own sync cost with the fake Hub sharing the two cores;
//! - incremental re-sync after 1% of the models got a new revision (the rest is skipped by `sha`);
//! - a server start (a `modelcat serve` child process) on that store with the same source configured: the listing loads, the catalog indexes
//!   every mirrored model from the store, and the source's own first sync finds nothing changed;
//! - `concurrency` HTTP clients for `duration` seconds each: `GET /api/models?search=…&limit=20`,
//!   `model_info`, and `HEAD …/resolve/main/config.json`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use modelcat_sources::NameFilter;
use modelcat_sources::hf::HfParams;

use super::server::Server;
use super::{Load, Random, expect_ok, header, scenario};
use crate::fake_hub::FakeHub;
use crate::mirror::Mirror;
use crate::mirror::hub::RetryPolicy;
use crate::mirror::store::MirrorStore;

/// Parameters of a Hub mirror benchmark run.
#[derive(Debug, Clone, clap::Args)]
pub struct HfBench {
    /// Models the fake Hub serves and the sync mirrors.
    #[arg(long, default_value_t = 50_000)]
    pub models: usize,
    /// Requests in flight during the sync.
    #[arg(long, default_value_t = 16)]
    pub sync_concurrency: usize,
    /// Latency the fake Hub adds to each request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub hub_latency_ms: u64,
    /// Concurrent HTTP clients for the API scenarios.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Seconds per API scenario.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
}

/// Waits until the catalog's `bench` source serves models after its first sync; returns how many.
async fn catalog_models(client: &reqwest::Client, base: &str) -> anyhow::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let status: serde_json::Value =
            client.get(format!("{base}/api/model_catalog/v1alpha1/status")).send().await?.json().await?;
        let source =
            status["sources"].as_array().and_then(|sources| sources.iter().find(|source| source["id"] == "bench"));
        let models = source.and_then(|source| source["models"].as_u64()).unwrap_or(0);
        if models > 0 {
            return Ok(models);
        }
        anyhow::ensure!(Instant::now() < deadline, "the catalog never indexed the mirrored models: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Context {
    client: reqwest::Client,
    base: String,
    models: u64,
}

pub async fn run_hf(bench: HfBench) -> anyhow::Result<()> {
    crate::install_crypto_provider();
    let scratch = super::Scratch::new("hf")?;
    run_in(&bench, &scratch.0).await
}

async fn run_in(bench: &HfBench, temp: &std::path::Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let hub = FakeHub::new(bench.models, 1000);
    hub.faults().latency_micros.store(bench.hub_latency_ms * 1000, std::sync::atomic::Ordering::Relaxed);
    println!("fake Hub: {} models generated in {:.1}s", bench.models, started.elapsed().as_secs_f64());
    let (hub_url, _hub_task) = hub.serve(tokio::net::TcpListener::bind("127.0.0.1:0").await?).await?;

    let database_url = format!("sqlite://{}", temp.join("registry.db").display());
    let backend = crate::store::connect(&database_url).await?;
    let mirror = Mirror::open(MirrorStore::new(backend)).await?;
    let properties = [
        ("url".to_owned(), serde_json::Value::from(hub_url.as_str())),
        ("maxConcurrency".to_owned(), serde_json::Value::from(bench.sync_concurrency)),
    ]
    .into_iter()
    .collect();
    let (params, included, excluded) =
        HfParams::parse(&properties, &["gen/*".to_owned()], &[]).map_err(anyhow::Error::msg)?;
    let filter = NameFilter::new(&included, &excluded)?;

    println!(
        "\nsync from the fake Hub ({} ms added per request; {} requests in flight; SQLite store):",
        bench.hub_latency_ms, bench.sync_concurrency
    );
    let report = mirror.sync("bench", &params, &filter, RetryPolicy::default(), &|_| {}, None).await?;
    println!("  full sync: {}", report.summary());
    println!("  Hub requests per model: {:.1}", report.requests as f64 / report.listed.max(1) as f64);
    let touched = bench.models / 100;
    for n in 0..touched {
        hub.touch(&format!("gen/model-{:05}", n * 100));
    }
    let report = mirror.sync("bench", &params, &filter, RetryPolicy::default(), &|_| {}, None).await?;
    println!("  re-sync after {touched} models changed: {}", report.summary());
    let process = crate::telemetry::resources::Process::read();
    let megabytes = process.resident_bytes.map_or(0, |bytes| bytes >> 20);
    println!("  resident memory of this process (the fake Hub and the sync) after the sync: {megabytes} MB");

    // The server, a child process on the same store, runs the same source: its first sync finds nothing
    // changed, and the catalog indexes every mirrored model.
    drop(mirror);
    let sources = format!(
        "model_catalogs:\n  - {{id: bench, name: Bench, type: hf, includedModels: [gen/*], \
         properties: {{url: \"{hub_url}\", maxConcurrency: {}}}}}\n",
        bench.sync_concurrency
    );
    let probe = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let started = Instant::now();
    let server = Server::start(temp, "s", &database_url, &sources, 5000)?;
    server.ready_within(&probe, super::catalog::LOAD_WITHIN).await?;
    let ready = started.elapsed();
    println!(
        "\nserver start, a child process (listing the mirror, indexing its {} models into the catalog): {:.2}s",
        bench.models,
        ready.as_secs_f64()
    );
    let base = server.address.clone();
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).timeout(Duration::from_secs(30)).build()?;
    let indexed = catalog_models(&client, &base).await?;
    println!(
        "catalog serves {indexed} Hub models {:.2}s after start began; server memory {}",
        started.elapsed().as_secs_f64(),
        server.memory()
    );
    let context = Arc::new(Context { client, base, models: bench.models as u64 });
    let load = Load { concurrency: bench.concurrency, duration: bench.duration };
    println!("\nHub-compatible API, {} clients, {} s per scenario:", bench.concurrency, bench.duration);
    header();
    scenario(load, "list ?search=…&limit=20", context.clone(), |context, seed| async move {
        // Three-digit model number prefixes: each matches 0.2% of the models, scattered over the order.
        let search = format!("model-{:03}", Random(seed | 1).below(context.models.div_ceil(100).max(1)));
        let url = format!("{}/api/models", context.base);
        expect_ok(context.client.get(url).query(&[("search", search.as_str()), ("limit", "20")]).send().await?).await
    })
    .await
    .print();
    scenario(load, "model_info", context.clone(), |context, seed| async move {
        let n = Random(seed | 1).below(context.models);
        expect_ok(context.client.get(format!("{}/api/models/gen/model-{n:05}", context.base)).send().await?).await
    })
    .await
    .print();
    scenario(load, "HEAD resolve config.json", context.clone(), |context, seed| async move {
        let n = Random(seed | 1).below(context.models);
        let url = format!("{}/gen/model-{n:05}/resolve/main/config.json", context.base);
        expect_ok(context.client.head(url).send().await?).await
    })
    .await
    .print();
    println!("\nserver memory at the end: {}", server.memory());
    Ok(())
}
