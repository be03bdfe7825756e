//! `modelcat bench governance`: lifecycle steps (transitions and reviews) over HTTP from this process
//! against a `modelcat serve` child process; the gates' evaluation in process; and webhook delivery
//! throughput from the server to a receiver in this process.
//!
//! Each client walks its own versions through the whole lifecycle (submit, approve, `approved_staging`,
//! `staging`, approve, `approved_prod`, `production`, `deprecated`, `retired`) with a second user's
//! reviews, and starts a new version when one is retired (that setup is not timed). Every step is one
//! committed change with its audit entry and event.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::server::Server;
use super::{Outcome, Scratch, expect_ok, header};
use crate::governance::lifecycle::{RiskTier, State};
use crate::governance::policy::{ArtifactFacts, Ask, Engine, EvaluationFacts, Facts, SignatureFacts};
use crate::governance::signatures::{self, Resource};

#[derive(Debug, clap::Args)]
pub struct GovernanceBench {
    /// Concurrent clients walking versions through the lifecycle.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Seconds of lifecycle steps.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Events whose webhook delivery is timed.
    #[arg(long, default_value_t = 2000)]
    pub events: usize,
    /// `postgres://…` to measure on PostgreSQL [default: SQLite in a scratch directory].
    #[arg(long)]
    pub database_url: Option<String>,
}

/// One step of the walk: a transition to this state, or a review.
const WALK: [Option<&str>; 9] = [
    Some("submitted"),
    None,
    Some("approved_staging"),
    Some("staging"),
    None,
    Some("approved_prod"),
    Some("production"),
    Some("deprecated"),
    Some("retired"),
];

struct Users {
    submitter: reqwest::Client,
    reviewer: reqwest::Client,
    address: String,
    /// A signature bundle over the artifact every version has.
    bundle: Vec<u8>,
}

pub async fn run_governance(bench: GovernanceBench) -> anyhow::Result<()> {
    let scratch = Scratch::new("governance")?;
    let database_url =
        bench.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", scratch.0.join("registry.db").display()));
    // Production needs a passing evaluation and a signature by a trusted key: each version gets both.
    let (key, public_pem) = signatures::generate_key();
    let key_file = scratch.0.join("release.pub");
    std::fs::write(&key_file, public_pem)?;
    let config = format!(
        "webhooks:\n  allowed_networks: [\"127.0.0.0/8\"]\n  poll_interval_ms: 20\ngovernance:\n  trusted_keys:\n    \
         - {{id: release, public_key_file: {:?}}}\n",
        key_file.display().to_string()
    );
    let mut server =
        Server::start_configured(&scratch.0, "governance", &database_url, "catalogs: []\n", 15_000, &config)?;
    let admin = server.client(16)?;
    server.ready(&admin).await?;
    let users = Arc::new(Users {
        submitter: super::client(Some(&token(&admin, &server.address, "submitter").await?), 16)?,
        reviewer: super::client(Some(&token(&admin, &server.address, "reviewer").await?), 16)?,
        address: server.address.clone(),
        bundle: signatures::sign(&key, &[Resource { name: "weights".to_owned(), digest: "ab".repeat(32) }]),
    });
    let suite = json!({"metrics": [{"name": "accuracy", "category": "task", "direction": "higher_is_better",
        "thresholds": {"low": 0.5, "medium": 0.7, "high": 0.9}}]});
    let suite_url = format!("{}/api/governance/v1/evaluation_suites/quality", server.address);
    expect_ok(admin.put(suite_url).json(&suite).send().await?).await?;
    println!(
        "governance: {} clients for {} s, {} webhook events, on {}",
        bench.concurrency,
        bench.duration,
        bench.events,
        if database_url.starts_with("sqlite") { "SQLite" } else { "PostgreSQL" }
    );
    let (url, received) = receiver().await?;
    // Every lifecycle step is delivered to a catch-all subscription meanwhile, as in production.
    let everything = post(&admin, format!("{}/api/modelcat/v1/webhooks", users.address), json!({"url": url})).await?;
    header();
    let (transitions, reviews) = lifecycle(&users, bench.concurrency, bench.duration).await?;
    transitions.print();
    reviews.print();
    println!("  ({} webhook deliveries of lifecycle events arrived meanwhile)", received.load(Ordering::Relaxed));
    let subscription =
        format!("{}/api/modelcat/v1/webhooks/{}", users.address, everything["id"].as_str().unwrap_or("0"));
    expect_ok(admin.delete(subscription).send().await?).await?;
    policy_timing();
    received.store(0, Ordering::Relaxed);
    webhooks(&admin, &users, &url, &received, bench.events).await?;
    server.terminate();
    Ok(())
}

