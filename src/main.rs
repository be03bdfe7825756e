//! The `modelcat` command line: `serve` runs the server; `mirror` syncs and moves the Hugging Face
//! mirror; `bench` measures; `fake-hub` serves the in-repo stand-in for the Hub (tests and benchmarks).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use modelcat::Application;
use modelcat::config::{LogFormat, Overrides, Settings};

/// mimalloc: glibc malloc showed up as a fifth of the CPU time of list requests under load.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (v2 and v3); the Rust binding does not name it.
#[cfg(feature = "mimalloc")]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes mimalloc return freed memory to the system at once instead of after its default delay (1 s).
///
/// The index writer starts new worker threads at every commit, and each allocates and frees several
/// megabytes of tables. Under a steady write load, memory freed that way was not returned: the heap grew
/// by about 8 MB a minute (`modelcat bench soak`) while heaptrack saw the live heap under 40 MB. Purging
/// at once removed most of that growth, at a throughput cost on write-heavy loads (README, Memory and
/// resources). `MIMALLOC_PURGE_DELAY` in the environment overrides this.
#[cfg(feature = "mimalloc")]
#[allow(unsafe_code)]
fn purge_freed_memory_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets an integer option (no pointers); mimalloc reads its options atomically.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
}

/// `mi_option_allow_thp` in mimalloc.h (v3).
#[cfg(all(feature = "mimalloc", target_os = "linux"))]
const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

/// Keeps transparent huge pages out of the heap. mimalloc advises the kernel to back its arenas with
/// 2 MiB pages, and the kernel's `khugepaged` then collapses sparsely used 2 MiB ranges into whole huge
/// pages, filling in the 64 KiB pieces mimalloc had returned: under a steady load the heap's huge pages
/// went from 2–10 MB to 16–28 MB within 12 minutes (`modelcat bench soak`). mimalloc's own switch
/// (`MIMALLOC_ALLOW_THP=0`) is read before `main` runs, so the process asks the kernel itself; setting
/// `MIMALLOC_ALLOW_THP` in the environment keeps mimalloc's choice instead.
#[cfg(all(feature = "mimalloc", target_os = "linux"))]
#[allow(unsafe_code)]
fn disable_transparent_huge_pages() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return;
    }
    // SAFETY: prctl(PR_SET_THP_DISABLE) and mi_option_set take integers only (no pointers).
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        libmimalloc_sys::mi_option_set(MI_OPTION_ALLOW_THP, 0);
    }
}

#[derive(Parser)]
#[command(name = "modelcat", version, about = "A federated catalog and registry for ML models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the server.
    Serve(ServeArgs),
    /// Mirrors Hugging Face Hub metadata: sync once, export and import bundles.
    #[command(subcommand)]
    Mirror(modelcat::mirror::cli::MirrorCommand),
    /// Creates, lists and revokes API tokens.
    #[command(subcommand)]
    Token(modelcat::auth::cli::TokenCommand),
    /// Creates, lists, deletes and rotates webhook subscriptions, and shows their deliveries.
    #[command(subcommand)]
    Webhook(modelcat::webhooks::cli::WebhookCommand),
    /// Verifies the audit log's hash chain and signed checkpoints.
    #[command(subcommand)]
    Audit(modelcat::audit::cli::AuditCommand),
    /// Exports a model version's signed evidence bundle, and verifies one offline.
    #[command(subcommand)]
    Evidence(modelcat::governance::cli::EvidenceCommand),
    /// Measures modelcat and prints the figures.
    #[command(subcommand)]
    Bench(Bench),
    /// Serves a fake Hugging Face Hub (deterministic models, injectable faults) for tests and benchmarks.
    FakeHub(FakeHubArgs),
    /// Exits 0 when a server's `/healthz` answers 200 (a container's HEALTHCHECK: the image has no curl).
    Healthcheck {
        /// The URL to probe.
        #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
    },
}

#[derive(clap::Args)]
struct FakeHubArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Generated models (gen/model-NNNNN) besides the fixtures.
    #[arg(long, default_value_t = 0)]
    models: usize,
    /// Largest page of /api/models.
    #[arg(long, default_value_t = 1000)]
    page_size: usize,
    /// Answer every n-th request with 500.
    #[arg(long, default_value_t = 0)]
    error_every: u64,
    /// Answer every n-th request with 429 and Retry-After: 1.
    #[arg(long, default_value_t = 0)]
    rate_limit_every: u64,
}

