//! A faithful, in-process stand-in for the Hugging Face Hub, for tests and benchmarks (the real Hub
//! cannot be reached from CI, and must not be load-tested).
//!
//! It serves what modelcat's sync reads, in the Hub's shapes: `GET /api/models` (`author`, `search`,
//! `limit`, `expand`, `full`) with absolute `Link` pagination, `GET /api/models/{id}` (`blobs=true`,
//! `expand`) and `/revision/{rev}`, `/refs`, and `GET`/`HEAD` `/{id}/resolve/{rev}/{path}` with `Range`,
//! `X-Repo-Commit` and `ETag`; gated repos refuse files but `README.md` with `GatedRepo`.
//!
//! Models: the fixtures of `hf-compat.md` §12 (`org/m1` with a model card, config, a small safetensors
//! file, an LFS file in a folder and tag `v1.0`; `org/m2` with sharded safetensors; `other/x`; the gated
//! `org/gated`) plus `generated` models named `gen/model-NNNNN`. Everything is deterministic;
//! [`FakeHub::touch`] publishes a new revision of a model.
//!
//! Faults, all adjustable while running ([`Faults`]): every n-th request a 500, every n-th a 429 with
//! `Retry-After`, a request budget per window announced in `RateLimit` headers, chosen models whose
//! `model_info` always fails, a "down" switch, and a fixed latency per request.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json, json};
use sha1::Digest as _;

use crate::api::hf::wire::{self, HfError};
use crate::api::params::form_pairs;
use crate::hex::encode as hex;
use crate::mirror::listing::Entry;

/// When the fixtures were "created" (ms since the epoch): 2024-01-01.
const EPOCH_MS: i64 = 1_704_067_200_000;

/// Faults to inject; change them at any time.
#[derive(Debug, Default)]
pub struct Faults {
    /// Every n-th request answers 500 (0: never).
    pub server_error_every: AtomicU64,
    /// Every n-th request answers 429 with `Retry-After` (0: never).
    pub rate_limit_every: AtomicU64,
    /// The `Retry-After` of injected 429s, in seconds.
    pub retry_after_secs: AtomicU64,
    /// Requests allowed per window (0: unlimited, and no `RateLimit` headers).
    pub quota: AtomicU64,
    /// The quota window, in seconds (0 means 5).
    pub quota_window_secs: AtomicU64,
    /// Models whose `model_info` always answers 500.
    pub failing: Mutex<HashSet<String>>,
    /// Every request answers 503.
    pub down: AtomicBool,
    /// After this many requests the Hub goes down (0: never), to fail a sync mid-way.
    pub down_after: AtomicU64,
    /// Added to every request, in microseconds.
    pub latency_micros: AtomicU64,
}

/// One model: its `model_info` document (with blobs), refs and file contents.
#[derive(Debug, Clone)]
struct FakeModel {
    info: Map<String, Json>,
    refs: Json,
    files: BTreeMap<String, Vec<u8>>,
    /// Listed LFS files whose content the fake Hub does not hold: `(path, size)`.
    lfs_only: Vec<(String, u64)>,
}

struct HubState {
    models: RwLock<BTreeMap<String, Arc<FakeModel>>>,
    revisions: Mutex<BTreeMap<String, u64>>,
    faults: Faults,
    requests: AtomicU64,
    window: Mutex<(Instant, u64)>,
    /// 429s answered, injected or over the quota.
    rate_limited: AtomicU64,
    page_size: usize,
}

/// The fake Hub. Cheap to clone.
#[derive(Clone)]
pub struct FakeHub {
    state: Arc<HubState>,
}

/// How long a quota window lasts unless set.
const DEFAULT_WINDOW_SECS: u64 = 5;

