//! Serving from the first second: a real `modelcat serve` on a catalog large enough that loading takes
//! seconds answers `/healthz` at once, `/readyz` 503 with the load's figures, the catalog and Hub APIs 503
//! with `Retry-After` in their envelopes, and takes registry writes that become searchable once loaded.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cluster::{CATALOG, Node, REGISTRY, Timing};
use crate::helpers::eventually;

/// A catalog of `count` models with short readmes.
fn catalog(count: usize) -> String {
    let mut text = String::from("source: Generated\nmodels:\n");
    for number in 0..count {
        let _ = write!(
            text,
            "  - name: gen/model-{number:06}\n    provider: provider-{}\n    license: apache-2.0\n    tasks: [text-generation]\n    \
             description: Generated model {number} for the startup test.\n    readme: A generated model card for model {number}, \
             with a few words to index and search.\n    artifacts:\n      - uri: oci://registry.example.com/gen/model-{number}:1\n",
            number % 40
        );
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_listens_at_once_serves_the_registry_and_answers_503_until_the_catalog_is_loaded() {
    let root = tempfile::tempdir().expect("temp dir");
    let models = 40_000;
    std::fs::write(root.path().join("generated.yaml"), catalog(models)).expect("catalog");
    let sources = format!(
        "model_catalogs:\n  - id: generated\n    name: Generated\n    type: yaml\n    properties:\n      yamlCatalogPath: {}\n",
        root.path().join("generated.yaml").display()
    );
    let database = format!("sqlite://{}", root.path().join("registry.db").display());
    modelcat::install_crypto_provider();
    let client = crate::helpers::authorized_client(&crate::cluster::ADMIN_TOKEN);
    let started = Instant::now();
    let mut node = Node::spawn(root.path(), "s", &database, &sources, &Timing::default());

    let live = eventually(Duration::from_secs(5), || async {
        let response = client.get(format!("{}/healthz", node.address)).send().await.ok()?;
        response.status().is_success().then(|| started.elapsed())
    })
    .await
    .expect("/healthz answers");
    assert!(live < Duration::from_secs(1), "/healthz took {live:?}");

    let ready = client.get(format!("{}/readyz", node.address)).send().await.expect("readyz");
    assert_eq!(ready.status(), 503, "the load was over before it could be observed");
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["status"], "loading", "{body}");
    assert_eq!(body["progress"]["sourcesTotal"].as_u64().map(|total| total >= 1), Some(true), "{body}");

    let listing = client.get(format!("{}{CATALOG}/models?source=generated", node.address)).send().await.expect("sent");
    assert_eq!(listing.status(), 503);
    assert!(listing.headers().contains_key("retry-after"));
    let body: Value = listing.json().await.expect("json");
    assert_eq!(body["code"], "Service Unavailable", "{body}");
    assert!(body["message"].as_str().is_some_and(|message| message.contains("loading")), "{body}");

    let hub = client.get(format!("{}/api/models", node.address)).send().await.expect("sent");
    assert_eq!(hub.status(), 503);
    assert!(hub.headers().contains_key("retry-after"));
    assert!(hub.json::<Value>().await.expect("json")["error"].is_string());

    // The registry serves during the load; its write is searchable once the catalog is.
    let created = client
        .post(format!("{}{REGISTRY}/registered_models", node.address))
        .json(&json!({"name": "written-during-the-load"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(created.status(), 201);

    node.wait_ready().await;
    let found = node.get(&format!("{CATALOG}/sources/registry/models/written-during-the-load")).await;
    assert!(found.is_some(), "the registration made during the load is not in the catalog");
    let status = node.status().await;
    let generated = status["sources"].as_array().unwrap().iter().find(|source| source["id"] == "generated").cloned();
    assert_eq!(generated.map(|source| source["models"].clone()), Some(json!(models)), "{status}");
    assert_eq!(status["load"]["loaded"], true, "{status}");
    assert_eq!(status["load"]["sourcesLoaded"], status["load"]["sourcesTotal"], "{status}");
    assert!(node.log().contains("catalog loaded: serving"), "the load's end is not logged");
}

/// A YAML model without times gets the time modelcat first saw it (create) and last saw it change
/// (update): stable across reloads and a restart, moving only when the model changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_times_are_first_seen_and_survive_a_restart() {
    let root = tempfile::tempdir().expect("temp dir");
    let file = root.path().join("timed.yaml");
    let catalog = |first: &str, second: &str| {
        format!(
            "source: Timed\nmodels:\n  - name: team/first\n    description: {first}\n  - name: team/second\n    description: {second}\n"
        )
    };
    std::fs::write(&file, catalog("one", "two")).expect("catalog");
    let sources = format!(
        "model_catalogs:\n  - {{id: timed, name: Timed, type: yaml, properties: {{yamlCatalogPath: {}}}}}\n",
        file.display()
    );
    let database = format!("sqlite://{}", root.path().join("registry.db").display());
    modelcat::install_crypto_provider();
    let mut node = Node::start(root.path(), "t", &database, &sources, &Timing::default()).await;
    let times = |model: Value| {
        let time = |key: &str| model[key].as_str().and_then(|text| text.parse::<i64>().ok()).expect("a time");
        (time("createTimeSinceEpoch"), time("lastUpdateTimeSinceEpoch"))
    };
    async fn read(node: &Node, name: &str) -> Value {
        node.get(&format!("{CATALOG}/sources/timed/models/team/{name}")).await.expect("model")
    }
    let (first, second) = (times(read(&node, "first").await), times(read(&node, "second").await));
    assert_eq!(first.0, first.1, "first seen and last changed at load");

    // An edit of the second model moves its update time only.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let edit = root.path().join("timed.swp");
    std::fs::write(&edit, catalog("one", "two, edited")).expect("edit");
    std::fs::rename(&edit, &file).expect("rename");
    let edited = eventually(Duration::from_secs(10), || async {
        let model = read(&node, "second").await;
        (model["description"] == "two, edited").then(|| times(model))
    })
    .await
    .expect("the edit was applied");
    assert_eq!(edited.0, second.0, "the create time holds");
    assert!(edited.1 > second.1, "the update time moves: {edited:?} after {second:?}");
    assert_eq!(times(read(&node, "first").await), first, "an unchanged model keeps its times");

    node.stop();
    node.restart().await;
    node.wait_ready().await;
    assert_eq!(times(read(&node, "first").await), first, "times survive a restart");
    assert_eq!(times(read(&node, "second").await), edited);
    let ordered = node.get(&format!("{CATALOG}/models?source=timed&orderBy=LAST_UPDATE_TIME&sortOrder=DESC")).await;
    assert_eq!(ordered.expect("list")["items"][0]["name"], "team/second");
}

/// A restart parses no catalog file whose bytes and config are unchanged since the index took its models,
/// and parses one that changed while the server was down (never serving stale models).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_skips_unchanged_catalogs_and_reloads_changed_ones() {
    let root = tempfile::tempdir().expect("temp dir");
    let (kept, edited) = (root.path().join("kept.yaml"), root.path().join("edited.yaml"));
    std::fs::write(&kept, catalog(3)).expect("catalog");
    std::fs::write(&edited, "source: Edited\nmodels:\n  - name: team/old\n").expect("catalog");
    let sources = format!(
        "model_catalogs:\n  - {{id: kept, name: Kept, type: yaml, properties: {{yamlCatalogPath: {}}}}}\n  \
         - {{id: edited, name: Edited, type: yaml, properties: {{yamlCatalogPath: {}}}}}\n",
        kept.display(),
        edited.display()
    );
    let database = format!("sqlite://{}", root.path().join("registry.db").display());
    modelcat::install_crypto_provider();
    let mut node = Node::start(root.path(), "s", &database, &sources, &Timing::default()).await;
    let parsed = |node: &Node, source: &str| {
        let needle = format!("source={source} ");
        let log = without_colors(&node.log());
        log.lines().filter(|line| line.contains("source loaded") && line.contains(&needle)).count()
    };
    assert_eq!((parsed(&node, "kept"), parsed(&node, "edited")), (1, 1), "{}", node.log());

    node.stop();
    node.restart().await;
    assert_eq!((parsed(&node, "kept"), parsed(&node, "edited")), (1, 1), "nothing parsed again:\n{}", node.log());
    let served = node.get(&format!("{CATALOG}/models?source=kept&pageSize=10")).await.expect("models");
    assert_eq!(served["size"], 3, "the skipped catalog still serves its models");

    node.stop();
    std::fs::write(&edited, "source: Edited\nmodels:\n  - name: team/new\n").expect("edit while down");
    node.restart().await;
    assert_eq!((parsed(&node, "kept"), parsed(&node, "edited")), (1, 2), "{}", node.log());
    let names = node.get(&format!("{CATALOG}/models?source=edited")).await.expect("models");
    assert_eq!(names["items"][0]["name"], "team/new");
    assert_eq!(names["size"], 1, "the model removed while the server was down is gone");
}

/// A log without its ANSI colour sequences.
fn without_colors(log: &str) -> String {
    let mut plain = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(char) = chars.next() {
        if char == '\u{1b}' {
            chars.by_ref().find(|char| char.is_ascii_alphabetic());
        } else {
            plain.push(char);
        }
    }
    plain
}