async fn token(admin: &reqwest::Client, address: &str, name: &str) -> anyhow::Result<String> {
    let response = admin
        .post(format!("{address}/api/modelcat/v1/tokens"))
        .json(&json!({"name": name, "role": "editor"}))
        .send()
        .await?;
    let body: Value = response.error_for_status()?.json().await?;
    Ok(body["token"].as_str().context("a token")?.to_owned())
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> anyhow::Result<Value> {
    let response = client.post(&url).json(&body).send().await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("POST {url}: {status} {body}");
    }
    Ok(body)
}

/// A model of one client's, open to the reviewer.
async fn model(users: &Users, worker: usize) -> anyhow::Result<String> {
    let registry = format!("{}/api/model_registry/v1", users.address);
    let body = json!({"name": format!("bench-{worker}-{}", uuid::Uuid::new_v4().simple()), "license": "apache-2.0"});
    let model = post(&users.submitter, format!("{registry}/registered_models"), body).await?;
    let id = model["id"].as_str().context("a model id")?.to_owned();
    let grant = format!("{}/api/modelcat/v1/registered_models/{id}/permissions/user:token:reviewer", users.address);
    expect_ok(users.submitter.put(grant).json(&json!({"level": "edit"})).send().await?).await?;
    Ok(id)
}

/// A version with one complete model artifact, a passing evaluation and a verified signature.
async fn version(users: &Users, model: &str, number: usize) -> anyhow::Result<String> {
    let registry = format!("{}/api/model_registry/v1", users.address);
    let body = json!({"name": format!("v{number}"), "registeredModelId": model});
    let version = post(&users.submitter, format!("{registry}/model_versions"), body).await?;
    let id = version["id"].as_str().context("a version id")?.to_owned();
    let artifact = json!({
        "artifactType": "model-artifact", "name": "weights", "uri": format!("s3://bench/{model}/{number}"),
        "customProperties": {
            "sha256": {"metadataType": "MetadataStringValue", "string_value": "ab".repeat(32)},
            "size": {"metadataType": "MetadataIntValue", "int_value": "1024"},
        },
    });
    post(&users.submitter, format!("{registry}/model_versions/{id}/artifacts"), artifact).await?;
    let governance = format!("{}/api/governance/v1/model_versions/{id}", users.address);
    let evaluation = json!({"suite": "quality", "datasetDigest": format!("sha256:{}", "cd".repeat(32)),
        "results": [{"metric": "accuracy", "value": 0.8}]});
    post(&users.submitter, format!("{governance}/evaluations"), evaluation).await?;
    let signed = users.submitter.post(format!("{governance}/signatures")).body(users.bundle.clone()).send().await?;
    expect_ok(signed).await?;
    Ok(id)
}

/// Walks versions through the lifecycle from `concurrency` clients for `duration` seconds.
async fn lifecycle(users: &Arc<Users>, concurrency: usize, duration: u64) -> anyhow::Result<(Outcome, Outcome)> {
    let deadline = Instant::now() + Duration::from_secs(duration);
    let mut workers = Vec::new();
    for worker in 0..concurrency.max(1) {
        let users = users.clone();
        workers.push(tokio::spawn(async move {
            let governance = format!("{}/api/governance/v1", users.address);
            let model = model(&users, worker).await?;
            let (mut transitions, mut reviews, mut errors) = (Vec::new(), Vec::new(), 0u64);
            let mut number = 0;
            while Instant::now() < deadline {
                number += 1;
                let version = version(&users, &model, number).await?;
                for step in WALK {
                    let started = Instant::now();
                    let result = match step {
                        Some(to) => {
                            post(
                                &users.submitter,
                                format!("{governance}/model_versions/{version}/transitions"),
                                json!({"to": to}),
                            )
                            .await
                        }
                        None => {
                            post(
                                &users.reviewer,
                                format!("{governance}/model_versions/{version}/reviews"),
                                json!({"decision": "approve"}),
                            )
                            .await
                        }
                    };
                    let elapsed = started.elapsed();
                    match (result, step) {
                        (Ok(_), Some(_)) => transitions.push(elapsed),
                        (Ok(_), None) => reviews.push(elapsed),
                        (Err(error), _) => {
                            if errors == 0 {
                                eprintln!("  lifecycle: {error:#}");
                            }
                            errors += 1;
                            break;
                        }
                    }
                }
            }
            anyhow::Ok((transitions, reviews, errors))
        }));
    }
    let started = Instant::now();
    let mut transitions =
        Outcome { name: "transition (HTTP)", latencies: Vec::new(), errors: 0, elapsed: Duration::ZERO };
    let mut reviews = Outcome { name: "review (HTTP)", latencies: Vec::new(), errors: 0, elapsed: Duration::ZERO };
    for worker in workers {
        let (moved, reviewed, errors) = worker.await??;
        transitions.latencies.extend(moved);
        reviews.latencies.extend(reviewed);
        transitions.errors += errors;
    }
    // Both rates are over the whole run, during which both kinds of steps interleave.
    let elapsed = started.elapsed();
    transitions.elapsed = elapsed;
    reviews.elapsed = elapsed;
    transitions.latencies.sort_unstable();
    reviews.latencies.sort_unstable();
    Ok((transitions, reviews))
}