#[derive(Subcommand)]
enum Bench {
    /// Seeds a registry and measures register, get, find and filtered list over HTTP.
    Registry(modelcat::bench::registry::RegistryBench),
    /// Generates YAML catalogs and measures search, facets, filter options, hot reload and load time.
    Catalog(modelcat::bench::catalog::CatalogBench),
    /// Syncs models from the fake Hub and measures sync throughput and the Hub-compatible API.
    Hf(modelcat::bench::hf::HfBench),
    /// Runs several replicas on one PostgreSQL database and measures convergence lag, register
    /// throughput and lease failover.
    Replicas(modelcat::bench::replicas::ReplicasBench),
    /// Runs two instances, one following the other's change feed, and measures initial sync, lag and
    /// catch-up after a restart.
    Peers(modelcat::bench::peers::PeersBench),
    /// Generates YAML catalogs and measures time to the first /healthz and to ready, fresh and restarted.
    Startup(modelcat::bench::startup::StartupBench),
    /// Runs a steady mixed load against a child server and samples its heap, descriptors, tasks, index
    /// segments and WAL, to show they stay flat.
    Soak(modelcat::bench::soak::SoakBench),
    /// Sends a polling platform's conditional requests (If-None-Match) at a fixed rate against unchanged
    /// data and measures latencies, 304s and body bytes per route.
    Polling(modelcat::bench::polling::PollingBench),
    /// Generates YAML catalogs and measures the web UI's search fragment, search page and model pages,
    /// from a separate process.
    Ui(modelcat::bench::ui::UiBench),
    /// Times lifecycle transitions and reviews over HTTP from a separate process, the gates, and webhook
    /// delivery throughput to a local receiver.
    Governance(modelcat::bench::governance::GovernanceBench),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Configuration file [default: config/modelcat.yaml, if present].
    #[arg(long, env = "MODELCAT_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 0.0.0.0:8080].
    #[arg(long, env = "MODELCAT_LISTEN")]
    listen: Option<String>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: sqlite://<data-dir>/registry.db].
    #[arg(long, env = "MODELCAT_DATABASE_URL")]
    database_url: Option<String>,
    /// Directory for runtime data [default: data].
    #[arg(long, env = "MODELCAT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "MODELCAT_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// Catalog sources file (Kubeflow sources.yaml); repeat to layer several, later ones winning
    /// [default: config/sources.yaml, if present].
    #[arg(long = "sources", env = "MODELCAT_SOURCES", value_delimiter = ',')]
    sources: Vec<PathBuf>,
    /// The absolute URL clients reach this server at, for Hub API `Link` headers [default: from Host].
    #[arg(long, env = "MODELCAT_PUBLIC_BASE_URL")]
    public_base_url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    #[cfg(feature = "mimalloc")]
    purge_freed_memory_at_once();
    #[cfg(all(feature = "mimalloc", target_os = "linux"))]
    disable_transparent_huge_pages();
    modelcat::install_crypto_provider();
    match Cli::parse().command {
        Command::Serve(args) => {
            let settings = Settings::load(Overrides {
                config: args.config,
                listen: args.listen,
                database_url: args.database_url,
                data_dir: args.data_dir,
                log_format: args.log_format,
                sources: (!args.sources.is_empty()).then_some(args.sources),
                public_base_url: args.public_base_url,
                admin_token: std::env::var("MODELCAT_ADMIN_TOKEN").ok().filter(|token| !token.is_empty()),
            })?;
            modelcat::telemetry::init_tracing(settings.log_format);
            Application::build(settings).await?.run_until_stopped().await?;
        }
        Command::Healthcheck { url } => {
            let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(3)).build()?;
            let status = client.get(&url).send().await?.status();
            anyhow::ensure!(status.is_success(), "{url} answered {status}");
        }
        Command::Bench(Bench::Registry(bench)) => {
            modelcat::telemetry::init_tracing(LogFormat::Text);
            modelcat::bench::registry::run_registry(bench).await?;
        }
        Command::Bench(Bench::Catalog(bench)) => {
            modelcat::telemetry::init_tracing(LogFormat::Text);
            modelcat::bench::catalog::run_catalog(bench).await?;
        }
        Command::Bench(Bench::Hf(bench)) => {
            modelcat::telemetry::init_tracing(LogFormat::Text);
            modelcat::bench::hf::run_hf(bench).await?;
        }
        Command::Bench(Bench::Replicas(bench)) => {
            modelcat::telemetry::init_tracing(LogFormat::Text);
            modelcat::bench::replicas::run_replicas(bench).await?;
        }
        Command::Bench(Bench::Startup(bench)) => {
            modelcat::telemetry::init_tracing(LogFormat::Text);
            modelcat::bench::startup::run_startup(bench).await?;
        }
        Command::Bench(Bench::Soak(bench)) => {
            modelcat::telemetry::init_tracing(LogFormat::Text);
            modelcat::bench::soak::run_soak(bench).await?;
        }
        Command::Bench(Bench::Ui(bench)) => {
            modelcat::telemetry::init_tracing(LogFormat::Text);
            modelcat::bench::ui::run_ui(bench).await?;
        }
        Command::Bench(Bench::Governance(bench)) => {
            modelcat::telemetry::init_tracing(LogFormat::Text);
            modelcat::bench::governance::run_governance(bench).await?;
        }
        Command::Bench(Bench::Polling(bench)) => {
            modelcat::telemetry::init_tracing(LogFormat::Text);
            modelcat::bench::polling::run_polling(bench).await?;
        }
        Command::Bench(Bench::Peers(bench)) => {
            modelcat::telemetry::init_tracing(LogFormat::Text);
            modelcat::bench::peers::run_peers(bench).await?;
        }
        Command::Token(command) => modelcat::auth::cli::run(command).await?,
        Command::Audit(command) => modelcat::audit::cli::run(command).await?,
        Command::Evidence(command) => modelcat::governance::cli::run(command).await?,
        Command::Webhook(command) => modelcat::webhooks::cli::run(command).await?,
        Command::Mirror(command) => {
            modelcat::telemetry::init_tracing(LogFormat::Text);
            modelcat::mirror::cli::run(command).await?;
        }
        Command::FakeHub(args) => {
            modelcat::telemetry::init_tracing(LogFormat::Text);
            let hub = modelcat::fake_hub::FakeHub::new(args.models, args.page_size);
            hub.faults().server_error_every.store(args.error_every, std::sync::atomic::Ordering::Relaxed);
            hub.faults().rate_limit_every.store(args.rate_limit_every, std::sync::atomic::Ordering::Relaxed);
            let listener = tokio::net::TcpListener::bind(&args.listen).await?;
            let (url, task) = hub.serve(listener).await?;
            println!("fake Hub listening on {url}");
            tokio::select! {
                _ = task => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
    }
    Ok(())
}

#[cfg(all(test, feature = "mimalloc"))]
mod tests {
    /// Option 15 is the purge delay: its default is mimalloc's (1000 ms in v3), and it takes a value.
    #[test]
    #[allow(unsafe_code)]
    fn the_purge_delay_option_is_the_one_set() {
        // SAFETY: reads and sets an integer option (no pointers).
        let (default, set) = unsafe {
            let default = libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY);
            libmimalloc_sys::mi_option_set(super::MI_OPTION_PURGE_DELAY, 0);
            (default, libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY))
        };
        assert_eq!((default, set), (1000, 0));
    }

    /// Option 43 is `allow_thp` (on by default on Linux), between `page_cross_thread_max_reclaim` (32)
    /// and `minimal_purge_size` (0); once huge pages are disabled, the kernel reports them off.
    #[cfg(target_os = "linux")]
    #[test]
    #[allow(unsafe_code)]
    fn transparent_huge_pages_are_disabled() {
        // SAFETY: reads integer options and the process's THP flag (no pointers).
        let neighbours =
            unsafe { [42, super::MI_OPTION_ALLOW_THP, 44].map(|option| libmimalloc_sys::mi_option_get(option)) };
        assert_eq!(neighbours, [32, 1, 0]);
        super::disable_transparent_huge_pages();
        // SAFETY: as above.
        let (allowed, disabled) = unsafe {
            (
                libmimalloc_sys::mi_option_get(super::MI_OPTION_ALLOW_THP),
                libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0),
            )
        };
        assert_eq!((allowed, disabled), (0, 1));
    }
}
