//! `modelcat bench replicas`: several `modelcat serve` processes on one PostgreSQL database.
//!
//! The replicas are child processes of this one (this binary's `serve`), so the load generator and the
//! servers are separate processes, as users run them; all share the machine's cores. It measures:
//! - register throughput (model + version + artifact) with every writer on one replica, the only one
//!   running, then with the writers spread over all replicas;
//! - convergence lag, in a third run of the spread load: from a registration's acknowledgement to the
//!   model being served by the catalog of every *other* replica (sampled writes, probed every 10 ms on
//!   every other replica, one probe at a time, so probing stays a small part of the load);
//! - failover of the Hub source's lease after `kill -9` of its holder, and after a graceful stop.
//!
//! The bench creates its own database on the given server and drops it at the end.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::json;
use tokio::sync::Mutex;

use super::registry::post;
use super::server::Server as Replica;
use super::{Load, Outcome, header, scenario};

/// Parameters of a replicas benchmark run.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplicasBench {
    /// A PostgreSQL server URL (e.g. postgres://postgres@127.0.0.1:5432/postgres); the bench creates a
    /// database there and drops it afterwards.
    #[arg(long, env = "MODELCAT_TEST_POSTGRES_URL")]
    pub database_url: String,
    /// Replicas to run.
    #[arg(long, default_value_t = 3)]
    pub replicas: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 8)]
    pub writers: usize,
    /// Seconds per throughput scenario.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Probe every n-th registration for convergence lag (skipped while a probe runs).
    #[arg(long, default_value_t = 5)]
    pub sample_every: u64,
    /// Lease time of the Hub source (failover after a crash waits for it).
    #[arg(long, default_value_t = 5000)]
    pub lease_ttl_ms: u64,
    /// Failovers to measure of each kind.
    #[arg(long, default_value_t = 3)]
    pub failovers: usize,
}

/// Runs the benchmark and prints its figures.
pub async fn run_replicas(bench: ReplicasBench) -> anyhow::Result<()> {
    let name = format!("modelcat_bench_{}", uuid::Uuid::new_v4().simple());
    let (server, _) = bench.database_url.rsplit_once('/').context("the database URL needs a path")?;
    let admin = sqlx::PgPool::connect(&bench.database_url).await.context("connecting to PostgreSQL")?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&admin).await?;
    let root = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&root)?;
    let outcome = run_on(&bench, &format!("{server}/{name}"), &root).await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")))
        .execute(&admin)
        .await?;
    admin.close().await;
    let _ = std::fs::remove_dir_all(&root);
    outcome
}

/// What the writers share.
struct Writers {
    client: reqwest::Client,
    /// Registry base URLs, one per replica written to.
    targets: Vec<String>,
    /// Catalog base URLs of every replica, for probes.
    catalogs: Vec<String>,
    created: AtomicU64,
    /// Probe every n-th write; 0 probes none.
    sample_every: u64,
    /// Probes running; sampling skips writes while [`MAX_PROBES`] run, so probes never become the load.
    probes: AtomicU64,
    /// Convergence lags of sampled writes (ms), and how many never converged within the probe's limit.
    lags: Mutex<(Vec<f64>, u64)>,
}

async fn run_on(bench: &ReplicasBench, database_url: &str, root: &Path) -> anyhow::Result<()> {
    crate::install_crypto_provider();
    let client = super::client(Some(super::server::bench_admin_token()), 64)?;
    let hub = crate::fake_hub::FakeHub::new(200, 100);
    let (hub_url, _hub_task) = hub.serve(tokio::net::TcpListener::bind("127.0.0.1:0").await?).await?;
    let sources = format!(
        "model_catalogs:\n  - id: hub\n    name: Hub\n    type: hf\n    includedModels: [gen/*]\n    \
         properties: {{url: \"{hub_url}\", syncInterval: 1h}}\n"
    );
    println!(
        "modelcat bench replicas: {} replicas on one PostgreSQL database, {} writers, {}s per scenario; \
         servers are child processes, the load generator is this process (all on this machine)",
        bench.replicas, bench.writers, bench.duration
    );
    let mut replicas = vec![Replica::start(root, "r1", database_url, &sources, bench.lease_ttl_ms)?];
    replicas[0].ready(&client).await?;
    let load = Load { concurrency: bench.writers, duration: bench.duration };
    header();
    let single = registrations(&client, &replicas, &replicas[..1], load, None, "register flow, 1 replica").await;

    for number in 2..=bench.replicas {
        replicas.push(Replica::start(root, &format!("r{number}"), database_url, &sources, bench.lease_ttl_ms)?);
    }
    for replica in &replicas {
        replica.ready(&client).await?;
    }
    let spread = registrations(&client, &replicas, &replicas, load, None, "register flow, spread").await;
    println!(
        "  spread over {} replicas: {:.0}% of the single replica's throughput",
        bench.replicas,
        100.0 * spread.rate() / single.rate().max(f64::MIN_POSITIVE)
    );
    let sample_every = Some(bench.sample_every.max(1));
    registrations(&client, &replicas, &replicas, load, sample_every, "register flow, spread, probed").await;

    println!("\nfailover of the Hub source's lease (lease time {} ms)", bench.lease_ttl_ms);
    for graceful in [false, true] {
        let mut times = Vec::new();
        for _ in 0..bench.failovers {
            times.push(failover(&client, &mut replicas, graceful).await?);
            let restarted = replicas.iter_mut().find(|replica| !replica.running()).context("a stopped replica")?;
            restarted.launch()?;
            restarted.ready(&client).await?;
        }
        let label = if graceful { "after a graceful stop" } else { "after kill -9" };
        let shown: Vec<String> = times.iter().map(|time| format!("{:.0} ms", time.as_secs_f64() * 1000.0)).collect();
        println!("  {label:<24} {}", shown.join(", "));
    }
    Ok(())
}

