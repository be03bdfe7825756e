//! `modelcat bench peers`: two instances, B following A through A's change feed, as child processes (each
//! with its own SQLite store); the load generator is this process.
//!
//! A takes `--records` generated records from a synthetic peer this process serves (a snapshot, then an
//! idle feed), so A holds a large catalog without a slow setup. Then it measures:
//! - A's ingest of that snapshot, and B's initial sync of it from A (records per second, from B's start
//!   to B's status counting every record), and the snapshot's bytes per record;
//! - lag: a registration acknowledged by A until B's catalog serves it (sampled one at a time);
//! - catch-up: B stopped while A registers `--catch-up` models, then restarted: time to ready and to
//!   serving all of them, and the feed's bytes per record over that gap.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::StreamExt as _;
use serde_json::{Value, json};

use super::server::Server;
use crate::federation::wire::{Event, Page, SnapshotEnd, SnapshotLine};
use modelcat_sources::{ArtifactCommon, ArtifactKind, ArtifactRecord, MetadataValue, ModelRecord};

/// Parameters of a peers benchmark run.
#[derive(Debug, Clone, clap::Args)]
pub struct PeersBench {
    /// Records B syncs initially.
    #[arg(long, default_value_t = 100_000)]
    pub records: usize,
    /// Registrations sampled for lag.
    #[arg(long, default_value_t = 200)]
    pub samples: usize,
    /// Registrations made on A while B is stopped.
    #[arg(long, default_value_t = 2000)]
    pub catch_up: usize,
}

const CATALOG: &str = "/api/model_catalog/v1alpha1";
const REGISTRY: &str = "/api/model_registry/v1alpha3";

/// A generated record, about the size of a real catalog entry with one artifact.
fn record(number: usize) -> ModelRecord {
    let mut properties = std::collections::BTreeMap::new();
    properties.insert("size".to_owned(), MetadataValue::String(format!("{}B", number % 70 + 1)));
    properties.insert("downloads".to_owned(), MetadataValue::Int((number * 37 % 100_000) as i64));
    ModelRecord {
        name: format!("gen/model-{number:07}"),
        description: Some(format!("Generated model {number} for the peers benchmark, with a short description.")),
        provider: Some(format!("provider-{}", number % 50)),
        license: Some(["apache-2.0", "mit", "llama3"][number % 3].to_owned()),
        tasks: vec!["text-generation".to_owned()],
        language: vec!["en".to_owned()],
        create_time: Some(1_700_000_000_000 + number as i64),
        update_time: Some(1_700_000_000_000 + number as i64),
        properties,
        artifacts: vec![ArtifactRecord {
            kind: ArtifactKind::Model { uri: format!("oci://registry.example.com/gen/model-{number}:1") },
            common: ArtifactCommon::default(),
        }],
        ..ModelRecord::default()
    }
}

/// Serves a synthetic modelcat feed: a snapshot of `records` records, then nothing new.
async fn synthetic_peer(records: usize) -> anyhow::Result<String> {
    use axum::body::{Body, Bytes};
    use axum::routing::get;
    let cursor = "benchpeer.0";
    let snapshot = move || async move {
        let chunks = futures_util::stream::iter(0..records.div_ceil(1000)).map(move |chunk| {
            let mut text = Vec::new();
            for number in chunk * 1000..((chunk + 1) * 1000).min(records) {
                let event = Event::Upsert {
                    source: "generated".into(),
                    name: format!("gen/model-{number:07}"),
                    record: Box::new(record(number)),
                    origin: vec![modelcat_sources::peer::Hop {
                        instance: "benchpeer".into(),
                        source: "generated".into(),
                    }],
                };
                serde_json::to_writer(&mut text, &SnapshotLine::Record(event)).expect("serializes");
                text.push(b'\n');
            }
            if (chunk + 1) * 1000 >= records {
                let end = SnapshotEnd { cursor: cursor.into(), count: records as u64, instance: "benchpeer".into() };
                serde_json::to_writer(&mut text, &SnapshotLine::End { end }).expect("serializes");
                text.push(b'\n');
            }
            Ok::<_, std::io::Error>(Bytes::from(text))
        });
        Body::from_stream(chunks)
    };
    let changes = move || async move {
        tokio::time::sleep(Duration::from_secs(20)).await;
        axum::Json(Page { changes: Vec::new(), cursor: cursor.into(), instance: "benchpeer".into() })
    };
    let router = axum::Router::new()
        .route("/api/modelcat/v1/snapshot", get(snapshot))
        .route("/api/modelcat/v1/changes", get(changes));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(address)
}

