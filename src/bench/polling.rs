//! `modelcat bench polling`: a platform polling modelcat for changes with conditional requests.
//!
//! A `modelcat serve` child process serves the sample catalogs, a Hub mirror (from the fake Hub) and
//! registered models. This process is the platform: it reads each route once for its `ETag`, then
//! sends `If-None-Match` requests at a fixed rate (open loop: requests start on schedule whether or not
//! earlier ones finished, so a slow answer cannot hide behind a slower send rate) against unchanged
//! data, spread over catalog lists, a faceted search, model detail, `filter_options`, sources, the Hub
//! listing and model document, and registry reads. It prints, per round and per route, the latency
//! percentiles, how many answers were 304 and the body bytes received (zero when every answer is 304).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_NONE_MATCH};
use serde_json::{Value, json};

use super::percentile_ms;
use super::server::Server;
use crate::fake_hub::FakeHub;

/// Parameters of a polling run.
#[derive(Debug, Clone, clap::Args)]
pub struct PollingBench {
    /// Conditional requests per second, across all routes.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Seconds per round.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Rounds (each prints its figures: their spread is the run's).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Registered models.
    #[arg(long, default_value_t = 200)]
    pub models: usize,
    /// The sample catalogs to serve.
    #[arg(long, default_value = "catalogs")]
    pub catalogs: std::path::PathBuf,
}

/// One route's figures in a round.
#[derive(Default)]
struct Figures {
    latencies: Vec<Duration>,
    not_modified: u64,
    other: u64,
    body_bytes: u64,
}

pub async fn run_polling(bench: PollingBench) -> anyhow::Result<()> {
    crate::install_crypto_provider();
    let scratch = super::Scratch::new("polling")?;
    run_in(&bench, &scratch.0).await
}

async fn run_in(bench: &PollingBench, root: &std::path::Path) -> anyhow::Result<()> {
    let hub = FakeHub::new(50, 1000);
    let (hub_url, _hub_task) = hub.serve(tokio::net::TcpListener::bind("127.0.0.1:0").await?).await?;
    let sources = super::sample_sources(&bench.catalogs, &hub_url)?;
    let database = format!("sqlite://{}", root.join("registry.db").display());
    let server = Server::start(root, "p", &database, &sources, 15_000)?;
    let client = server.client(256)?;
    server.ready(&client).await?;
    let base = server.address.clone();
    let mut model = String::new();
    for number in 0..bench.models {
        let body = json!({"name": format!("polled-{number:04}"), "description": "A model a platform polls"});
        let created: Value = client
            .post(format!("{base}/api/model_registry/v1alpha3/registered_models"))
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        model = created["id"].as_str().context("a registered model's id")?.to_owned();
    }
    let catalog = "/api/model_catalog/v1alpha1";
    let routes = [
        format!("{catalog}/models?pageSize=20"),
        format!("{catalog}/models?q=model&facets=license,tasks,provider"),
        format!("{catalog}/sources/example/models/example/summarizer-7b"),
        format!("{catalog}/models/filter_options"),
        format!("{catalog}/sources"),
        "/api/models?search=gen/&limit=20".to_owned(),
        "/api/models/gen/model-00001".to_owned(),
        format!("/api/model_registry/v1alpha3/registered_models/{model}"),
        "/api/model_registry/v1alpha3/registered_models?pageSize=20".to_owned(),
    ];
    // Wait until the catalog holds the registry and the Hub mirror, then take each route's tag.
    let deadline = Instant::now() + Duration::from_secs(120);
    let tags = loop {
        let mut tags = Vec::new();
        for route in &routes {
            let response = client.get(format!("{base}{route}")).send().await?;
            if response.status() != StatusCode::OK {
                bail!("{route} answered {}", response.status());
            }
            tags.push(response.headers().get(ETAG).context("an ETag")?.clone());
        }
        let mut indexed = true;
        for source in ["registry", "hf"] {
            let page: Value =
                client.get(format!("{base}{catalog}/models?source={source}&pageSize=1")).send().await?.json().await?;
            indexed &= page["size"].as_u64().unwrap_or(0) > 0;
        }
        if indexed {
            break tags;
        }
        if Instant::now() > deadline {
            bail!("the catalog did not index the registry and the Hub mirror");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "modelcat bench polling: {} conditional requests/s for {} s x {} rounds over {} routes, unchanged data; \
         server pid {} (a child process), this process the client",
        bench.rate,
        bench.seconds,
        bench.rounds,
        routes.len(),
        server.pid().unwrap_or_default()
    );
    for round in 1..=bench.rounds {
        let figures: Arc<Vec<Mutex<Figures>>> = Arc::new(routes.iter().map(|_| Mutex::default()).collect());
        let started = Instant::now();
        let total = bench.rate * bench.seconds;
        let every = Duration::from_secs_f64(1.0 / bench.rate.max(1) as f64);
        let mut tasks = tokio::task::JoinSet::new();
        for sent in 0..total {
            tokio::time::sleep_until((started + every * sent as u32).into()).await;
            let which = (sent % routes.len() as u64) as usize;
            let request = client.get(format!("{base}{}", routes[which])).header(IF_NONE_MATCH, tags[which].clone());
            let figures = figures.clone();
            tasks.spawn(async move {
                let began = Instant::now();
                let outcome = match request.send().await {
                    Ok(response) => {
                        let status = response.status();
                        response.bytes().await.map(|body| (status, body.len() as u64))
                    }
                    Err(error) => Err(error),
                };
                let elapsed = began.elapsed();
                let mut figures = figures[which].lock().expect("figures");
                figures.latencies.push(elapsed);
                match outcome {
                    Ok((StatusCode::NOT_MODIFIED, bytes)) => {
                        figures.not_modified += 1;
                        figures.body_bytes += bytes;
                    }
                    Ok((_, bytes)) => {
                        figures.other += 1;
                        figures.body_bytes += bytes;
                    }
                    Err(_) => figures.other += 1,
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        let achieved = total as f64 / started.elapsed().as_secs_f64();
        println!("\nround {round}: {achieved:.0} requests/s achieved");
        println!(
            "{:<70} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6} {:>7}",
            "route", "p50 ms", "p90 ms", "p99 ms", "max ms", "304", "other", "bytes"
        );
        let mut all = Vec::new();
        for (route, figures) in routes.iter().zip(figures.iter()) {
            let mut figures = figures.lock().expect("figures");
            figures.latencies.sort_unstable();
            all.extend_from_slice(&figures.latencies);
            let at = |fraction: f64| percentile_ms(&figures.latencies, fraction);
            println!(
                "{route:<70} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>7} {:>6} {:>7}",
                at(0.5),
                at(0.9),
                at(0.99),
                at(1.0),
                figures.not_modified,
                figures.other,
                figures.body_bytes
            );
        }
        all.sort_unstable();
        println!(
            "{:<70} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
            "all routes",
            percentile_ms(&all, 0.5),
            percentile_ms(&all, 0.9),
            percentile_ms(&all, 0.99),
            percentile_ms(&all, 1.0)
        );
    }
    Ok(())
}
