//! `modelcat bench soak`: a steady mixed load on a fixed working set, against a `modelcat serve` child
//! process, sampling the server's resources to show whether they stay flat.
//!
//! The server runs the sample catalogs (`--catalogs`), a Hub source mirrored from a fake Hub that this
//! process serves (`--hub-models` models), and `--models` registered models. `--clients` workers then
//! loop for `--minutes` over a mix of registry reads and patches, catalog searches with facets, filter
//! options, sources, catalog lists, and the Hub-compatible listing and model info. Nothing new is
//! created after the setup: whatever grows is held by the server, not asked for.
//!
//! Every `--sample-seconds` it prints one row: the server's heap (`RssAnon`) and file-backed memory
//! (`RssFile`) and open descriptors (all read from `/proc`), tokio tasks, index segments and mapped index
//! files, SQLite database and WAL bytes and cache bytes (read from the server's `/metrics`), and the interval's request rate and
//! latencies. At the end it prints each series' least-squares slope after `--warm-up-minutes`, and p99
//! latency in the first and second half of that span.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::server::{Server, metric_sum};
use super::{Random, expect_ok};
use crate::fake_hub::FakeHub;
use crate::telemetry::resources::Process;

/// Parameters of a soak run.
#[derive(Debug, Clone, clap::Args)]
pub struct SoakBench {
    /// How long the load runs, in minutes.
    #[arg(long, default_value_t = 30.0)]
    pub minutes: f64,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Registered models, patched and read at random.
    #[arg(long, default_value_t = 200)]
    pub models: usize,
    /// Models the fake Hub serves and the server mirrors.
    #[arg(long, default_value_t = 200)]
    pub hub_models: usize,
    /// Seconds between samples.
    #[arg(long, default_value_t = 15)]
    pub sample_seconds: u64,
    /// Minutes left out of the slopes (caches fill, the allocator settles) [default: 5, at most a third
    /// of the run].
    #[arg(long)]
    pub warm_up_minutes: Option<f64>,
    /// The sample catalogs to serve.
    #[arg(long, default_value = "catalogs")]
    pub catalogs: std::path::PathBuf,
}

const REGISTRY: &str = "/api/model_registry/v1alpha3";
const CATALOG: &str = "/api/model_catalog/v1alpha1";

/// The searches clients pick from: a fixed set, so any growth is not the working set's.
const QUERIES: [&str; 12] =
    ["llama", "granite", "chat", "instruct", "code", "vision", "embedding", "small", "model", "gen", "mistral", "soak"];

/// One sample of the server's resources and the interval's requests.
struct Sample {
    minutes: f64,
    figures: BTreeMap<&'static str, f64>,
    /// Successful requests per second.
    rate: f64,
    errors: u64,
    p50: f64,
    p99: f64,
}

/// The window of the heap's lows in the summary.
const LOW_WINDOW_MINUTES: f64 = 2.0;

/// The series a row shows: name, unit divisor, column header.
const SERIES: [(&str, f64, &str); 9] = [
    ("heap", 1e6, "heap MB"),
    ("file", 1e6, "file MB"),
    ("fds", 1.0, "fds"),
    ("tasks", 1.0, "tasks"),
    ("segments", 1.0, "segments"),
    ("mapped", 1.0, "idx files"),
    ("db", 1e6, "DB MB"),
    ("wal", 1e6, "WAL MB"),
    ("caches", 1e6, "caches MB"),
];

/// Latencies and errors since the last sample.
#[derive(Default)]
struct Interval {
    latencies: Vec<Duration>,
    errors: u64,
}

struct Context {
    client: reqwest::Client,
    base: String,
    model_ids: Vec<String>,
    hub_models: usize,
}

pub async fn run_soak(bench: SoakBench) -> anyhow::Result<()> {
    crate::install_crypto_provider();
    let scratch = super::Scratch::new("soak")?;
    run_in(&bench, &scratch.0).await
}

