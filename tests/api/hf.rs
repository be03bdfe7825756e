//! The Hugging Face mirror: an `hf` source syncing from the in-repo fake Hub (full, incremental, with
//! 429s and 5xx injected, failing mid-way), the Hub-compatible API over what it mirrored, the catalog
//! mapping, the `mirror` CLI (sync, export, import), and the `hf-hub` crate as a client.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use modelcat::fake_hub::FakeHub;
use modelcat::mirror::Mirror;
use modelcat::mirror::hub::RetryPolicy;
use modelcat::mirror::store::MirrorStore;
use modelcat_sources::NameFilter;
use modelcat_sources::hf::HfParams;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, eventually};

const CATALOG: &str = "/api/model_catalog/v1alpha1";
/// Generated models besides the four fixtures; over two fake Hub pages and two mirror pages of 20.
const GENERATED: usize = 45;

async fn start_hub(generated: usize, page_size: usize) -> (FakeHub, String) {
    let hub = FakeHub::new(generated, page_size);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (url, task) = hub.serve(listener).await.expect("serve");
    std::mem::forget(task); // Serves until the test's runtime stops.
    (hub, url)
}

/// A server with one `hf` source mirroring `org/*`, `other/x` and `gen/*` from the fake Hub.
async fn spawn_with_hf(backend: Backend, hub_url: &str) -> Option<(TestApp, tempfile::TempDir)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let sources = dir.path().join("sources.yaml");
    let config = format!(
        "model_catalogs:\n  - id: hub\n    name: Hub mirror\n    type: hf\n    includedModels: [org/*, other/x, gen/*]\n    \
         excludedModels: [gen/model-0004*]\n    properties: {{url: \"{hub_url}\", syncInterval: 1h}}\n"
    );
    std::fs::write(&sources, config).expect("write sources");
    let app = TestApp::spawn_configured(backend, |settings| {
        settings.catalog.sources = vec![sources.clone()];
        settings.catalog.registry_source = None;
    })
    .await?;
    Some((app, dir))
}

async fn hub_source(app: &TestApp) -> Value {
    let sources = app.call(reqwest::Method::GET, &format!("{CATALOG}/sources"), None).await.body;
    sources["items"]
        .as_array()
        .and_then(|items| items.iter().find(|item| item["id"] == "hub").cloned())
        .unwrap_or_default()
}

/// How many models the `hub` source serves (its count in `…/status`).
async fn synced_models(app: &TestApp) -> u64 {
    let status = app.call(reqwest::Method::GET, &format!("{CATALOG}/status"), None).await.body;
    let sources = status["sources"].as_array().cloned().unwrap_or_default();
    sources.iter().find(|source| source["id"] == "hub").and_then(|source| source["models"].as_u64()).unwrap_or(0)
}