impl FakeHub {
    /// The fixtures plus `generated` models; list pages hold at most `page_size` models.
    pub fn new(generated: usize, page_size: usize) -> FakeHub {
        let mut models = BTreeMap::new();
        for (id, model) in fixtures().into_iter().chain((0..generated).map(generated_model)) {
            models.insert(id, Arc::new(model));
        }
        FakeHub {
            state: Arc::new(HubState {
                models: RwLock::new(models),
                revisions: Mutex::default(),
                faults: Faults { retry_after_secs: AtomicU64::new(1), ..Faults::default() },
                requests: AtomicU64::new(0),
                window: Mutex::new((Instant::now(), 0)),
                rate_limited: AtomicU64::new(0),
                page_size: page_size.max(1),
            }),
        }
    }

    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }

    /// 429s answered so far.
    pub fn rate_limited(&self) -> u64 {
        self.state.rate_limited.load(Ordering::Relaxed)
    }

    /// Requests served so far.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Model ids, in order.
    pub fn model_ids(&self) -> Vec<String> {
        self.state.models.read().expect("models").keys().cloned().collect()
    }

    /// Publishes a new revision of `id` (new `sha`, `lastModified` and README); returns the new sha.
    pub fn touch(&self, id: &str) -> Option<String> {
        let revision = {
            let mut revisions = self.state.revisions.lock().expect("revisions");
            let revision = revisions.entry(id.to_owned()).or_insert(0);
            *revision += 1;
            *revision
        };
        let mut models = self.state.models.write().expect("models");
        let model = models.get(id)?;
        let mut files = model.files.clone();
        let readme = format!("{}\nRevision {revision}.\n", String::from_utf8_lossy(&files["README.md"]));
        files.insert("README.md".to_owned(), readme.into_bytes());
        let spec = Spec::from_info(&model.info, revision);
        let lfs_only: Vec<(&str, u64)> = model.lfs_only.iter().map(|(path, size)| (path.as_str(), *size)).collect();
        let rebuilt = build(spec, files, &lfs_only);
        let sha = rebuilt.info["sha"].as_str().map(str::to_owned);
        models.insert(id.to_owned(), Arc::new(rebuilt));
        sha
    }

    /// Removes a model (as if deleted upstream).
    pub fn remove(&self, id: &str) {
        self.state.models.write().expect("models").remove(id);
    }

    /// The router, to serve on a listener.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/models", axum::routing::get(list))
            .route("/api/models/{*rest}", axum::routing::get(model))
            .route("/api/whoami-v2", axum::routing::get(|| async { HfError::not_found("anonymous") }))
            .route("/{name}/resolve/{*rest}", axum::routing::get(resolve))
            .route("/{owner}/{name}/resolve/{*rest}", axum::routing::get(resolve))
            .layer(middleware::from_fn_with_state(self.state.clone(), faults))
            .with_state(self.state.clone())
    }

    /// Serves on `listener` until the task is dropped; returns the base URL.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
    ) -> std::io::Result<(String, tokio::task::JoinHandle<()>)> {
        let url = format!("http://{}", listener.local_addr()?);
        let router = self.router();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok((url, task))
    }
}

/// What a model is made of, before hashing.
struct Spec {
    id: String,
    revision: u64,
    created_ms: i64,
    downloads: i64,
    likes: i64,
    pipeline_tag: String,
    library: String,
    tags: Vec<String>,
    gated: Option<String>,
    card: Json,
    config: Json,
}

