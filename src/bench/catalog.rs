//! `modelcat bench catalog`: generates synthetic YAML catalogs, serves them, and measures the catalog.
//!
//! The generator writes `models` models spread over `sources` YAML catalogs: realistic names
//! (`org/family-7b-instruct`), providers, tasks, licenses, languages, tags, `readme_words`-word readmes,
//! one model artifact, three performance artifacts and one accuracy artifact each. Then:
//!
//! - full load: the server starts on an empty index and loads every catalog (parse + index + commit);
//!   YAML parsing alone is timed first, and a restart on the intact index (unchanged files are read, not
//!   parsed) is timed after;
//! - `concurrency` HTTP clients run each scenario for `duration` seconds: a `q` search; `q` + two filters +
//!   facet counts; `filter_options` (cached until the index changes);
//! - `edits` YAML edits: one model's description in a catalog gets a new word, the file is saved the way
//!   editors do (write a temporary file, rename it over), and the clock stops when `q` finds the word; after
//!   each edit one `filter_options` call is timed, which recomputes (the edit invalidated the cache);
//! - the server's resident memory (its peak, `VmHWM`, and its current `VmRSS`) after loading, after the
//!   merge, at the end and after the restart.
//!
//! The server is a `modelcat serve` child process and the clients run in this one, as users run them.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::server::Server;
use super::{Load, Outcome, Random, expect_ok, header, scenario};

/// Parameters of a catalog benchmark run.
#[derive(Debug, Clone, clap::Args)]
pub struct CatalogBench {
    /// Models to generate.
    #[arg(long, default_value_t = 100_000)]
    pub models: usize,
    /// YAML catalogs (sources) to spread them over.
    #[arg(long, default_value_t = 50)]
    pub sources: usize,
    /// Words per readme.
    #[arg(long, default_value_t = 300)]
    pub readme_words: usize,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Seconds per scenario.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// YAML edits to time.
    #[arg(long, default_value_t = 20)]
    pub edits: usize,
    /// MCP servers to generate beside the models (the MCP and cross-asset scenarios; 0 skips them).
    #[arg(long, default_value_t = 10_000)]
    pub mcp_servers: usize,
}

const ORGS: &[(&str, &str)] = &[
    ("ibm-granite", "IBM"),
    ("meta-llama", "Meta"),
    ("mistralai", "Mistral AI"),
    ("google", "Google"),
    ("microsoft", "Microsoft"),
    ("qwen", "Alibaba Cloud"),
    ("deepseek-ai", "DeepSeek"),
    ("nvidia", "NVIDIA"),
    ("tiiuae", "TII"),
    ("allenai", "Allen Institute for AI"),
    ("bigcode", "BigCode"),
    ("stabilityai", "Stability AI"),
    ("cohere", "Cohere"),
    ("databricks", "Databricks"),
    ("openbmb", "OpenBMB"),
    ("redhat", "Red Hat"),
    ("snowflake", "Snowflake"),
    ("salesforce", "Salesforce"),
    ("amazon", "Amazon"),
    ("apple", "Apple"),
];
pub(super) const FAMILIES: &[&str] = &[
    "granite",
    "llama",
    "mistral",
    "gemma",
    "phi",
    "qwen",
    "deepseek",
    "nemotron",
    "falcon",
    "olmo",
    "starcoder",
    "stablelm",
    "command",
    "dbrx",
    "minicpm",
    "arctic",
    "codegen",
    "titan",
    "openelm",
    "mixtral",
    "codestral",
    "whisper",
    "bert",
    "roberta",
    "t5",
    "bart",
    "clip",
    "siglip",
    "vit",
    "detr",
    "sam",
    "wav2vec",
    "bloom",
    "pythia",
    "zephyr",
    "vicuna",
    "orca",
    "hermes",
    "yi",
    "internlm",
];
const SIZES: &[&str] = &["0.5b", "1b", "2b", "3b", "7b", "8b", "13b", "14b", "32b", "70b", "base", "large"];
const VARIANTS: &[&str] = &["instruct", "chat", "base", "code", "vision", "embed", "guard", "reasoning", "fp8", "awq"];
pub(super) const TASKS: &[&str] = &[
    "text-generation",
    "text-classification",
    "token-classification",
    "question-answering",
    "summarization",
    "translation",
    "feature-extraction",
    "sentence-similarity",
    "fill-mask",
    "image-classification",
    "object-detection",
    "automatic-speech-recognition",
    "image-text-to-text",
    "text-to-image",
    "code-generation",
];
pub(super) const LICENSES: &[&str] =
    &["apache-2.0", "mit", "llama3.1", "gemma", "cc-by-4.0", "cc-by-nc-4.0", "openrail", "other"];
