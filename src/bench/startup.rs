//! `modelcat bench startup`: how soon a server answers, and how soon it is ready, on a large catalog.
//!
//! Generates the catalog bench's synthetic YAML catalogs, starts `modelcat serve` as a child process (a
//! separate process, as users run it) and probes `/healthz` every 10 ms and `/readyz` every 20 ms from
//! the moment it is spawned: once on a fresh index, then after restarts on the intact index.

use std::time::{Duration, Instant};

use anyhow::bail;

use super::catalog::{CatalogBench, generate};
use super::server::Server;

/// Parameters of a startup benchmark run.
#[derive(Debug, Clone, clap::Args)]
pub struct StartupBench {
    /// Catalog models.
    #[arg(long, default_value_t = 100_000)]
    pub models: usize,
    /// Catalog files they are spread over.
    #[arg(long, default_value_t = 50)]
    pub sources: usize,
    /// Words per model readme.
    #[arg(long, default_value_t = 300)]
    pub readme_words: usize,
    /// Restarts on the intact index to measure.
    #[arg(long, default_value_t = 2)]
    pub restarts: usize,
}

/// Runs the benchmark and prints its figures.
pub async fn run_startup(bench: StartupBench) -> anyhow::Result<()> {
    crate::install_crypto_provider();
    let scratch = super::Scratch::new("startup")?;
    run_in(&bench, &scratch.0).await
}

async fn run_in(bench: &StartupBench, root: &std::path::Path) -> anyhow::Result<()> {
    let dir = root.join("s");
    std::fs::create_dir_all(&dir)?;
    let catalog = CatalogBench {
        models: bench.models,
        sources: bench.sources,
        readme_words: bench.readme_words,
        concurrency: 1,
        duration: 1,
        edits: 0,
        mcp_servers: 0,
    };
    let corpus = generate(&catalog, &dir)?;
    let sources = std::fs::read_to_string(dir.join("sources.yaml"))?;
    println!(
        "modelcat bench startup: {} models in {} catalogs ({} MB of YAML); the server is a child process",
        bench.models,
        bench.sources,
        corpus.bytes / 1_000_000
    );
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let database = format!("sqlite://{}", root.join("registry.db").display());
    let spawned = Instant::now();
    let mut server = Server::start(root, "s", &database, &sources, 5000)?;
    measure(&client, &server, spawned, "fresh index").await?;
    for restart in 1..=bench.restarts {
        server.terminate();
        let spawned = Instant::now();
        server.launch()?;
        measure(&client, &server, spawned, &format!("restart {restart}, intact index")).await?;
    }
    Ok(())
}

/// Probes the server spawned at `spawned` until it is ready; prints when it answered and was ready.
async fn measure(client: &reqwest::Client, server: &Server, spawned: Instant, what: &str) -> anyhow::Result<()> {
    let probe = |path: &'static str| {
        let url = format!("{}{path}", server.address);
        async move { client.get(url).send().await.is_ok_and(|response| response.status().is_success()) }
    };
    let live = loop {
        if probe("/healthz").await {
            break spawned.elapsed();
        }
        if spawned.elapsed() > Duration::from_secs(60) {
            bail!("/healthz never answered");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    server.ready_within(client, super::catalog::LOAD_WITHIN).await?;
    let ready = spawned.elapsed();
    println!(
        "{what:<28} /healthz after {:>7.3} s, ready after {:>7.2} s; then server memory {}",
        live.as_secs_f64(),
        ready.as_secs_f64(),
        server.memory(),
    );
    Ok(())
}