impl Spec {
    fn from_info(info: &Map<String, Json>, revision: u64) -> Spec {
        let text = |key: &str| info.get(key).and_then(Json::as_str).unwrap_or_default().to_owned();
        Spec {
            id: text("id"),
            revision,
            created_ms: modelcat_sources::hf::parse_hub_time(&text("createdAt")).unwrap_or(EPOCH_MS),
            downloads: info.get("downloads").and_then(Json::as_i64).unwrap_or(0),
            likes: info.get("likes").and_then(Json::as_i64).unwrap_or(0),
            pipeline_tag: text("pipeline_tag"),
            library: text("library_name"),
            tags: info
                .get("tags")
                .and_then(Json::as_array)
                .map(|tags| tags.iter().filter_map(|tag| tag.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
            gated: info.get("gated").and_then(Json::as_str).map(str::to_owned),
            card: info.get("cardData").cloned().unwrap_or(Json::Null),
            config: info.get("config").cloned().unwrap_or(Json::Null),
        }
    }
}

/// A small valid safetensors file: one F32 tensor of `rows × 4`.
fn safetensors(name: &str, rows: usize) -> Vec<u8> {
    let data = rows * 4 * 4;
    let header = json!({"__metadata__": {"format": "pt"}, name: {"dtype": "F32", "shape": [rows, 4], "data_offsets": [0, data]}});
    let mut header = serde_json::to_vec(&header).expect("header");
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend(header);
    file.extend(std::iter::repeat_n(0u8, data));
    file
}

fn git_blob_id(content: &[u8]) -> String {
    let mut hasher = sha1::Sha1::new();
    hasher.update(format!("blob {}\0", content.len()).as_bytes());
    hasher.update(content);
    hex(&hasher.finalize())
}

/// Builds a model: hashes its files into siblings, derives `sha` from everything. `lfs_only` are listed
/// LFS files whose content the fake Hub does not hold (large weights): `(path, size)`.
fn build(spec: Spec, files: BTreeMap<String, Vec<u8>>, lfs_only: &[(&str, u64)]) -> FakeModel {
    let is_lfs = |path: &str| path.ends_with(".safetensors") || path.ends_with(".onnx") || path.ends_with(".bin");
    let mut siblings = Vec::new();
    let mut parameters = 0u64;
    for (path, content) in &files {
        if is_lfs(path) {
            let sha256 = hex(&sha2::Sha256::digest(content));
            let pointer =
                format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {}\n", content.len());
            siblings.push(json!({"rfilename": path, "size": content.len(), "blobId": git_blob_id(pointer.as_bytes()),
                "lfs": {"sha256": sha256, "size": content.len(), "pointerSize": pointer.len()}}));
            if path.ends_with(".safetensors") {
                parameters += (content.len() as u64).saturating_sub(200) / 4;
            }
        } else {
            siblings.push(json!({"rfilename": path, "size": content.len(), "blobId": git_blob_id(content)}));
        }
    }
    for (path, size) in lfs_only {
        let sha256 = hex(&sha2::Sha256::digest(path.as_bytes()));
        let pointer = format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n");
        siblings.push(json!({"rfilename": path, "size": size, "blobId": git_blob_id(pointer.as_bytes()),
            "lfs": {"sha256": sha256, "size": size, "pointerSize": pointer.len()}}));
    }
    siblings.sort_by(|a, b| a["rfilename"].as_str().cmp(&b["rfilename"].as_str()));
    let mut digest = sha1::Sha1::new();
    digest.update(spec.id.as_bytes());
    digest.update(spec.revision.to_le_bytes());
    for sibling in &siblings {
        digest.update(sibling.to_string().as_bytes());
    }
    let sha = hex(&digest.finalize());
    let modified_ms = spec.created_ms + 86_400_000 + spec.revision as i64 * 3_600_000;
    let author = spec.id.split_once('/').map_or("", |(author, _)| author).to_owned();
    let used: u64 = siblings.iter().filter_map(|sibling| sibling["size"].as_u64()).sum();
    let mut info = json!({
        "_id": &hex(&sha1::Sha1::digest(spec.id.as_bytes()))[..24],
        "id": spec.id, "modelId": spec.id, "author": author, "sha": sha,
        "private": false, "gated": spec.gated.map_or(Json::Bool(false), Json::from), "disabled": false,
        "downloads": spec.downloads, "downloadsAllTime": spec.downloads * 12 + spec.likes,
        "likes": spec.likes, "trendingScore": spec.likes / 3,
        "tags": spec.tags, "pipeline_tag": spec.pipeline_tag, "library_name": spec.library,
        "createdAt": modelcat_sources::hf::format_hub_time(spec.created_ms),
        "lastModified": modelcat_sources::hf::format_hub_time(modified_ms),
        "cardData": spec.card, "config": spec.config,
        "siblings": siblings, "spaces": [], "usedStorage": used,
    });
    if spec.library == "transformers" {
        info["transformersInfo"] =
            json!({"auto_model": "AutoModel", "pipeline_tag": spec.pipeline_tag, "processor": "AutoTokenizer"});
    }
    if parameters > 0 {
        info["safetensors"] = json!({"parameters": {"F32": parameters}, "total": parameters});
    }
    let mut refs = json!({"branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": sha}], "converts": [], "tags": []});
    if spec.id == "org/m1" {
        refs["tags"] = json!([{"name": "v1.0", "ref": "refs/tags/v1.0", "targetCommit": sha}]);
    }
    let Json::Object(info) = info else { unreachable!("built as an object") };
    let lfs_only = lfs_only.iter().map(|(path, size)| ((*path).to_owned(), *size)).collect();
    FakeModel { info, refs, files, lfs_only }
}