const LANGUAGES: &[&str] = &["en", "fr", "de", "es", "it", "pt", "zh", "ja", "ko", "ar", "hi", "ru"];
const LIBRARIES: &[&str] = &["transformers", "vllm", "sentence-transformers", "diffusers", "onnx", "gguf"];
const TAGS: &[&str] = &["quantized", "long-context", "multilingual", "tool-use", "safetensors", "moe", "distilled"];
const HARDWARE: &[(&str, f64)] = &[("H100", 1.0), ("A100", 1.6), ("L40S", 2.3), ("MI300X", 1.2)];
const WORDS: &[&str] = &[
    "model",
    "training",
    "tokens",
    "dataset",
    "evaluation",
    "benchmark",
    "accuracy",
    "latency",
    "throughput",
    "inference",
    "quantization",
    "context",
    "window",
    "attention",
    "layers",
    "parameters",
    "fine-tuned",
    "instruction",
    "alignment",
    "safety",
    "license",
    "usage",
    "prompt",
    "response",
    "generation",
    "retrieval",
    "embedding",
    "vector",
    "search",
    "reasoning",
    "math",
    "code",
    "python",
    "rust",
    "java",
    "sql",
    "language",
    "multilingual",
    "english",
    "french",
    "german",
    "chinese",
    "vision",
    "image",
    "audio",
    "speech",
    "transcription",
    "translation",
    "summary",
    "classification",
    "detection",
    "segmentation",
    "deployment",
    "serving",
    "kubernetes",
    "gpu",
    "memory",
    "batch",
    "precision",
    "bfloat16",
    "fp8",
    "int4",
    "weights",
    "checkpoint",
    "architecture",
    "transformer",
    "decoder",
    "encoder",
    "mixture",
    "experts",
    "routing",
    "sparse",
    "dense",
    "distillation",
    "pretraining",
    "corpus",
    "web",
    "books",
    "papers",
    "filtering",
    "deduplication",
    "tokenizer",
    "vocabulary",
    "limitations",
    "bias",
    "risks",
    "responsible",
    "citation",
    "authors",
    "release",
    "version",
    "changelog",
    "hardware",
    "cluster",
    "nodes",
    "accelerators",
    "epochs",
    "learning",
    "rate",
    "schedule",
    "warmup",
    "optimizer",
    "results",
    "table",
    "score",
    "leaderboard",
    "comparison",
    "baseline",
    "improvement",
    "quality",
    "speed",
    "cost",
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "for",
    "with",
    "on",
    "by",
    "is",
    "are",
    "this",
    "that",
    "we",
    "our",
    "it",
];

/// A generated catalog corpus.
pub(super) struct Corpus {
    files: Vec<PathBuf>,
    pub(super) bytes: u64,
}

/// How long a load may take (a million models take minutes on two cores).
pub(super) const LOAD_WITHIN: Duration = Duration::from_secs(3600);

/// Runs the benchmark and prints its figures.
pub async fn run_catalog(bench: CatalogBench) -> anyhow::Result<()> {
    crate::install_crypto_provider();
    let scratch = super::Scratch::new("catalog")?;
    run_in(&bench, &scratch.0).await
}

