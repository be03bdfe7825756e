//! `modelcat bench ui`: the web UI's pages at catalog scale, with the load generator (this process) and
//! the server (a child `modelcat serve`) apart, as a browser and a server are.
//!
//! Generates the catalog bench's synthetic YAML catalogs (100,000 models by default), waits until the
//! server is ready, then times, from `concurrency` clients: the search results fragment that htmx asks
//! for as a user types (text only, and with two facets and a sort), the whole search page, and a model's
//! card and performance pages.

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;

use super::catalog::{CatalogBench, LICENSES, TASKS, generate, query_word};
use super::server::Server;
use super::{Load, Random, expect_ok, header, scenario};

/// Parameters of a UI benchmark run.
#[derive(Debug, Clone, clap::Args)]
pub struct UiBench {
    /// Catalog models.
    #[arg(long, default_value_t = 100_000)]
    pub models: usize,
    /// Catalog files they are spread over.
    #[arg(long, default_value_t = 50)]
    pub sources: usize,
    /// Words per model readme.
    #[arg(long, default_value_t = 300)]
    pub readme_words: usize,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Seconds per scenario.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
}

struct Context {
    client: reqwest::Client,
    base: String,
    /// Model page paths to pick from.
    models: Vec<String>,
}

/// Runs the benchmark and prints its figures.
pub async fn run_ui(bench: UiBench) -> anyhow::Result<()> {
    crate::install_crypto_provider();
    let scratch = super::Scratch::new("ui")?;
    let dir = scratch.0.join("s");
    std::fs::create_dir_all(&dir)?;
    let catalog = CatalogBench {
        models: bench.models,
        sources: bench.sources,
        readme_words: bench.readme_words,
        concurrency: bench.concurrency,
        duration: bench.duration,
        edits: 0,
        mcp_servers: 0,
    };
    let corpus = generate(&catalog, &dir)?;
    let sources = std::fs::read_to_string(dir.join("sources.yaml"))?;
    println!(
        "modelcat bench ui: {} models in {} catalogs ({} MB of YAML); the server is a child process",
        bench.models,
        bench.sources,
        corpus.bytes / 1_000_000
    );
    let database = format!("sqlite://{}", scratch.0.join("registry.db").display());
    let server = Server::start(&scratch.0, "s", &database, &sources, 5000)?;
    let client = super::client(None, bench.concurrency * 2)?;
    server.ready_within(&client, Duration::from_secs(600)).await?;
    // As the catalog bench does: measure after the background merge of the load's segments.
    let merging = std::time::Instant::now();
    while merging.elapsed() < Duration::from_secs(120) && server.index_segments(&client).await? > 1 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("ready; the load's segments merged in {:.1}s more", merging.elapsed().as_secs_f64());
    let listed: serde_json::Value = client
        .get(format!("{}/api/model_catalog/v1alpha1/models?pageSize=1000&orderBy=ID", server.address))
        .send()
        .await?
        .json()
        .await?;
    let models: Vec<String> = listed["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|model| Some(crate::ui::model_url(model["source_id"].as_str()?, model["name"].as_str()?)))
        .collect();
    if models.is_empty() {
        bail!("the catalog serves nothing: {listed}");
    }
    println!(
        "\n{} concurrent clients, {}s per scenario, load generator and server in separate processes",
        bench.concurrency, bench.duration
    );
    header();
    let load = Load { concurrency: bench.concurrency, duration: bench.duration };
    let context = Arc::new(Context { client, base: server.address.clone(), models });
    let fragment = |context: &Context, query: &[(&str, &str)]| {
        context.client.get(format!("{}/ui", context.base)).header("HX-Request", "true").query(query).send()
    };
    scenario(load, "search fragment: q", context.clone(), move |context, seed| async move {
        let q = query_word(seed);
        expect_ok(fragment(&context, &[("q", q.as_str())]).await?).await
    })
    .await
    .print();
    scenario(load, "search fragment: q + 2 facets + sort", context.clone(), move |context, seed| async move {
        let mut random = Random(seed | 1);
        let q = query_word(seed);
        let license = LICENSES[random.below(LICENSES.len() as u64) as usize];
        let task = TASKS[random.below(3) as usize];
        let query = [("q", q.as_str()), ("license", license), ("tasks", task), ("sort", "updated")];
        expect_ok(fragment(&context, &query).await?).await
    })
    .await
    .print();
    scenario(load, "search page (whole)", context.clone(), |context, seed| async move {
        let q = query_word(seed);
        expect_ok(context.client.get(format!("{}/ui", context.base)).query(&[("q", q.as_str())]).send().await?).await
    })
    .await
    .print();
    for (name, tab) in [("model page: card", ""), ("model page: performance", "?tab=performance")] {
        scenario(load, name, context.clone(), move |context, seed| async move {
            let path = &context.models[Random(seed | 1).below(context.models.len() as u64) as usize];
            expect_ok(context.client.get(format!("{}{path}{tab}", context.base)).send().await?).await
        })
        .await
        .print();
    }
    Ok(())
}