fn card(front: &str, title: &str, body: &str) -> Vec<u8> {
    format!("---\n{front}---\n\n# {title}\n\n{body}\n").into_bytes()
}

fn fixtures() -> Vec<(String, FakeModel)> {
    let config = |kind: &str, arch: &str| json!({"architectures": [arch], "model_type": kind});
    let spec =
        |id: &str, downloads, likes, pipeline_tag: &str, library: &str, tags: &[&str], card: Json, config: Json| Spec {
            id: id.to_owned(),
            revision: 0,
            created_ms: EPOCH_MS + downloads * 60_000,
            downloads,
            likes,
            pipeline_tag: pipeline_tag.to_owned(),
            library: library.to_owned(),
            tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
            gated: None,
            card,
            config,
        };
    let m1_files = BTreeMap::from([
        (
            "README.md".to_owned(),
            card("license: mit\nlanguage:\n- en\n", "M1", "M1 is a small masked language model for tests."),
        ),
        (
            "config.json".to_owned(),
            serde_json::to_vec_pretty(
                &json!({"architectures": ["BertForMaskedLM"], "model_type": "bert", "hidden_size": 32}),
            )
            .unwrap(),
        ),
        ("model.safetensors".to_owned(), safetensors("embeddings.weight", 16)),
    ]);
    let m1 = build(
        spec(
            "org/m1",
            100,
            10,
            "fill-mask",
            "transformers",
            &["transformers", "bert", "fill-mask", "license:mit", "en"],
            json!({"license": "mit", "language": ["en"]}),
            config("bert", "BertForMaskedLM"),
        ),
        m1_files,
        &[("onnx/model.onnx", 4_000_000)],
    );
    let index = json!({"metadata": {"total_size": 512}, "weight_map": {"a.weight": "model-00001-of-00002.safetensors", "b.weight": "model-00002-of-00002.safetensors"}});
    let m2_files = BTreeMap::from([
        ("README.md".to_owned(), card("license: apache-2.0\n", "M2", "M2 generates text.")),
        (
            "config.json".to_owned(),
            serde_json::to_vec(&json!({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"})).unwrap(),
        ),
        ("generation_config.json".to_owned(), br#"{"max_length": 64}"#.to_vec()),
        ("model.safetensors.index.json".to_owned(), serde_json::to_vec(&index).unwrap()),
        ("model-00001-of-00002.safetensors".to_owned(), safetensors("a.weight", 8)),
        ("model-00002-of-00002.safetensors".to_owned(), safetensors("b.weight", 8)),
    ]);
    let m2 = build(
        spec(
            "org/m2",
            5,
            3,
            "text-generation",
            "transformers",
            &["transformers", "gpt2", "text-generation", "license:apache-2.0"],
            json!({"license": "apache-2.0"}),
            config("gpt2", "GPT2LMHeadModel"),
        ),
        m2_files,
        &[],
    );
    let x = build(
        spec(
            "other/x",
            50,
            1,
            "image-classification",
            "timm",
            &["pytorch", "timm", "image-classification"],
            json!({}),
            Json::Null,
        ),
        BTreeMap::from([("README.md".to_owned(), card("library_name: timm\n", "X", "An image classifier."))]),
        &[],
    );
    let mut gated_spec = spec(
        "org/gated",
        7,
        2,
        "text-generation",
        "transformers",
        &["transformers", "text-generation", "license:other"],
        json!({"license": "other"}),
        config("llama", "LlamaForCausalLM"),
    );
    gated_spec.gated = Some("manual".to_owned());
    let gated = build(
        gated_spec,
        BTreeMap::from([
            ("README.md".to_owned(), card("license: other\n", "Gated", "You must accept the terms.")),
            ("config.json".to_owned(), br#"{"model_type": "llama"}"#.to_vec()),
        ]),
        &[],
    );
    vec![("org/m1".into(), m1), ("org/m2".into(), m2), ("other/x".into(), x), ("org/gated".into(), gated)]
}

fn generated_model(n: usize) -> (String, FakeModel) {
    let id = format!("gen/model-{n:05}");
    let (pipeline_tag, arch) =
        if n.is_multiple_of(2) { ("text-generation", "LlamaForCausalLM") } else { ("fill-mask", "BertForMaskedLM") };
    let license = ["apache-2.0", "mit", "llama3"][n % 3];
    let spread = (n as i64 * 7919) % 100_000;
    let spec = Spec {
        id: id.clone(),
        revision: 0,
        created_ms: EPOCH_MS + n as i64 * 60_000,
        downloads: spread,
        likes: spread % 997,
        pipeline_tag: pipeline_tag.to_owned(),
        library: "transformers".to_owned(),
        tags: vec!["transformers".into(), pipeline_tag.into(), format!("license:{license}"), "en".into()],
        gated: None,
        card: json!({"license": license, "language": ["en"]}),
        config: json!({"architectures": [arch], "model_type": if n.is_multiple_of(2) { "llama" } else { "bert" }}),
    };
    let files = BTreeMap::from([
        (
            "README.md".to_owned(),
            card(
                &format!("license: {license}\nlanguage:\n- en\n"),
                &id,
                &format!("Generated model number {n}, for {pipeline_tag}."),
            ),
        ),
        (
            "config.json".to_owned(),
            serde_json::to_vec(&json!({"architectures": [arch], "hidden_size": 64 + n % 64})).unwrap(),
        ),
        ("model.safetensors".to_owned(), safetensors("weight", 4)),
    ]);
    (id, build(spec, files, &[]))
}

// ---- routes ----

async fn faults(State(state): State<Arc<HubState>>, request: Request, next: Next) -> Response {
    let faults = &state.faults;
    let n = state.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let latency = faults.latency_micros.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_micros(latency)).await;
    }
    let down_after = faults.down_after.load(Ordering::Relaxed);
    if faults.down.load(Ordering::Relaxed) || (down_after > 0 && n > down_after) {
        return (StatusCode::SERVICE_UNAVAILABLE, "the fake Hub is down").into_response();
    }
    let every = |setting: &AtomicU64| matches!(setting.load(Ordering::Relaxed), every if every > 0 && n % every == 0);
    if every(&faults.rate_limit_every) {
        state.rate_limited.fetch_add(1, Ordering::Relaxed);
        let retry = faults.retry_after_secs.load(Ordering::Relaxed);
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            format!("you have reached your 'api' rate limit. Retry after {retry} seconds"),
        )
            .into_response();
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry));
        return response;
    }
    if every(&faults.server_error_every) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "injected failure").into_response();
    }
    let quota = faults.quota.load(Ordering::Relaxed);
    let window_secs = match faults.quota_window_secs.load(Ordering::Relaxed) {
        0 => DEFAULT_WINDOW_SECS,
        secs => secs,
    };
    let mut budget = None;
    if quota > 0 {
        let length = Duration::from_secs(window_secs);
        let mut window = state.window.lock().expect("window");
        if window.0.elapsed() >= length {
            *window = (Instant::now(), 0);
        }
        window.1 += 1;
        // Seconds to the reset, rounded up, as the Hub sends them.
        let reset = length.saturating_sub(window.0.elapsed()).as_secs_f64().ceil().max(1.0) as u64;
        if window.1 > quota {
            state.rate_limited.fetch_add(1, Ordering::Relaxed);
            let mut response = (StatusCode::TOO_MANY_REQUESTS, "quota exceeded").into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(reset));
            return response;
        }
        budget = Some((quota - window.1, reset));
    }
    let mut response = next.run(request).await;
    if let Some((remaining, reset)) = budget {
        let headers = response.headers_mut();
        headers.insert("ratelimit", HeaderValue::from_str(&format!("\"api\";r={remaining};t={reset}")).expect("ascii"));
        let policy = format!("\"fixed window\";\"api\";q={quota};w={window_secs}");
        headers.insert("ratelimit-policy", HeaderValue::from_str(&policy).expect("ascii"));
    }
    response
}