async fn run_in(bench: &SoakBench, root: &std::path::Path) -> anyhow::Result<()> {
    let hub = FakeHub::new(bench.hub_models, 1000);
    let (hub_url, _hub_task) = hub.serve(tokio::net::TcpListener::bind("127.0.0.1:0").await?).await?;
    let sources = super::sample_sources(&bench.catalogs, &hub_url)?;
    // The database outside the directory of the sources file, which the server watches (as by default:
    // config/ and data/).
    let database = format!("sqlite://{}", root.join("registry.db").display());
    let server = Server::start(root, "s", &database, &sources, 15_000)?;
    let client = server.client(64)?;
    server.ready(&client).await?;
    let base = server.address.clone();
    let pid = server.pid().context("the server is not running")?;

    let model_ids = register(&client, &base, bench.models).await?;
    wait_for_hub(&client, &base, bench.hub_models).await?;
    let context =
        Arc::new(Context { client: client.clone(), base: base.clone(), model_ids, hub_models: bench.hub_models });
    println!(
        "modelcat bench soak: {} clients for {} min; {} registered models, {} mirrored Hub models, the sample \
         catalogs; server pid {pid} (a child process)",
        bench.clients, bench.minutes, bench.models, bench.hub_models
    );

    let interval = Arc::new(Mutex::new(Interval::default()));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(bench.minutes * 60.0);
    let workers: Vec<_> = (0..bench.clients.max(1))
        .map(|worker| tokio::spawn(work(context.clone(), interval.clone(), deadline, worker as u64)))
        .collect();

    print!("{:>7}", "minute");
    for (_, _, header) in SERIES {
        print!(" {header:>9}");
    }
    println!(" {:>8} {:>8} {:>8} {:>6}", "req/s", "p50 ms", "p99 ms", "errors");
    let mut samples = vec![sample(&client, &base, pid, 0.0, Interval::default(), 1.0).await];
    print_row(&samples[0]);
    let every = Duration::from_secs(bench.sample_seconds.max(1));
    let mut next = started + every;
    while next <= deadline {
        tokio::time::sleep_until(next.into()).await;
        let taken = std::mem::take(&mut *interval.lock().expect("interval"));
        let minutes = started.elapsed().as_secs_f64() / 60.0;
        let row = sample(&client, &base, pid, minutes, taken, every.as_secs_f64()).await;
        print_row(&row);
        samples.push(row);
        next += every;
    }
    for worker in workers {
        worker.await?;
    }
    let warm_up = bench.warm_up_minutes.unwrap_or((bench.minutes / 3.0).min(5.0));
    summarize(&samples, warm_up);
    Ok(())
}

/// Registers `count` models and returns their ids.
async fn register(client: &reqwest::Client, base: &str, count: usize) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::with_capacity(count);
    for number in 0..count {
        let body = json!({
            "name": format!("soak-model-{number:04}"),
            "description": "A registered model of the soak benchmark",
            "customProperties": {"team": {"metadataType": "MetadataStringValue", "string_value": format!("team-{}", number % 7)}},
        });
        let response = client.post(format!("{base}{REGISTRY}/registered_models")).json(&body).send().await?;
        let status = response.status();
        let created: Value = response.json().await?;
        let Some(id) = created["id"].as_str() else { bail!("registering a model answered {status}: {created}") };
        ids.push(id.to_owned());
    }
    Ok(ids)
}

/// Waits until the server's Hub listing holds every mirrored model.
async fn wait_for_hub(client: &reqwest::Client, base: &str, models: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let listed: Value = client
            .get(format!("{base}/api/models"))
            .query(&[("search", "gen/"), ("limit", "10000")])
            .send()
            .await?
            .json()
            .await?;
        if listed.as_array().is_some_and(|models_listed| models_listed.len() >= models) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "the Hub mirror never listed {models} models");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One client: picks a request from the mix until the deadline.
