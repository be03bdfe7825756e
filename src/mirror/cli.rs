//! `modelcat mirror …`: sync a Hub into the store once, and move a mirror between machines.
//!
//! - `mirror hf --include 'org/*' …` syncs like an `hf` source would (same patterns, same client), with a
//!   progress bar and a summary; it exits non-zero when a listing or some models failed (what was
//!   mirrored is kept, and a re-run fetches only what is missing or changed).
//! - `mirror export FILE` writes every mirrored repo into one compressed bundle ([`super::bundle`]).
//! - `mirror import FILE` verifies a bundle whole, then loads it.
//!
//! Each command opens the database the server would use (`--config`, `--database-url`, `--data-dir`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use modelcat_sources::NameFilter;
use modelcat_sources::hf::HfParams;
use serde_json::Value as Json;

use super::Mirror;
use super::hub::RetryPolicy;
use super::store::MirrorStore;
use super::sync::Progress;
use crate::config::StoreArgs;

/// Opens the mirror in the store the server would use.
async fn open(store: StoreArgs) -> anyhow::Result<Mirror> {
    Ok(Mirror::open(MirrorStore::new(store.connect().await?)).await?)
}

#[derive(Debug, clap::Subcommand)]
pub enum MirrorCommand {
    /// Syncs models from a Hugging Face Hub into the store once.
    Hf(HfArgs),
    /// Writes the whole mirror to one compressed, checksummed bundle.
    Export {
        /// The bundle to write.
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Verifies a bundle, then loads it into the store (replacing repos already there).
    Import {
        /// The bundle to read.
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, clap::Args)]
pub struct HfArgs {
    /// Models to mirror: `org/model`, `org/*` or `org/prefix*` (repeatable).
    #[arg(long = "include", required = true)]
    include: Vec<String>,
    /// Models to leave out (`*` wildcards; repeatable).
    #[arg(long = "exclude")]
    exclude: Vec<String>,
    /// The Hub [default: https://huggingface.co].
    #[arg(long, env = "HF_ENDPOINT")]
    url: Option<String>,
    /// Small files to mirror besides README.md and safetensors headers [default: config.json,
    /// generation_config.json, tokenizer_config.json].
    #[arg(long, value_delimiter = ',')]
    files: Vec<String>,
    /// Requests in flight.
    #[arg(long, default_value_t = modelcat_sources::hf::DEFAULT_CONCURRENCY)]
    concurrency: usize,
    /// The source the repos are mirrored under (a catalog `hf` source with this id serves them too).
    #[arg(long, default_value = "cli")]
    source_id: String,
    /// The environment variable holding a Hub token (`hf_…`).
    #[arg(long, default_value = modelcat_sources::hf::DEFAULT_API_KEY_ENV_VAR)]
    api_key_env_var: String,
    #[command(flatten)]
    store: StoreArgs,
}

pub async fn run(command: MirrorCommand) -> anyhow::Result<()> {
    match command {
        MirrorCommand::Hf(args) => sync_once(args).await,
        MirrorCommand::Export { file, store } => {
            let mirror = open(store).await?;
            let bar = counter(mirror.listing.len() as u64, "exporting");
            let started = Instant::now();
            let summary = super::bundle::export(&mirror, &file, &|done| bar.set_position(done)).await?;
            bar.finish_and_clear();
            let size = std::fs::metadata(&file).map(|meta| meta.len()).unwrap_or_default();
            println!(
                "exported {} repos ({} files, {} bytes of content) to {} ({size} bytes) in {:.1} s",
                summary.repos,
                summary.files,
                summary.bytes,
                file.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        MirrorCommand::Import { file, store } => {
            let mirror = open(store).await?;
            let bar = counter(0, "importing");
            let started = Instant::now();
            let summary =
                super::bundle::import(&mirror, &file, &|done| bar.set_position(done)).await.with_context(|| {
                    format!("cannot import {}; the store was not changed by an invalid bundle", file.display())
                })?;
            bar.finish_and_clear();
            println!(
                "verified and imported {} repos ({} files, {} bytes of content) in {:.1} s",
                summary.repos,
                summary.files,
                summary.bytes,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
    }
}

async fn sync_once(args: HfArgs) -> anyhow::Result<()> {
    let mut properties = BTreeMap::new();
    if let Some(url) = &args.url {
        properties.insert("url".to_owned(), Json::from(url.as_str()));
    }
    if !args.files.is_empty() {
        properties.insert("files".to_owned(), Json::from(args.files.clone()));
    }
    properties.insert("maxConcurrency".to_owned(), Json::from(args.concurrency));
    properties.insert("apiKeyEnvVar".to_owned(), Json::from(args.api_key_env_var.as_str()));
    let (params, included, excluded) =
        HfParams::parse(&properties, &args.include, &args.exclude).map_err(|error| anyhow::anyhow!(error))?;
    let filter = NameFilter::new(&included, &excluded)?;
    let mirror = open(args.store).await?;
    let bar = counter(0, "syncing");
    bar.set_message(format!("listing {}", params.url));
    let report = mirror
        .sync(
            &args.source_id,
            &params,
            &filter,
            RetryPolicy::default(),
            &|progress| match progress {
                Progress::Listed(total) => {
                    bar.set_length(total as u64);
                    bar.set_message("fetching");
                }
                Progress::Done(done) => bar.set_position(done as u64),
            },
            None,
        )
        .await?;
    bar.finish_and_clear();
    println!("{}", report.summary());
    for (repo_id, error) in report.failed.iter().take(10) {
        println!("  failed: {repo_id}: {error}");
    }
    if report.failed.len() > 10 {
        println!("  … and {} more", report.failed.len() - 10);
    }
    if let Some(problem) = &report.problem {
        anyhow::bail!("{problem}; nothing mirrored was removed");
    }
    if !report.failed.is_empty() {
        anyhow::bail!(
            "{} models failed; their last mirrored copy (if any) is kept: re-run to retry",
            report.failed.len()
        );
    }
    Ok(())
}

/// A progress bar that draws only on a terminal.
fn counter(length: u64, message: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(length);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(message);
    bar
}