fn peer_source(id: &str, url: &str, all: bool) -> String {
    let sources = if all { "\n      sources: [\"*\"]" } else { "" };
    format!(
        "model_catalogs:\n  - id: {id}\n    name: {id}\n    type: peer\n    properties:\n      url: {url}\n      \
         syncInterval: 1s\n      tokenEnv: MODELCAT_ADMIN_TOKEN{sources}\n"
    )
}

/// How many models `source` serves on `server`, per its status.
async fn served(client: &reqwest::Client, server: &Server, source: &str) -> Option<u64> {
    let status: Value =
        client.get(format!("{}{CATALOG}/status", server.address)).send().await.ok()?.json().await.ok()?;
    let sources = status["sources"].as_array()?;
    sources.iter().find(|entry| entry["id"] == source)?["models"].as_u64()
}

/// Waits until `source` on `server` serves `count` models; returns the time it took.
async fn until_served(
    client: &reqwest::Client,
    server: &Server,
    source: &str,
    count: u64,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if served(client, server, source).await == Some(count) {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{} never served {count} models in {source} (see {})", server.id, server.dir.join("modelcat.log").display())
}

async fn register(client: &reqwest::Client, server: &Server, name: &str) -> anyhow::Result<()> {
    let response = client
        .post(format!("{}{REGISTRY}/registered_models", server.address))
        .json(&json!({"name": name}))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("registering {name}: {}", response.status());
    }
    Ok(())
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    let index = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
    sorted.get(index).copied().unwrap_or(f64::NAN)
}

/// Runs the benchmark and prints its figures.
pub async fn run_peers(bench: PeersBench) -> anyhow::Result<()> {
    crate::install_crypto_provider();
    let scratch = super::Scratch::new("peers")?;
    run_in(&bench, &scratch.0).await
}

