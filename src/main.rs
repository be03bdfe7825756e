//! The `modelcat` command line: `serve` runs the server; `bench` measures it.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use modelcat::Application;
use modelcat::config::{LogFormat, Overrides, Settings};

/// mimalloc: glibc malloc showed up as a fifth of the CPU time of list requests under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Measures modelcat and prints the figures.
    #[command(subcommand)]
    Bench(Bench),
}

#[derive(Subcommand)]
enum Bench {
    /// Seeds a registry and measures register, get, find and filtered list over HTTP.
    Registry(modelcat::bench::registry::RegistryBench),
    /// Generates YAML catalogs and measures search, facets, filter options, hot reload and load time.
    Catalog(modelcat::bench::catalog::CatalogBench),
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => {
            let settings = Settings::load(Overrides {
                config: args.config,
                listen: args.listen,
                database_url: args.database_url,
                data_dir: args.data_dir,
                log_format: args.log_format,
                sources: (!args.sources.is_empty()).then_some(args.sources),
            })?;
            modelcat::telemetry::init_tracing(settings.log_format);
            Application::build(settings).await?.run_until_stopped().await?;
        }
        Command::Bench(Bench::Registry(bench)) => {
            modelcat::telemetry::init_tracing(LogFormat::Text);
            modelcat::bench::registry::run_registry(bench).await?;
        }
        Command::Bench(Bench::Catalog(bench)) => {
            modelcat::telemetry::init_tracing(LogFormat::Text);
            modelcat::bench::catalog::run_catalog(bench).await?;
        }
    }
    Ok(())
}