fn json_response(value: Json) -> Response {
    ([(header::CONTENT_TYPE, "application/json; charset=utf-8")], value.to_string()).into_response()
}

async fn list(State(state): State<Arc<HubState>>, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    let pairs = form_pairs(uri.query().unwrap_or_default());
    let get = |key: &str| pairs.iter().find(|(name, _)| name == key).map(|(_, value)| value.as_str());
    let expand = match wire::expand_values(&pairs) {
        Ok(expand) => expand,
        Err(error) => return error.into_response(),
    };
    let limit = get("limit").and_then(|limit| limit.parse().ok()).unwrap_or(state.page_size).min(state.page_size);
    let offset: usize = get("cursor").and_then(|cursor| cursor.parse().ok()).unwrap_or(0);
    let (author, search) = (get("author").map(str::to_lowercase), get("search").map(str::to_lowercase));
    let models = state.models.read().expect("models");
    let matching = models.values().filter(|model| {
        let id = model.info["id"].as_str().unwrap_or_default().to_lowercase();
        author.as_ref().is_none_or(|author| id.starts_with(&format!("{author}/")))
            && search.as_ref().is_none_or(|search| id.contains(search.as_str()))
    });
    let mut page: Vec<Json> = Vec::new();
    let mut more = false;
    for model in matching.skip(offset) {
        if page.len() == limit {
            more = true;
            break;
        }
        page.push(if expand.is_empty() {
            Json::Object(
                Entry::from_info(&Json::Object(model.info.clone())).map(|entry| entry.item).unwrap_or_default(),
            )
        } else {
            wire::expanded(&model.info, &expand)
        });
    }
    let count = page.len();
    let mut response = json_response(Json::Array(page));
    if more {
        let host = headers.get(header::HOST).and_then(|host| host.to_str().ok()).unwrap_or("localhost");
        let mut next = form_urlencoded::Serializer::new(String::new());
        for (key, value) in pairs.iter().filter(|(key, _)| key != "cursor") {
            next.append_pair(key, value);
        }
        next.append_pair("cursor", &(offset + count).to_string());
        let link = format!("<http://{host}/api/models?{}>; rel=\"next\"", next.finish());
        response.headers_mut().insert(header::LINK, HeaderValue::from_str(&link).expect("ascii link"));
    }
    response
}