async fn run_in(bench: &PeersBench, root: &std::path::Path) -> anyhow::Result<()> {
    let client = super::client(Some(super::server::bench_admin_token()), 8)?;
    let sqlite = |id: &str| format!("sqlite://{}", root.join(format!("{id}.db")).display());
    println!(
        "modelcat bench peers: B follows A; {} records, {} lag samples, {} registrations during a restart; \
         servers are child processes with their own SQLite stores, the load generator is this process",
        bench.records, bench.samples, bench.catch_up
    );
    let generator = synthetic_peer(bench.records).await?;
    let started = Instant::now();
    let a = Server::start(root, "a", &sqlite("a"), &peer_source("generated", &generator, false), 5000)?;
    a.ready(&client).await?;
    let ingest = until_served(&client, &a, "generated", bench.records as u64, Duration::from_secs(1800)).await?;
    let ingest = started.elapsed().max(ingest);
    println!(
        "A ingests a {}-record snapshot: {:.1} s, {:.0} records/s (process start to searchable)",
        bench.records,
        ingest.as_secs_f64(),
        bench.records as f64 / ingest.as_secs_f64()
    );

    let snapshot =
        client.get(format!("{}/api/modelcat/v1/snapshot?sources=*", a.address)).send().await?.bytes().await?;
    println!("snapshot bytes per record: {:.0}", snapshot.len() as f64 / bench.records as f64);

    let started = Instant::now();
    let mut b = Server::start(root, "b", &sqlite("b"), &peer_source("a", &a.address, true), 5000)?;
    b.ready(&client).await?;
    let synced = until_served(&client, &b, "a", bench.records as u64, Duration::from_secs(1800)).await?;
    let synced = started.elapsed().max(synced);
    println!(
        "B's initial sync from A: {:.1} s, {:.0} records/s (process start to searchable)",
        synced.as_secs_f64(),
        bench.records as f64 / synced.as_secs_f64()
    );

    let mut lags = Vec::with_capacity(bench.samples);
    for sample in 0..bench.samples {
        let name = format!("lag-{sample:05}");
        register(&client, &a, &name).await?;
        let acknowledged = Instant::now();
        let probe = format!("{}{CATALOG}/sources/a/models/{name}", b.address);
        loop {
            if client.get(&probe).send().await?.status().is_success() {
                break;
            }
            if acknowledged.elapsed() > Duration::from_secs(30) {
                bail!("{name} never reached B");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        lags.push(acknowledged.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lags.sort_by(f64::total_cmp);
    println!(
        "lag, A's acknowledgement to searchable on B ({} samples): p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        lags.len(),
        percentile(&lags, 0.5),
        percentile(&lags, 0.9),
        percentile(&lags, 0.99),
        percentile(&lags, 1.0)
    );

    // Catch-up: B away while A registers.
    let cursor = feed_head(&client, &a).await?;
    b.terminate();
    let client = Arc::new(client);
    let mut writers = Vec::new();
    for writer in 0..8 {
        let (client, address, count) = (client.clone(), a.address.clone(), bench.catch_up);
        writers.push(tokio::spawn(async move {
            for number in (writer..count).step_by(8) {
                let body = json!({"name": format!("gap-{number:06}")});
                client.post(format!("{address}{REGISTRY}/registered_models")).json(&body).send().await?;
            }
            Ok::<_, reqwest::Error>(())
        }));
    }
    for writer in writers {
        writer.await.context("writer")??;
    }
    let bytes = feed_bytes(&client, &a, &cursor).await?;
    let expected = (bench.records + bench.samples + bench.catch_up) as u64;
    let restarted = Instant::now();
    b.launch()?;
    b.ready(&client).await?;
    let ready = restarted.elapsed();
    until_served(&client, &b, "a", expected, Duration::from_secs(600)).await?;
    let caught_up = restarted.elapsed();
    println!(
        "catch-up after a restart ({} registrations missed): ready in {:.2} s, all served in {:.2} s ({:.0} records/s)",
        bench.catch_up,
        ready.as_secs_f64(),
        caught_up.as_secs_f64(),
        bench.catch_up as f64 / caught_up.as_secs_f64()
    );
    println!("feed bytes per record over the gap: {:.0}", bytes as f64 / bench.catch_up as f64);
    Ok(())
}

/// A's feed head, from an empty page.
async fn feed_head(client: &reqwest::Client, a: &Server) -> anyhow::Result<String> {
    let snapshot =
        client.get(format!("{}/api/modelcat/v1/snapshot?sources=none", a.address)).send().await?.text().await?;
    let end: Value = serde_json::from_str(snapshot.lines().last().unwrap_or_default())?;
    Ok(end["end"]["cursor"].as_str().context("snapshot end")?.to_owned())
}

/// The bytes of every feed page after `cursor` (the registry's changes), as a consumer reads them.
async fn feed_bytes(client: &reqwest::Client, a: &Server, cursor: &str) -> anyhow::Result<usize> {
    let (mut cursor, mut total) = (cursor.to_owned(), 0);
    loop {
        let url = format!("{}/api/modelcat/v1/changes?since={cursor}&limit=2000&wait=1&sources=registry", a.address);
        let body = client.get(url).send().await?.bytes().await?;
        total += body.len();
        let page: Page = serde_json::from_slice(&body)?;
        if page.changes.is_empty() {
            return Ok(total);
        }
        cursor = page.cursor;
    }
}