async fn work(context: Arc<Context>, interval: Arc<Mutex<Interval>>, deadline: Instant, worker: u64) {
    let mut random = Random(0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(worker + 1));
    while Instant::now() < deadline {
        let started = Instant::now();
        let outcome = request(&context, &mut random).await;
        let mut interval = interval.lock().expect("interval");
        match outcome {
            Ok(()) => interval.latencies.push(started.elapsed()),
            Err(error) => {
                if interval.errors == 0 {
                    eprintln!("  {error:#}");
                }
                interval.errors += 1;
            }
        }
    }
}

/// One request of the mix (weights out of 100).
async fn request(context: &Context, random: &mut Random) -> anyhow::Result<()> {
    let Context { client, base, model_ids, hub_models } = context;
    let id = &model_ids[random.below(model_ids.len() as u64) as usize];
    let query = QUERIES[random.below(QUERIES.len() as u64) as usize];
    let response = match random.below(100) {
        0..20 => client.get(format!("{base}{REGISTRY}/registered_models/{id}")).send().await?,
        20..30 => {
            let description = format!("Patched at {}", random.below(1_000_000));
            client
                .patch(format!("{base}{REGISTRY}/registered_models/{id}"))
                .json(&json!({"description": description}))
                .send()
                .await?
        }
        30..55 => {
            let search =
                [("q", query), ("pageSize", "20"), ("facets", "license"), ("facets", "provider"), ("facets", "tasks")];
            client.get(format!("{base}{CATALOG}/models")).query(&search).send().await?
        }
        55..65 => client.get(format!("{base}{CATALOG}/models/filter_options")).send().await?,
        65..70 => client.get(format!("{base}{CATALOG}/sources")).send().await?,
        70..80 => {
            client
                .get(format!("{base}{CATALOG}/models"))
                .query(&[("pageSize", "20"), ("orderBy", "NAME")])
                .send()
                .await?
        }
        80..95 => client.get(format!("{base}/api/models")).query(&[("search", query), ("limit", "20")]).send().await?,
        _ => {
            let number = random.below(*hub_models as u64);
            client.get(format!("{base}/api/models/gen/model-{number:05}")).send().await?
        }
    };
    expect_ok(response).await
}

/// Reads the server's resources and summarizes the interval's requests.
async fn sample(
    client: &reqwest::Client,
    base: &str,
    pid: u32,
    minutes: f64,
    mut interval: Interval,
    seconds: f64,
) -> Sample {
    let mut figures = BTreeMap::new();
    let process = Process::of(pid);
    for (name, value) in [("heap", process.heap_bytes), ("file", process.file_bytes), ("fds", process.open_fds)] {
        if let Some(value) = value {
            figures.insert(name, value as f64);
        }
    }
    if let Ok(response) = client.get(format!("{base}/metrics")).send().await
        && let Ok(text) = response.text().await
    {
        for (metric, name) in [
            ("modelcat_tokio_alive_tasks", "tasks"),
            ("modelcat_index_segments", "segments"),
            ("modelcat_index_mapped_files", "mapped"),
            ("modelcat_sqlite_db_bytes", "db"),
            ("modelcat_sqlite_wal_bytes", "wal"),
            ("modelcat_cache_bytes", "caches"),
        ] {
            if let Some(value) = metric_sum(&text, metric) {
                figures.insert(name, value);
            }
        }
    }
    interval.latencies.sort_unstable();
    let percentile = |fraction: f64| super::percentile_ms(&interval.latencies, fraction);
    Sample {
        minutes,
        figures,
        rate: interval.latencies.len() as f64 / seconds,
        errors: interval.errors,
        p50: percentile(0.5),
        p99: percentile(0.99),
    }
}

/// The sum of a metric's samples over its labels, from Prometheus text.
fn print_row(sample: &Sample) {
    print!("{:>7.2}", sample.minutes);
    for (name, divisor, _) in SERIES {
        match sample.figures.get(name) {
            Some(value) => print!(" {:>9.1}", value / divisor),
            None => print!(" {:>9}", "-"),
        }
    }
    println!(" {:>8.0} {:>8.2} {:>8.2} {:>6}", sample.rate, sample.p50, sample.p99, sample.errors);
}