fn find(state: &HubState, id: &str) -> Result<Arc<FakeModel>, HfError> {
    state.models.read().expect("models").get(id).cloned().ok_or_else(|| HfError::repo_not_found(id))
}

async fn model(State(state): State<Arc<HubState>>, uri: axum::http::Uri) -> Result<Response, HfError> {
    let rest = uri.path().trim_start_matches("/api/models/");
    let segments: Vec<&str> = rest.split('/').collect();
    let pairs = form_pairs(uri.query().unwrap_or_default());
    let (id, tail) = if segments.len() >= 2 && ["revision", "refs"].contains(&segments[1]) {
        (segments[0].to_owned(), &segments[1..])
    } else {
        (segments[..segments.len().min(2)].join("/"), &segments[segments.len().min(2)..])
    };
    let model = find(&state, &id)?;
    let sha = model.info["sha"].as_str().unwrap_or_default();
    match tail {
        [] | ["revision", _] => {
            if let ["revision", revision] = tail {
                let revision = percent_encoding::percent_decode_str(revision).decode_utf8_lossy();
                wire::check_revision(&revision, sha, &model.refs)?;
            }
            if state.faults.failing.lock().expect("failing").contains(&id) {
                return Ok((StatusCode::INTERNAL_SERVER_ERROR, "this model always fails").into_response());
            }
            let expand = wire::expand_values(&pairs)?;
            let blobs = pairs.iter().any(|(key, value)| key == "blobs" && value == "true");
            Ok(json_response(wire::model_info(&model.info, &expand, blobs)))
        }
        ["refs"] => Ok(json_response(model.refs.clone())),
        _ => Err(HfError::not_found("not a route of the fake Hub")),
    }
}