async fn get_json(app: &TestApp, path: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let response = app.client.get(format!("{}{path}", app.address)).send().await.expect("request");
    let (status, headers) = (response.status(), response.headers().clone());
    let body = response.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

async fn mirror_serves_the_hub_api(backend: Backend) {
    let (_hub, hub_url) = start_hub(GENERATED, 20).await;
    let Some((app, _dir)) = spawn_with_hf(backend, &hub_url).await else { return };
    // 4 fixtures + 45 generated - 5 excluded (gen/model-00040..44).
    let expected = 4 + GENERATED - 5;
    let synced = eventually(Duration::from_secs(20), || async {
        let source = hub_source(&app).await;
        (source["status"] == "available").then_some(source)
    })
    .await;
    assert!(synced.is_some(), "source never became available: {}", hub_source(&app).await);
    let count =
        eventually(Duration::from_secs(10), || async { (models_total(&app).await == expected).then_some(()) }).await;
    assert!(count.is_some(), "catalog never held {expected} Hub models: {}", models_total(&app).await);

    // The catalog mapping.
    let (status, _, model) = get_json(&app, &format!("{CATALOG}/sources/hub/models/org/m1")).await;
    assert_eq!(status, StatusCode::OK, "{model}");
    assert_eq!(model["license"], "mit");
    assert_eq!(model["provider"], "org");
    assert_eq!(model["tasks"], json!(["fill-mask"]));
    assert_eq!(model["libraryName"], "transformers");
    assert_eq!(model["language"], json!(["en"]));
    assert!(model["readme"].as_str().unwrap_or_default().starts_with("# M1"), "{model}");
    assert_eq!(model["customProperties"]["hf_access_type"]["string_value"], "public");

    // Listing, search and pagination.
    let mut ids = Vec::new();
    let mut next = Some(format!("{}/api/models?limit=7", app.address));
    while let Some(url) = next.take() {
        let response = app.client.get(&url).send().await.expect("list");
        assert_eq!(response.status(), StatusCode::OK);
        next = response.headers().get("link").map(|link| {
            let link = link.to_str().unwrap();
            assert!(
                link.starts_with(&format!("<{}/api/models?", app.address)) && link.ends_with(">; rel=\"next\""),
                "{link}"
            );
            assert!(link.contains("limit=7"), "{link}");
            link[1..link.find('>').unwrap()].to_owned()
        });
        let page: Vec<Value> = response.json().await.expect("page");
        assert!(page.len() <= 7);
        ids.extend(page.iter().map(|item| item["id"].as_str().unwrap().to_owned()));
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((ids.len(), unique.len()), (expected, expected), "{ids:?}");

    let (_, _, found) =
        get_json(&app, "/api/models?search=M&author=org&filter=bert&filter=license:mit&sort=downloads").await;
    assert_eq!(found.as_array().map(|found| found.len()), Some(1), "{found}");
    assert_eq!(found[0]["id"], "org/m1");
    let (_, _, by_downloads) = get_json(&app, "/api/models?author=org&sort=downloads").await;
    let downloads: Vec<i64> =
        by_downloads.as_array().unwrap().iter().map(|item| item["downloads"].as_i64().unwrap()).collect();
    assert_eq!(downloads, vec![100, 7, 5]);
    let (_, _, ascending) = get_json(&app, "/api/models?author=org&sort=downloads&direction=1").await;
    assert_eq!(ascending[0]["id"], "org/m2");
    let (_, _, gated) = get_json(&app, "/api/models?gated=true&expand=gated").await;
    assert_eq!(gated, json!([{"_id": gated[0]["_id"], "id": "org/gated", "gated": "manual"}]));
    let (status, headers, _) = get_json(&app, "/api/models?expand=nope").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(headers.get("x-error-message").is_some());
    let (_, _, old_client) = get_json(&app, "/api/models?expand%5B%5D=author&limit=1").await;
    assert_eq!(old_client[0].as_object().map(|item| item.len()), Some(3), "{old_client}");

    // model_info, revisions and errors.
    let (status, headers, info) = get_json(&app, "/api/models/org/m1?blobs=true").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json; charset=utf-8");
    let sha = info["sha"].as_str().unwrap().to_owned();
    assert_eq!(sha.len(), 40);
    assert!(
        info["siblings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|sibling| sibling["size"].is_u64() && sibling["blobId"].is_string())
    );
    let (_, _, plain) = get_json(&app, "/api/models/org/m1").await;
    assert_eq!(plain["siblings"][0].as_object().map(|sibling| sibling.len()), Some(1));
    for revision in ["main", "v1.0", sha.as_str(), "refs%2Ftags%2Fv1.0"] {
        let (status, _, _) = get_json(&app, &format!("/api/models/org/m1/revision/{revision}")).await;
        assert_eq!(status, StatusCode::OK, "{revision}");
    }
    let (status, headers, _) = get_json(&app, "/api/models/org/m1/revision/v9").await;
    assert_eq!((status, &headers["x-error-code"]), (StatusCode::NOT_FOUND, &"RevisionNotFound".parse().unwrap()));
    let (status, headers, body) = get_json(&app, "/api/models/org/nope").await;
    assert_eq!((status, &headers["x-error-code"]), (StatusCode::NOT_FOUND, &"RepoNotFound".parse().unwrap()));
    assert!(body["error"].is_string());

    // Tree, refs and paths-info.
    let (_, _, tree) = get_json(&app, "/api/models/org/m1/tree/main?recursive=true").await;
    let paths: Vec<&str> = tree.as_array().unwrap().iter().map(|item| item["path"].as_str().unwrap()).collect();
    assert_eq!(paths, vec!["README.md", "config.json", "model.safetensors", "onnx", "onnx/model.onnx"]);
    let (_, _, sub) = get_json(&app, "/api/models/org/m1/tree/main/onnx").await;
    assert_eq!(sub[0]["lfs"]["size"], 4_000_000);
    let (_, _, refs) = get_json(&app, "/api/models/org/m1/refs").await;
    assert_eq!(refs["tags"][0]["name"], "v1.0");
    assert!(refs.get("pullRequests").is_none());
    let paths_info = app
        .client
        .post(format!("{}/api/models/org/m1/paths-info/main", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("paths=config.json&paths=onnx&paths=missing.txt&expand=false")
        .send()
        .await
        .expect("paths-info");
    let paths_info: Value = paths_info.json().await.unwrap();
    assert_eq!(paths_info.as_array().map(Vec::len), Some(2), "{paths_info}");

    // Resolve: HEAD, GET, Range, and the error codes.
    let config = app.client.head(format!("{}/org/m1/resolve/main/config.json", app.address)).send().await.unwrap();
    assert_eq!(config.status(), StatusCode::OK);
    assert_eq!(config.headers()["x-repo-commit"], sha.as_str());
    let etag = config.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.len() == 42, "{etag}");
    let length: usize = config.headers()["content-length"].to_str().unwrap().parse().unwrap();
    assert!(config.headers().get("x-xet-hash").is_none() && config.headers().get("content-encoding").is_none());
    let body = app.client.get(format!("{}/org/m1/resolve/{sha}/config.json", app.address)).send().await.unwrap();
    let bytes = body.bytes().await.unwrap();
    assert_eq!(bytes.len(), length);
    assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap()["model_type"], "bert");
    let ranged_get = |path: &str, range: &'static str| {
        app.client.get(format!("{}{path}", app.address)).header("range", range).send()
    };
    let ranged = ranged_get("/org/m1/resolve/main/config.json", "bytes=0-0").await.unwrap();
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(ranged.headers()["content-range"], format!("bytes 0-0/{length}").as_str());
    let header = ranged_get("/org/m1/resolve/main/model.safetensors", "bytes=0-100000").await.unwrap();
    assert_eq!(header.status(), StatusCode::PARTIAL_CONTENT);
    let header = header.bytes().await.unwrap();
    let declared = u64::from_le_bytes(header[..8].try_into().unwrap()) as usize;
    assert!(serde_json::from_slice::<Value>(&header[8..8 + declared]).unwrap()["embeddings.weight"]["dtype"] == "F32");
    let missing = app.client.get(format!("{}/org/m1/resolve/main/nope.bin", app.address)).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.headers()["x-error-code"], "EntryNotFound");
    assert_eq!(missing.headers()["x-repo-commit"], sha.as_str());
    let unmirrored =
        app.client.head(format!("{}/org/m1/resolve/main/onnx/model.onnx", app.address)).send().await.unwrap();
    assert_eq!(unmirrored.headers()["content-length"], "4000000");
    let unmirrored =
        app.client.get(format!("{}/org/m1/resolve/main/onnx/model.onnx", app.address)).send().await.unwrap();
    assert_eq!(unmirrored.headers()["x-error-code"], "EntryNotFound");
    let gated = app.client.head(format!("{}/org/gated/resolve/main/config.json", app.address)).send().await.unwrap();
    assert_eq!(gated.headers()["x-error-code"], "GatedRepo");
    let (status, _, gated_info) = get_json(&app, "/api/models/org/gated").await;
    assert_eq!((status, &gated_info["gated"]), (StatusCode::OK, &json!("manual")));
    // As on the Hub, a gated repo's model card is public; its other files are not.
    let card = app.client.get(format!("{}/org/gated/resolve/main/README.md", app.address)).send().await.unwrap();
    assert_eq!(card.status(), StatusCode::OK);
    assert!(card.text().await.unwrap().contains("You must accept the terms."));
    let unknown = app.client.get(format!("{}/api/agent-harnesses", app.address)).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert!(unknown.headers().get("x-error-code").is_some());
}

async fn models_total(app: &TestApp) -> usize {
    let mut total = 0;
    let mut token = String::new();
    loop {
        let path = format!("{CATALOG}/models?source=hub&pageSize=100&nextPageToken={token}");
        let page = get_json(app, &path).await.2;
        total += page["items"].as_array().map_or(0, Vec::len);
        match page["nextPageToken"].as_str() {
            Some(next) if !next.is_empty() => token = next.to_owned(),
            _ => return total,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_mirror_serves_the_hub_api() {
    mirror_serves_the_hub_api(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_mirror_serves_the_hub_api() {
    mirror_serves_the_hub_api(Backend::Postgres).await;
}

/// A mirror on a fresh SQLite file, and the settings of a source mirroring `patterns` from `url`.
async fn mirror_at(dir: &Path, url: &str, patterns: &[&str]) -> (Mirror, HfParams, NameFilter) {
    let backend = modelcat::store::connect(&format!("sqlite://{}", dir.join("mirror.db").display())).await.unwrap();
    let mirror = Mirror::open(MirrorStore::new(backend)).await.unwrap();
    let properties = [("url".to_owned(), Value::from(url)), ("maxConcurrency".to_owned(), Value::from(4))].into();
    let patterns: Vec<String> = patterns.iter().map(|pattern| (*pattern).to_owned()).collect();
    let (params, included, excluded) = HfParams::parse(&properties, &patterns, &[]).unwrap();
    (mirror, params, NameFilter::new(&included, &excluded).unwrap())
}

fn quick_retries() -> RetryPolicy {
    // The fake Hub fails every n-th request across all concurrent fetches, so one file's retries can meet
    // several failures in a row when the fetchers run in step; 10 attempts make a lost file a real bug.
    RetryPolicy {
        attempts: 10,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        ..RetryPolicy::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_retries_429_and_5xx_and_resyncs_incrementally() {
    let (hub, url) = start_hub(30, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let (mirror, params, filter) = mirror_at(dir.path(), &url, &["gen/*", "org/m1"]).await;
    hub.faults().server_error_every.store(6, Ordering::Relaxed);
    hub.faults().rate_limit_every.store(35, Ordering::Relaxed);
    let started = std::time::Instant::now();
    let report = mirror.sync("hub", &params, &filter, quick_retries(), &|_| {}, None).await.unwrap();
    assert!(report.failed.is_empty() && report.problem.is_none(), "{report:?}");
    assert_eq!((report.listed, report.changed), (31, 31));
    // Each injected 429 said Retry-After: 1, and the sync waited for it.
    let rate_limited = hub.requests() / 35;
    assert!(
        rate_limited >= 2 && started.elapsed() >= Duration::from_secs(rate_limited.min(3) - 1),
        "{:?}",
        started.elapsed()
    );
    let versions = mirror.store.versions().await.unwrap();
    assert_eq!(versions.len(), 31);
    assert!(mirror.store.file("gen/model-00003", "config.json").await.unwrap().is_some());
    assert!(mirror.store.file("org/m1", "README.md").await.unwrap().is_some());

    // Incremental: only the models with a new revision are fetched again.
    hub.faults().server_error_every.store(0, Ordering::Relaxed);
    hub.faults().rate_limit_every.store(0, Ordering::Relaxed);
    let new_sha = hub.touch("gen/model-00007").unwrap();
    hub.touch("org/m1");
    let before = hub.requests();
    let report = mirror.sync("hub", &params, &filter, quick_retries(), &|_| {}, None).await.unwrap();
    assert_eq!((report.changed, report.unchanged, report.removed), (2, 29, 0), "{report:?}");
    assert!(hub.requests() - before < 20, "re-sync sent {} requests", hub.requests() - before);
    assert_eq!(mirror.store.versions().await.unwrap()["gen/model-00007"].0, new_sha);
    let readme = mirror.store.file("gen/model-00007", "README.md").await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&readme).contains("Revision 1."));

    // A model upstream deleted leaves the mirror after a complete listing.
    hub.remove("gen/model-00009");
    let report = mirror.sync("hub", &params, &filter, quick_retries(), &|_| {}, None).await.unwrap();
    assert_eq!(report.removed, 1);
    assert!(!mirror.listing.contains("gen/model-00009") && mirror.listing.contains("gen/model-00008"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_paces_itself_within_the_announced_quota() {
    let (hub, url) = start_hub(6, 10).await;
    // 20 requests per 1 s window, announced in RateLimit headers; the sync needs about 31.
    hub.faults().quota.store(20, Ordering::Relaxed);
    hub.faults().quota_window_secs.store(1, Ordering::Relaxed);
    let dir = tempfile::tempdir().unwrap();
    let (mirror, params, filter) = mirror_at(dir.path(), &url, &["gen/*"]).await;
    let started = std::time::Instant::now();
    let report = mirror.sync("hub", &params, &filter, quick_retries(), &|_| {}, None).await.unwrap();
    assert!(report.failed.is_empty() && report.changed == 6, "{report:?}");
    assert!(hub.requests() > 20, "{} requests", hub.requests());
    // Spread over the budget instead of bursting into 429s: it took more than one window.
    assert_eq!(hub.rate_limited(), 0, "the sync ran into the quota");
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_never_lose_mirrored_data() {
    let (hub, url) = start_hub(30, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let (mirror, params, filter) = mirror_at(dir.path(), &url, &["gen/*"]).await;

    // The Hub fails for good part-way through the first sync: what was fetched is kept and reported.
    hub.faults().down_after.store(60, Ordering::Relaxed);
    let report = mirror.sync("hub", &params, &filter, quick_retries(), &|_| {}, None).await.unwrap();
    assert!(!report.failed.is_empty() && report.changed > 0, "{report:?}");
    assert_eq!(report.changed + report.failed.len(), 30);
    let partial = mirror.store.versions().await.unwrap();
    assert_eq!(partial.len(), report.changed);

    // The Hub back, one model failing: the rest completes, the failing one is reported.
    hub.faults().down_after.store(0, Ordering::Relaxed);
    // The failing model must be one the first sync did not get (a mirrored one is skipped, unchanged).
    let missing = (0..30).map(|n| format!("gen/model-{n:05}")).find(|id| !partial.contains_key(id)).unwrap();
    hub.faults().failing.lock().unwrap().insert(missing);
    let report = mirror.sync("hub", &params, &filter, quick_retries(), &|_| {}, None).await.unwrap();
    assert_eq!(report.failed.len(), 1, "{report:?}");
    let full = mirror.store.versions().await.unwrap();
    assert_eq!(full.len(), 29);

    // The Hub down entirely: the listing fails, and nothing is removed.
    hub.faults().down.store(true, Ordering::Relaxed);
    let report = mirror.sync("hub", &params, &filter, quick_retries(), &|_| {}, None).await.unwrap();
    assert!(report.problem.as_deref().unwrap_or_default().contains("listing gen/*"), "{report:?}");
    assert_eq!((report.removed, mirror.store.versions().await.unwrap().len()), (0, full.len()));
    assert_eq!(mirror.listing.len(), full.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_status_shows_partial_failures() {
    let (hub, url) = start_hub(5, 10).await;
    hub.faults().failing.lock().unwrap().insert("gen/model-00002".to_owned());
    let Some((app, _dir)) = spawn_with_hf(Backend::Sqlite, &url).await else { return };
    let source = eventually(Duration::from_secs(30), || async {
        let source = hub_source(&app).await;
        (source["status"] == "partially-available").then_some(source)
    })
    .await;
    let Some(source) = source else { panic!("never partially available: {}", hub_source(&app).await) };
    assert!(source["error"].as_str().unwrap_or_default().contains("gen/model-00002"), "{source}");
}

/// Runs the `modelcat` binary in `dir` (so no configuration file applies).
fn cli(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_modelcat"))
        .args(args)
        .current_dir(dir)
        .env_remove("MODELCAT_CONFIG")
        .env_remove("MODELCAT_DATABASE_URL")
        .output()
        .expect("run modelcat")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_syncs_exports_and_imports() {
    let (_hub, url) = start_hub(12, 5).await;
    let dir = tempfile::tempdir().unwrap();
    let first = format!("sqlite://{}", dir.path().join("first.db").display());
    let second = format!("sqlite://{}", dir.path().join("second.db").display());
    let bundle = dir.path().join("mirror.jsonl.gz");
    let bundle_arg = bundle.to_str().unwrap();
    let run = |args: Vec<&str>| {
        let owned: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        let cwd = dir.path().to_owned();
        tokio::task::spawn_blocking(move || cli(&cwd, &owned.iter().map(String::as_str).collect::<Vec<_>>()))
    };
    let synced =
        run(vec!["mirror", "hf", "--include", "org/*", "--include", "gen/*", "--url", &url, "--database-url", &first])
            .await
            .unwrap();
    let stdout = String::from_utf8_lossy(&synced.stdout);
    assert!(synced.status.success(), "{stdout}{}", String::from_utf8_lossy(&synced.stderr));
    assert!(stdout.contains("15 listed, 15 fetched"), "{stdout}");

    let exported = run(vec!["mirror", "export", bundle_arg, "--database-url", &first]).await.unwrap();
    assert!(exported.status.success(), "{}", String::from_utf8_lossy(&exported.stderr));
    let imported = run(vec!["mirror", "import", bundle_arg, "--database-url", &second]).await.unwrap();
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    assert!(String::from_utf8_lossy(&imported.stdout).contains("verified and imported 15 repos"));

    let open = |url: String| async move {
        Mirror::open(MirrorStore::new(modelcat::store::connect(&url).await.unwrap())).await.unwrap()
    };
    let (original, copy) = (open(first.clone()).await, open(second.clone()).await);
    assert_eq!(original.store.versions().await.unwrap(), copy.store.versions().await.unwrap());
    assert_eq!(copy.store.source_versions("cli").await.unwrap().len(), 15);
    assert_eq!(
        original.store.file("org/m1", "model.safetensors").await.unwrap(),
        copy.store.file("org/m1", "model.safetensors").await.unwrap()
    );

    // A damaged bundle is refused before anything is written.
    let bytes = std::fs::read(&bundle).unwrap();
    let damaged = dir.path().join("damaged.jsonl.gz");
    std::fs::write(&damaged, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let third = format!("sqlite://{}", dir.path().join("third.db").display());
    let refused = run(vec!["mirror", "import", damaged.to_str().unwrap(), "--database-url", &third]).await.unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not a valid mirror bundle"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(open(third).await.store.versions().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hf_hub_crate_reads_the_mirror() {
    let (_hub, url) = start_hub(0, 10).await;
    let Some((app, _dir)) = spawn_with_hf(Backend::Sqlite, &url).await else { return };
    eventually(Duration::from_secs(20), || async { (synced_models(&app).await == 4).then_some(()) })
        .await
        .expect("synced");
    let cache = tempfile::tempdir().unwrap();
    let endpoint = app.address.clone();
    let cache_dir = cache.path().to_owned();
    let (info, config) = tokio::task::spawn_blocking(move || {
        let api = hf_hub::api::sync::ApiBuilder::new()
            .with_endpoint(endpoint)
            .with_cache_dir(cache_dir)
            .with_progress(false)
            .build()
            .expect("hf-hub client");
        let repo = api.model("org/m1".to_owned());
        let info = repo.info().expect("model info through hf-hub");
        let config = repo.get("config.json").expect("config.json through hf-hub");
        (info, std::fs::read_to_string(config).unwrap())
    })
    .await
    .unwrap();
    assert_eq!(info.sha.len(), 40);
    assert!(info.siblings.iter().any(|sibling| sibling.rfilename == "config.json"));
    assert!(config.contains("BertForMaskedLM"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_repo_document_cache_stays_within_its_byte_budget() {
    let (_hub, url) = start_hub(40, 100).await;
    let dir = tempfile::tempdir().unwrap();
    let (mirror, params, filter) = mirror_at(dir.path(), &url, &["gen/*"]).await;
    mirror.sync("hub", &params, &filter, quick_retries(), &|_| {}, None).await.unwrap();
    let budget = 20_000;
    let small = Mirror::new(mirror.store.clone(), budget);
    for number in 0..40 {
        let docs = small.repo(&format!("gen/model-{number:05}")).await.unwrap();
        assert!(docs.is_some(), "gen/model-{number:05} is mirrored");
    }
    let (bytes, entries) = small.cache_size();
    assert!(bytes <= budget, "{bytes} bytes cached, over the budget of {budget}");
    assert!((1..40).contains(&entries), "a budget of a few documents holds some, not all 40: {entries}");
}

/// A slow first sync is visible as such: `sync.firstSyncDone` is false and the counts move while it
/// runs, and afterwards it says when the last sync succeeded and how it went.
#[tokio::test]
async fn a_slow_first_sync_shows_its_progress() {
    let (hub, hub_url) = start_hub(GENERATED, 20).await;
    hub.faults().latency_micros.store(60_000, Ordering::Relaxed);
    let (app, _dir) = spawn_with_hf(Backend::Sqlite, &hub_url).await.expect("sqlite always runs");
    let during = eventually(Duration::from_secs(20), || async {
        let source = hub_source(&app).await;
        (source["sync"]["state"] == "syncing" && source["sync"]["listed"].as_u64() > Some(0)).then_some(source)
    })
    .await;
    let Some(during) = during else { panic!("the first sync is not seen running: {}", hub_source(&app).await) };
    assert_eq!(during["sync"]["firstSyncDone"], false, "{during}");
    assert!(during["sync"]["lastSuccessSinceEpoch"].is_null(), "{during}");
    hub.faults().latency_micros.store(0, Ordering::Relaxed);
    let after = eventually(Duration::from_secs(30), || async {
        let source = hub_source(&app).await;
        (source["sync"]["firstSyncDone"] == true).then_some(source)
    })
    .await
    .expect("the first sync finished");
    assert_eq!(after["sync"]["state"], "idle", "{after}");
    assert!(after["sync"]["lastSuccessSinceEpoch"].as_str().is_some(), "{after}");
    assert!(after["sync"]["lastSummary"].as_str().is_some_and(|summary| summary.contains("listed")), "{after}");
    let status = app.call(reqwest::Method::GET, &format!("{CATALOG}/status"), None).await.body;
    let hub_status = status["sources"].as_array().unwrap().iter().find(|source| source["id"] == "hub").unwrap().clone();
    assert_eq!(hub_status["sync"]["firstSyncDone"], true, "{hub_status}");
}

/// `trendingScore` and `downloadsAllTime` are in no `model_info` document on the Hub (the fake Hub is as
/// faithful): the sync keeps them from its listing, so the mirror sorts by trend and expands to them.
#[tokio::test]
async fn trending_and_all_time_downloads_come_from_the_listing() {
    let (hub, hub_url) = start_hub(GENERATED, 20).await;
    let (app, _dir) = spawn_with_hf(Backend::Sqlite, &hub_url).await.expect("sqlite always runs");
    let synced = eventually(Duration::from_secs(20), || async {
        (hub_source(&app).await["sync"]["firstSyncDone"] == true).then_some(())
    })
    .await;
    assert!(synced.is_some(), "the first sync finished: {}", hub_source(&app).await);
    let upstream: Value =
        reqwest::get(format!("{hub_url}/api/models/gen/model-00001")).await.unwrap().json().await.unwrap();
    assert!(upstream.get("trendingScore").is_none() && upstream.get("downloadsAllTime").is_none(), "{upstream}");

    let (status, _, trending) = get_json(&app, "/api/models?author=gen&sort=trendingScore&limit=10").await;
    assert_eq!(status, StatusCode::OK);
    let scores: Vec<f64> =
        trending.as_array().unwrap().iter().map(|model| model["trendingScore"].as_f64().expect("a score")).collect();
    assert_eq!(scores.len(), 10);
    assert!(scores.windows(2).all(|pair| pair[0] >= pair[1]), "descending: {scores:?}");
    assert!(scores[0] > scores[9], "the scores differ: {scores:?}");

    let (_, _, expanded) = get_json(&app, "/api/models/gen/model-00001?expand=downloadsAllTime").await;
    let (_, _, listed) = get_json(&app, "/api/models?search=model-00001&expand=downloadsAllTime").await;
    let all_time = &listed[0]["downloadsAllTime"];
    assert!(all_time.as_i64().is_some(), "{listed}");
    assert_eq!(&expanded["downloadsAllTime"], all_time, "{expanded}");
    let (_, _, plain) = get_json(&app, "/api/models/gen/model-00001").await;
    assert!(plain.get("trendingScore").is_none(), "a plain model_info has no trendingScore, as on the Hub");
    drop(hub);
}