async fn run_in(bench: &CatalogBench, root: &Path) -> anyhow::Result<()> {
    println!(
        "modelcat bench catalog: {} models in {} YAML catalogs, {}-word readmes, 5 artifacts per model; {} MCP servers",
        bench.models, bench.sources, bench.readme_words, bench.mcp_servers
    );
    let dir = root.join("s");
    std::fs::create_dir_all(&dir)?;
    let started = Instant::now();
    let corpus = generate(bench, &dir)?;
    println!("generated {:.0} MB of YAML in {:.1}s", corpus.bytes as f64 / 1e6, started.elapsed().as_secs_f64());

    let started = Instant::now();
    for file in &corpus.files {
        modelcat_sources::parse_catalog(&std::fs::read(file)?).map_err(anyhow::Error::msg)?;
    }
    println!("YAML parsing alone (in this process): {:.2}s", started.elapsed().as_secs_f64());

    let sources = std::fs::read_to_string(dir.join("sources.yaml"))?;
    let database = format!("sqlite://{}", root.join("registry.db").display());
    let probe = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let started = Instant::now();
    let mut server = Server::start(root, "s", &database, &sources, 5000)?;
    server.ready_within(&probe, LOAD_WITHIN).await?;
    let loaded = started.elapsed();
    println!(
        "full load into an empty index, server a child process (parse + index + commit): {:.2}s; server memory {}",
        loaded.as_secs_f64(),
        server.memory()
    );
    let client = reqwest::Client::builder().pool_max_idle_per_host(bench.concurrency * 2).build()?;
    let base = format!("{}/api/model_catalog/v1alpha1", server.address);
    let started = Instant::now();
    let segments = loop {
        let segments = server.index_segments(&client).await?;
        if segments <= 1 || started.elapsed() > Duration::from_secs(600) {
            break segments;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "background merge of the load's segments: {:.2}s ({segments} left; searches go on meanwhile); server memory {}",
        started.elapsed().as_secs_f64(),
        server.memory()
    );

    let total: serde_json::Value = client.get(format!("{base}/models?pageSize=1")).send().await?.json().await?;
    if total["size"] != 1 {
        bail!("the catalog serves nothing: {total}");
    }
    println!(
        "\n{} concurrent clients over HTTP, {}s per scenario (this process; the server is another)",
        bench.concurrency, bench.duration
    );
    header();
    let load = Load { concurrency: bench.concurrency, duration: bench.duration };
    let context = Arc::new(Bench { client: client.clone(), base: base.clone() });
    scenario(load, "q search", context.clone(), |context, seed| async move {
        let q = query_word(seed);
        expect_ok(context.client.get(format!("{}/models", context.base)).query(&[("q", q.as_str())]).send().await?)
            .await
    })
    .await
    .print();
    scenario(load, "q + 2 filters + facet counts", context.clone(), |context, seed| async move {
        let mut random = Random(seed | 1);
        let q = query_word(seed);
        let filter = format!(
            "license = '{}' AND tasks = '{}'",
            LICENSES[random.below(LICENSES.len() as u64) as usize],
            TASKS[random.below(3) as usize]
        );
        let query = [("q", q.as_str()), ("filterQuery", &filter), ("facets", "license,tasks,provider,language")];
        expect_ok(context.client.get(format!("{}/models", context.base)).query(&query).send().await?).await
    })
    .await
    .print();
    scenario(load, "filter_options (cached)", context.clone(), |context, _| async move {
        expect_ok(context.client.get(format!("{}/models/filter_options", context.base)).send().await?).await
    })
    .await
    .print();
    if bench.mcp_servers > 0 {
        let port = server.address.rsplit(':').next().and_then(|port| port.parse().ok()).context("server port")?;
        super::mcp::scenarios(load, client.clone(), port).await;
    }

    let (edits, options) = edit_latencies(bench, &corpus, &client, &base).await?;
    println!(
        "\n{} YAML edits of a {}-model catalog, save to searchable:",
        bench.edits,
        bench.models / bench.sources.max(1)
    );
    edits.print();
    options.print();
    println!("\nserver memory at the end: {}", server.memory());

    server.terminate();
    let started = Instant::now();
    server.launch()?;
    server.ready_within(&probe, LOAD_WITHIN).await?;
    let restarted = started.elapsed();
    println!(
        "restart on the intact index (every file read, unchanged ones not parsed): {:.2}s; server memory {}",
        restarted.as_secs_f64(),
        server.memory()
    );
    Ok(())
}

struct Bench {
    client: reqwest::Client,
    base: String,
}

/// A search word as users type it: a family name, a task word, or the first letters of one.
pub(super) fn query_word(seed: u64) -> String {
    let mut random = Random(seed | 1);
    let word = match random.below(3) {
        0 => FAMILIES[random.below(FAMILIES.len() as u64) as usize],
        1 => TASKS[random.below(TASKS.len() as u64) as usize].split('-').next().unwrap_or("text"),
        _ => WORDS[random.below(100) as usize],
    };
    let keep = 3 + random.below(word.len().saturating_sub(2).max(1) as u64) as usize;
    word.chars().take(keep).collect()
}

/// Times `bench.edits` saves of the first catalog until the edited word is searchable.
async fn edit_latencies(
    bench: &CatalogBench,
    corpus: &Corpus,
    client: &reqwest::Client,
    base: &str,
) -> anyhow::Result<(Outcome, Outcome)> {
    let path = &corpus.files[0];
    let original = std::fs::read_to_string(path)?;
    let mut edits =
        Outcome { name: "YAML edit to searchable", latencies: Vec::new(), errors: 0, elapsed: Duration::ZERO };
    let mut options =
        Outcome { name: "filter_options (recomputed)", latencies: Vec::new(), errors: 0, elapsed: Duration::ZERO };
    for edit in 0..bench.edits {
        // Tokens over 40 characters are not indexed: keep the word short.
        let word = format!("zqxedit{edit}x{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let marker = "description: \"";
        let at = original
            .match_indices(marker)
            .nth(edit)
            .map(|(at, _)| at + marker.len())
            .context("too few models to edit")?;
        let text = format!("{}{word} {}", &original[..at], &original[at..]);
        let temporary = path.with_extension("swp");
        let started = Instant::now();
        std::fs::write(&temporary, &text)?;
        std::fs::rename(&temporary, path)?;
        loop {
            let found: serde_json::Value =
                client.get(format!("{base}/models")).query(&[("q", word.as_str())]).send().await?.json().await?;
            if found["size"] == 1 {
                edits.latencies.push(started.elapsed());
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                edits.errors += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let started = Instant::now();
        expect_ok(client.get(format!("{base}/models/filter_options")).send().await?).await?;
        options.latencies.push(started.elapsed());
    }
    for outcome in [&mut edits, &mut options] {
        outcome.elapsed = outcome.latencies.iter().sum();
        outcome.latencies.sort_unstable();
    }
    Ok((edits, options))
}

pub(super) fn generate(bench: &CatalogBench, dir: &Path) -> anyhow::Result<Corpus> {
    let sources = bench.sources.max(1);
    let mut config = String::from("model_catalogs:\n");
    let mut files = Vec::new();
    let mut bytes = 0;
    let mut random = Random(0x5eed_cafe_f00d_d00d);
    for source in 0..sources {
        let file = dir.join(format!("catalog-{source:02}.yaml"));
        writeln!(
            config,
            "  - {{id: bench{source:02}, name: Bench {source}, type: yaml, labels: [bench], properties: {{yamlCatalogPath: {}}}}}",
            file.file_name().unwrap().to_string_lossy()
        )?;
        // Streamed: one model's text at a time, so a million models need no more memory than ten.
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&file).with_context(|| format!("writing {}", file.display()))?,
        );
        let mut text = format!("source: Bench {source}\nmodels:\n");
        for index in (source..bench.models).step_by(sources) {
            model(&mut text, index, bench.readme_words, &mut random)?;
            out.write_all(text.as_bytes())?;
            bytes += text.len() as u64;
            text.clear();
        }
        out.write_all(text.as_bytes())?;
        out.flush().with_context(|| format!("writing {}", file.display()))?;
        files.push(file);
    }
    config.push_str(&super::mcp::generate(dir, bench.mcp_servers)?);
    std::fs::write(dir.join("sources.yaml"), config)?;
    Ok(Corpus { files, bytes })
}

fn model(out: &mut String, index: usize, readme_words: usize, random: &mut Random) -> std::fmt::Result {
    let mut pick = |items: usize| random.below(items as u64) as usize;
    let (org, provider) = ORGS[pick(ORGS.len())];
    let family = FAMILIES[pick(FAMILIES.len())];
    let size = SIZES[pick(SIZES.len())];
    let variant = VARIANTS[pick(VARIANTS.len())];
    let task = TASKS[pick(3).min(pick(TASKS.len()))];
    let license = LICENSES[pick(LICENSES.len())];
    let library = LIBRARIES[pick(LIBRARIES.len())];
    let languages = [LANGUAGES[pick(3)], LANGUAGES[pick(LANGUAGES.len())]];
    let tags = [TAGS[pick(TAGS.len())], TAGS[pick(TAGS.len())]];
    let name = format!("{org}/{family}-{size}-{variant}-{index}");
    let quoted = |text: &str| serde_json::to_string(text).expect("strings serialize");
    let description =
        format!("{family} {size} {variant} model by {provider} for {task}, tuned for {} workloads.", tags[0]);
    let mut readme = format!("# {family}-{size}-{variant}\\n\\n");
    for word in 0..readme_words {
        readme.push_str(WORDS[pick(WORDS.len())]);
        readme.push(if word % 17 == 16 { '.' } else { ' ' });
    }
    let created = 1_700_000_000_000i64 + (index as i64 % 500) * 86_400_000;
    writeln!(out, "  - name: {}", quoted(&name))?;
    writeln!(out, "    provider: {}", quoted(provider))?;
    writeln!(out, "    description: {}", quoted(&description))?;
    writeln!(out, "    readme: \"{readme}\"")?;
    writeln!(out, "    license: {license}\n    libraryName: {library}")?;
    writeln!(out, "    language: [{}, {}]\n    tasks: [{task}]", languages[0], languages[1])?;
    writeln!(
        out,
        "    createTimeSinceEpoch: \"{created}\"\n    lastUpdateTimeSinceEpoch: \"{}\"",
        created + 3_600_000
    )?;
    writeln!(out, "    customProperties:")?;
    writeln!(out, "      tags: {{metadataType: MetadataStringValue, string_value: \"{},{}\"}}", tags[0], tags[1])?;
    writeln!(
        out,
        "      parameters_b: {{metadataType: MetadataDoubleValue, double_value: {}}}",
        0.5 + pick(700) as f64 / 10.0
    )?;
    writeln!(out, "    artifacts:\n      - uri: \"oci://registry.example.com/{name}:1.0\"")?;
    let base_latency = 20.0 + pick(400) as f64;
    for (hardware, factor) in HARDWARE.iter().take(3) {
        let count = 1 << pick(3);
        writeln!(
            out,
            "      - {{artifactType: metrics-artifact, metricsType: performance-metrics, customProperties: {{hardware_type: {{string_value: {hardware}}}, hardware_count: {{int_value: \"{count}\"}}, ttft_p90: {{double_value: {:.1}}}, requests_per_second: {{double_value: {:.2}}}}}}}",
            base_latency * factor / f64::from(count).sqrt(),
            f64::from(count) * 8.0 / factor
        )?;
    }
    writeln!(
        out,
        "      - {{artifactType: metrics-artifact, metricsType: accuracy-metrics, customProperties: {{overall_average: {{double_value: {:.3}}}}}}}",
        0.4 + pick(500) as f64 / 1000.0
    )
}