async fn resolve(State(state): State<Arc<HubState>>, request: Request) -> Result<Response, HfError> {
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let at = segments.iter().position(|segment| *segment == "resolve").unwrap_or_default();
    let id = segments[..at].join("/");
    let revision = percent_encoding::percent_decode_str(segments.get(at + 1).copied().unwrap_or_default())
        .decode_utf8_lossy()
        .into_owned();
    let file = segments
        .get(at + 2..)
        .unwrap_or_default()
        .iter()
        .map(|segment| percent_encoding::percent_decode_str(segment).decode_utf8_lossy())
        .collect::<Vec<_>>()
        .join("/");
    let model = find(&state, &id)?;
    if model.info.get("gated").is_some_and(Json::is_string) && crate::mirror::gated_file(&file) {
        return Err(HfError::gated(&id));
    }
    let sha = model.info["sha"].as_str().unwrap_or_default().to_owned();
    wire::check_revision(&revision, &sha, &model.refs)?;
    let Some(content) = model.files.get(&file) else {
        return Err(HfError::entry_not_found(format!("Entry not found: {file}"), &sha));
    };
    let entry = wire::files(&model.info).into_iter().find(|entry| entry.path == file).expect("files are listed");
    let range = request.headers().get(header::RANGE).and_then(|value| value.to_str().ok());
    let mut headers = HeaderMap::new();
    headers.insert("x-repo-commit", HeaderValue::from_str(&sha).expect("hex"));
    headers.insert(header::ETAG, HeaderValue::from_str(&format!("\"{}\"", entry.etag())).expect("hex"));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let (status, body) = match wire::byte_range(range, content.len() as u64) {
        Ok(None) => (StatusCode::OK, content.clone()),
        Ok(Some((start, end))) => {
            let value = format!("bytes {start}-{end}/{}", content.len());
            headers.insert(header::CONTENT_RANGE, HeaderValue::from_str(&value).expect("ascii"));
            (StatusCode::PARTIAL_CONTENT, content[start as usize..=end as usize].to_vec())
        }
        Err(wire::Unsatisfiable) => return Ok((StatusCode::RANGE_NOT_SATISFIABLE, headers).into_response()),
    };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    let body = if request.method() == Method::HEAD { Body::empty() } else { Body::from(body) };
    Ok((status, headers, body).into_response())
}
