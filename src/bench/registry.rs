//! `modelcat bench registry`: seeds a store and measures the registry API over HTTP.
//!
//! Seeding goes through [`RegistryStore`] directly (the same code path as the API, minus HTTP): `models`
//! registered models, each with `versions` versions, every model and version carrying five typed custom
//! properties. The server then runs in this process on a loopback port, and `concurrency` HTTP clients
//! (also in this process, so client cost is included in the figures) run each scenario for
//! `duration` seconds:
//!
//! - register flow: create a model, a version under it, and a model artifact under that (3 POSTs);
//! - get by id: `GET /registered_models/{random id}`;
//! - find by name: `GET /registered_model?name=…`;
//! - filtered list of 100: `GET /registered_models?pageSize=100&filterQuery=team = '…' AND layers > 4`.
//!
//! Clients send an editor API token (a real one, looked up like any other); `--no-auth` turns
//! authentication off, to measure what it costs.
//!
//! Each scenario prints throughput and p50/p90/p99 latency. Nothing is asserted: these are measurements.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::{Load, Random, expect_ok, header, scenario};
use serde_json::json;

use crate::app::Application;
use crate::auth::AuthSettings;
use crate::auth::tokens::{self, NewToken};
use crate::config::{ApiSettings, LogFormat, Settings};
use crate::registry::schema::{MODEL_VERSION, REGISTERED_MODEL};
use crate::registry::{self, Attach, Draft, MetaValue, Properties, RegistryStore, Scalar};

/// Parameters of a registry benchmark run.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryBench {
    /// Registered models to seed.
    #[arg(long, default_value_t = 100_000)]
    pub models: u64,
    /// Versions per model.
    #[arg(long, default_value_t = 3)]
    pub versions: u64,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Seconds per scenario.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Database to seed [default: a fresh SQLite file in a temporary directory]. A PostgreSQL URL must
    /// name an empty database.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Serves without authentication (to compare with the default, API tokens).
    #[arg(long)]
    pub no_auth: bool,
}

const TEAMS: u64 = 20;

fn properties(seed: u64) -> Properties {
    Properties::from([
        ("team".to_owned(), MetaValue::String(format!("team-{:02}", seed % TEAMS))),
        ("layers".to_owned(), MetaValue::Int((seed % 48) as i64 + 1)),
        ("accuracy".to_owned(), MetaValue::Double((seed % 1000) as f64 / 1000.0)),
        ("production".to_owned(), MetaValue::Bool(seed.is_multiple_of(3))),
        (
            "framework".to_owned(),
            MetaValue::String(["pytorch", "onnx", "tensorflow", "jax"][(seed % 4) as usize].to_owned()),
        ),
    ])
}