/// Times the default Cedar policies, in process, on a high-risk model's moves with ten artifacts:
/// submission, approval and production, all allowed, and a production move refused for a failing
/// evaluation.
fn policy_timing() {
    let artifact = |index: usize| ArtifactFacts {
        name: format!("shard-{index}"),
        sha256: Some("ab".repeat(32)),
        size: Some("1024".to_owned()),
        license: None,
    };
    let facts = Facts {
        risk_tier: RiskTier::High,
        model_license: Some("apache-2.0".to_owned()),
        approvals: 2,
        artifacts: (0..10).map(artifact).collect(),
        evaluations: EvaluationFacts { required: 6, ..EvaluationFacts::default() },
        signatures: SignatureFacts { verified: 1, ..SignatureFacts::default() },
        ..Facts::default()
    };
    let mut failing = facts.clone();
    failing.evaluations.failed.push("safety/toxicity is 0.2, above the maximum 0.01".to_owned());
    let engine = Engine::new();
    let policies = engine.builtin();
    let moves = [State::Submitted, State::ApprovedProd, State::Production];
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(100_000);
    for round in 0..100_000 {
        let (target, facts, allowed) = match round % 4 {
            3 => (State::Production, &failing, false),
            step => (moves[step], &facts, true),
        };
        let call = Instant::now();
        let verdict = engine.decide(&policies, "bench", 1, &Ask::Transition(target), std::hint::black_box(facts));
        latencies.push(call.elapsed());
        assert_eq!(verdict.allowed, allowed, "{verdict:?}");
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let micros = |fraction: f64| super::percentile_ms(&latencies, fraction) * 1000.0;
    println!(
        "policies (Cedar, in process, {}): {:.0} decisions/s, p50 {:.1} µs, p99 {:.1} µs",
        policies.version,
        latencies.len() as f64 / elapsed.as_secs_f64(),
        micros(0.50),
        micros(0.99)
    );
}

/// A webhook receiver in this process: its URL and the count of deliveries it got.
async fn receiver() -> anyhow::Result<(String, Arc<AtomicUsize>)> {
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            std::future::ready(axum::http::StatusCode::NO_CONTENT)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://127.0.0.1:{}/hook", listener.local_addr()?.port());
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok((url, received))
}

/// Subscribes the receiver to model updates, makes `events` of them, and times their delivery.
async fn webhooks(
    admin: &reqwest::Client,
    users: &Users,
    url: &str,
    received: &AtomicUsize,
    events: usize,
) -> anyhow::Result<()> {
    let subscription = json!({"url": url, "eventTypes": ["registered_model.updated"]});
    post(admin, format!("{}/api/modelcat/v1/webhooks", users.address), subscription).await?;
    let model = model(users, usize::MAX).await?;
    let patch = format!("{}/api/model_registry/v1/registered_models/{model}", users.address);
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for _ in 0..4 {
        let (client, patch, next) = (users.submitter.clone(), patch.clone(), next.clone());
        writers.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < events {
                let response = client.patch(&patch).json(&json!({"description": "bench"})).send().await?;
                expect_ok(response).await?;
            }
            anyhow::Ok(())
        }));
    }
    for writer in writers {
        writer.await??;
    }
    let committed = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    while received.load(Ordering::Relaxed) < events {
        if Instant::now() > deadline {
            bail!("only {} of {events} deliveries arrived", received.load(Ordering::Relaxed));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let delivered = started.elapsed();
    println!(
        "webhooks: {events} events committed in {:.2} s ({:.0}/s); all delivered after {:.2} s ({:.0} deliveries/s), \
         the last {:.0} ms after the last commit",
        committed.as_secs_f64(),
        events as f64 / committed.as_secs_f64(),
        delivered.as_secs_f64(),
        events as f64 / delivered.as_secs_f64(),
        (delivered - committed).as_secs_f64() * 1000.0
    );
    Ok(())
}