/// Prints each series' slope after the warm-up and whether p99 drifted.
fn summarize(samples: &[Sample], warm_up: f64) {
    let settled: Vec<&Sample> = samples.iter().filter(|sample| sample.minutes >= warm_up).collect();
    println!("\nafter the first {warm_up:.1} min ({} samples):", settled.len());
    if settled.len() < 3 {
        println!("  too few samples for a trend: run longer");
        return;
    }
    for (name, divisor, header) in SERIES {
        let points: Vec<(f64, f64)> =
            settled.iter().filter_map(|sample| Some((sample.minutes, sample.figures.get(name)? / divisor))).collect();
        if let Some(slope) = slope(&points) {
            let (first, last) = (points[0].1, points[points.len() - 1].1);
            println!("  {header:<10} {first:>9.1} → {last:>9.1}, slope {:>+8.2} per 10 min", slope * 10.0);
        }
    }
    // Index merges swing the heap by 10-20 MB for seconds at a time; the lowest sample of each 2 minutes
    // shows what stays held between them.
    let mut lows: Vec<(f64, f64)> = Vec::new();
    for sample in &settled {
        let Some(heap) = sample.figures.get("heap") else { continue };
        let window = ((sample.minutes - warm_up) / LOW_WINDOW_MINUTES).floor();
        let at = warm_up + (window + 0.5) * LOW_WINDOW_MINUTES;
        match lows.last_mut() {
            Some((minutes, low)) if *minutes == at => *low = low.min(heap / 1e6),
            _ => lows.push((at, heap / 1e6)),
        }
    }
    if let Some(slope) = slope(&lows) {
        let listed: Vec<String> = lows.iter().map(|(_, low)| format!("{low:.1}")).collect();
        println!(
            "  heap, lowest per {LOW_WINDOW_MINUTES} min: slope {:+.2} per 10 min ({})",
            slope * 10.0,
            listed.join(", ")
        );
    }
    let half = settled.len() / 2;
    let p99 = |part: &[&Sample]| {
        let values: Vec<f64> = part.iter().map(|sample| sample.p99).filter(|value| value.is_finite()).collect();
        values.iter().sum::<f64>() / values.len().max(1) as f64
    };
    let rate = settled.iter().map(|sample| sample.rate).sum::<f64>() / settled.len() as f64;
    let errors: u64 = samples.iter().map(|sample| sample.errors).sum();
    println!(
        "  p99 latency: {:.2} ms in the first half, {:.2} ms in the second (mean of the samples' p99); {rate:.0} req/s; {errors} errors",
        p99(&settled[..half]),
        p99(&settled[half..])
    );
}

/// The least-squares slope of `points` (per x unit).
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mean_x = points.iter().map(|point| point.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|point| point.1).sum::<f64>() / n;
    let covariance: f64 = points.iter().map(|(x, y)| (x - mean_x) * (y - mean_y)).sum();
    let variance: f64 = points.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    (variance > 0.0).then(|| covariance / variance)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_and_of_noise() {
        let line: Vec<(f64, f64)> = (0..10).map(|x| (x as f64, 3.0 + 0.5 * x as f64)).collect();
        assert!((slope(&line).unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(slope(&[(1.0, 2.0)]), None);
    }

    #[test]
    fn metric_sums_over_labels() {
        let text = "# TYPE modelcat_cache_bytes gauge\nmodelcat_cache_bytes{cache=\"facets\"} 100\n\
                    modelcat_cache_bytes{cache=\"hub_repos\"} 23\nmodelcat_cache_bytes_other 5\n";
        assert_eq!(metric_sum(text, "modelcat_cache_bytes"), Some(123.0));
        assert_eq!(metric_sum(text, "modelcat_index_segments"), None);
    }
}