/// Runs the benchmark and prints its figures.
pub async fn run_registry(bench: RegistryBench) -> anyhow::Result<()> {
    let temp = std::env::temp_dir().join(format!("modelcat-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&temp)?;
    let database_url =
        bench.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", temp.join("registry.db").display()));
    let outcome = run_against(&bench, &database_url, &temp).await;
    let _ = std::fs::remove_dir_all(&temp);
    outcome
}

async fn run_against(bench: &RegistryBench, database_url: &str, temp: &std::path::Path) -> anyhow::Result<()> {
    let store = registry::open(database_url).await.context("opening the bench store")?;
    let backend = if database_url.starts_with("sqlite") { "SQLite" } else { "PostgreSQL" };
    println!(
        "modelcat bench registry: {backend}, {} models x {} versions, 5 custom properties each",
        bench.models, bench.versions
    );
    let seeded = seed(&store, bench).await?;
    println!(
        "seeded {} entities in {:.1}s ({:.0} creates/s)",
        seeded.0,
        seeded.1.as_secs_f64(),
        seeded.0 as f64 / seeded.1.as_secs_f64()
    );
    drop(store);

    let settings = Settings {
        public_base_url: None,
        replication: Default::default(),
        hub_cache_bytes: crate::mirror::DEFAULT_CACHE_BYTES,
        auth: if bench.no_auth { AuthSettings::off() } else { AuthSettings::default() },
        audit_checkpoint_interval: std::time::Duration::from_secs(60),
        audit_retention: None,
        webhooks: Default::default(),
        trusted_keys: Vec::new(),
        listen: "127.0.0.1:0".into(),
        database_url: database_url.to_owned(),
        data_dir: temp.join("data"),
        api: ApiSettings::default(),
        reset_endpoint: false,
        log_format: LogFormat::Text,
        catalog: crate::catalog::CatalogSettings::new(&temp.join("data"), Vec::new()),
    };
    let application = Application::build(settings).await?;
    application.catalog().progress().wait().await;
    let base = format!("http://127.0.0.1:{}/api/model_registry/v1alpha3", application.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until(async {
        let _ = stopped.await;
    }));
    let token = if bench.no_auth {
        None
    } else {
        let backend = crate::store::connect(database_url).await?;
        let token = NewToken {
            name: "bench".into(),
            role: crate::auth::Role::Editor,
            expires_at: None,
            created_by: "bench".into(),
            models: None,
            sources: None,
        };
        Some(tokens::create(&*backend, &token).await?.1)
    };
    let client = super::client(token.as_ref().map(|token| token.expose()), bench.concurrency * 2)?;
    println!(
        "\n{} concurrent clients over HTTP, {}s per scenario (client and server share this machine), auth {}",
        bench.concurrency,
        bench.duration,
        if bench.no_auth { "off" } else { "on (an editor token)" }
    );
    header();
    let load = Load { concurrency: bench.concurrency, duration: bench.duration };

    let context = Arc::new(Context { client, base, models: bench.models.max(1), created: AtomicU64::new(0) });
    scenario(load, "register flow (3 POSTs)", context.clone(), |context, _| async move {
        let index = context.created.fetch_add(1, Ordering::Relaxed);
        let base = &context.base;
        let model_body = json!({"name": format!("bench-flow-{index}"), "owner": "bench"});
        let model = post(&context.client, &format!("{base}/registered_models"), model_body).await?;
        let version_body = json!({"name": "v1", "author": "bench"});
        let version =
            post(&context.client, &format!("{base}/registered_models/{model}/versions"), version_body).await?;
        let artifact_body =
            json!({"artifactType": "model-artifact", "uri": "s3://bench/model", "modelFormatName": "onnx"});
        post(&context.client, &format!("{base}/model_versions/{version}/artifacts"), artifact_body).await?;
        Ok(())
    })
    .await
    .print();

    scenario(load, "get by id", context.clone(), |context, seed| async move {
        let id = Random(seed).below(context.models) + 1;
        expect_ok(context.client.get(format!("{}/registered_models/{id}", context.base)).send().await?).await
    })
    .await
    .print();

    scenario(load, "find by name", context.clone(), |context, seed| async move {
        let name = format!("model-{:06}", Random(seed).below(context.models));
        let request = context.client.get(format!("{}/registered_model", context.base)).query(&[("name", name)]);
        expect_ok(request.send().await?).await
    })
    .await
    .print();

    scenario(load, "filtered list of 100", context.clone(), |context, seed| async move {
        let filter = format!("team = 'team-{:02}' AND layers > 4", Random(seed).below(TEAMS));
        let request = context
            .client
            .get(format!("{}/registered_models", context.base))
            .query(&[("pageSize", "100"), ("filterQuery", filter.as_str())]);
        // A list body ends with its item count; checking that suffix verifies the page without spending
        // the shared cores on parsing 100 items on the client side.
        let body = request.send().await?.bytes().await?;
        if !body.ends_with(br#""size":100}"#) {
            bail!(
                "expected a page of 100 items, got {}",
                String::from_utf8_lossy(&body[body.len().saturating_sub(40)..])
            );
        }
        Ok(())
    })
    .await
    .print();

    let _ = stop.send(());
    let _ = server.await;
    Ok(())
}

/// Seeds models and versions with `concurrency` writers; returns the entity count and the time taken.
async fn seed(store: &Arc<dyn RegistryStore>, bench: &RegistryBench) -> anyhow::Result<(u64, Duration)> {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let report_every = (bench.models / 10).max(1);
    let mut workers = Vec::new();
    for _ in 0..bench.concurrency.max(1) {
        let store = store.clone();
        let next = next.clone();
        let (models, versions) = (bench.models, bench.versions);
        workers.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= models {
                    return anyhow::Ok(());
                }
                let model = Draft {
                    values: [
                        ("name", Scalar::Text(format!("model-{index:06}"))),
                        ("owner", Scalar::Text("seed".into())),
                    ]
                    .into(),
                    properties: Some(properties(index)),
                };
                let model = store.create(&REGISTERED_MODEL, model, Attach::Nothing).await?;
                for version in 0..versions {
                    let draft = Draft {
                        values: [
                            ("name", Scalar::Text(format!("v{version}"))),
                            ("registeredModelId", Scalar::Int(model.id)),
                        ]
                        .into(),
                        properties: Some(properties(index * 7 + version)),
                    };
                    store.create(&MODEL_VERSION, draft, Attach::Nothing).await?;
                }
                if (index + 1).is_multiple_of(report_every) {
                    eprintln!("  seeded {} of {models} models ({:.0}s)", index + 1, started.elapsed().as_secs_f64());
                }
            }
        }));
    }
    for worker in workers {
        worker.await??;
    }
    Ok((bench.models * (1 + bench.versions), started.elapsed()))
}

/// POSTs `body` and returns the created entity's id.
pub(super) async fn post(client: &reqwest::Client, url: &str, body: serde_json::Value) -> anyhow::Result<String> {
    let response = client.post(url).json(&body).send().await?;
    let status = response.status();
    let body: serde_json::Value = response.json().await?;
    if !status.is_success() {
        bail!("POST {url}: {status} {body}");
    }
    Ok(body["id"].as_str().unwrap_or_default().to_owned())
}

/// What the scenario workers share.
struct Context {
    client: reqwest::Client,
    base: String,
    models: u64,
    created: AtomicU64,
}