/// Register flows from the load's writers spread over `targets`, printed; with `sample_every`, every
/// n-th is probed for on every other replica of `all` and the convergence lags are printed too.
async fn registrations(
    client: &reqwest::Client,
    all: &[Replica],
    targets: &[Replica],
    load: Load,
    sample_every: Option<u64>,
    name: &'static str,
) -> Outcome {
    let context = Arc::new(Writers {
        client: client.clone(),
        targets: targets.iter().map(|replica| format!("{}/api/model_registry/v1alpha3", replica.address)).collect(),
        catalogs: all.iter().map(|replica| format!("{}/api/model_catalog/v1alpha1", replica.address)).collect(),
        created: AtomicU64::new(0),
        sample_every: sample_every.unwrap_or(0),
        probes: AtomicU64::new(0),
        lags: Mutex::new((Vec::new(), 0)),
    });
    let outcome = scenario(load, name, context.clone(), |context, _| async move {
        let index = context.created.fetch_add(1, Ordering::Relaxed);
        let target = (index as usize) % context.targets.len();
        let base = &context.targets[target];
        let model_name = format!("flow-{}-{index}", uuid::Uuid::new_v4().simple());
        let model = post(&context.client, &format!("{base}/registered_models"), json!({"name": model_name})).await?;
        let acknowledged = Instant::now();
        let sampled = context.sample_every > 0 && index % context.sample_every == 0 && context.catalogs.len() > 1;
        if sampled && context.probes.fetch_add(1, Ordering::AcqRel) < MAX_PROBES {
            tokio::spawn(probe(context.clone(), target, model_name, acknowledged));
        } else if sampled {
            context.probes.fetch_sub(1, Ordering::AcqRel);
        }
        let version =
            post(&context.client, &format!("{base}/registered_models/{model}/versions"), json!({"name": "v1"})).await?;
        let artifact = json!({"artifactType": "model-artifact", "uri": "s3://bench/model"});
        post(&context.client, &format!("{base}/model_versions/{version}/artifacts"), artifact).await?;
        Ok(())
    })
    .await;
    outcome.print();
    // Let the last probes finish before the next scenario.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (mut lags, lost) = std::mem::take(&mut *context.lags.lock().await);
    if !lags.is_empty() {
        lags.sort_by(f64::total_cmp);
        let at = |fraction: f64| lags[((lags.len() as f64 * fraction).ceil() as usize).clamp(1, lags.len()) - 1];
        println!(
            "  convergence to every other replica: {} samples, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms{}",
            lags.len(),
            at(0.5),
            at(0.99),
            lags[lags.len() - 1],
            if lost > 0 { format!(", {lost} not seen within 10 s") } else { String::new() }
        );
    }
    outcome
}

/// Probes in flight at most.
const MAX_PROBES: u64 = 1;
/// How often a probe asks.
const PROBE_INTERVAL: Duration = Duration::from_millis(10);

/// Polls the catalog of every replica but the writer's until each serves `name`; records the slowest.
async fn probe(context: Arc<Writers>, writer: usize, name: String, acknowledged: Instant) {
    probe_replicas(&context, writer, &name, acknowledged).await;
    context.probes.fetch_sub(1, Ordering::AcqRel);
}

async fn probe_replicas(context: &Writers, writer: usize, name: &str, acknowledged: Instant) {
    let mut slowest = Duration::ZERO;
    for (replica, catalog) in context.catalogs.iter().enumerate() {
        if replica == writer {
            continue;
        }
        let url = format!("{catalog}/sources/registry/models/{name}");
        loop {
            if acknowledged.elapsed() > Duration::from_secs(10) {
                context.lags.lock().await.1 += 1;
                return;
            }
            if let Ok(response) = context.client.get(&url).send().await
                && response.status().is_success()
            {
                slowest = slowest.max(acknowledged.elapsed());
                break;
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }
    context.lags.lock().await.0.push(slowest.as_secs_f64() * 1000.0);
}

/// Stops the lease holder (`kill -9`, or gracefully) and returns how long until another replica holds
/// the lease.
async fn failover(client: &reqwest::Client, replicas: &mut [Replica], graceful: bool) -> anyhow::Result<Duration> {
    const LEASE: &str = "hf:hub";
    let deadline = Instant::now() + Duration::from_secs(60);
    let holder = loop {
        let mut found = None;
        for (position, replica) in replicas.iter().enumerate() {
            if replica.holds(client, LEASE).await {
                found = Some(position);
            }
        }
        if let Some(found) = found {
            break found;
        }
        if Instant::now() > deadline {
            bail!("no replica took the Hub source's lease");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stopped = Instant::now();
    if graceful {
        replicas[holder].terminate();
    } else {
        replicas[holder].kill();
    }
    loop {
        for (position, replica) in replicas.iter().enumerate() {
            if position != holder && replica.holds(client, LEASE).await {
                return Ok(stopped.elapsed());
            }
        }
        if stopped.elapsed() > Duration::from_secs(120) {
            bail!("no replica took over the lease");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
