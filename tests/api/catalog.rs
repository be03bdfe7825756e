//! The catalog over HTTP: sources and their statuses, search, filters, ordering and pages, model detail
//! and artifacts, filter options, preview, hot reload of catalogs and the sources config, and registered
//! models appearing in the catalog.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, Reply, TestApp, eventually};

const CATALOG: &str = "/api/model_catalog/v1alpha1";
const WAIT: Duration = Duration::from_secs(5);

const SOURCES: &str = r#"
model_catalogs:
  - {id: main, name: Main Models, type: yaml, labels: [Primary], properties: {yamlCatalogPath: main.yaml}}
  - {id: second, name: Second, type: yaml, excludedModels: ["*-draft"], properties: {yamlCatalogPath: second.yaml}}
  - {id: off, name: Disabled, type: yaml, enabled: false, properties: {yamlCatalogPath: main.yaml}}
  - {id: missing, name: Missing File, type: yaml, properties: {yamlCatalogPath: nowhere.yaml}}
  - {id: odd, name: Odd Type, type: ftp}
labels:
  - {name: Primary, displayName: Primary models}
  - {name: null, displayName: Everything else}
namedQueries:
  fast: {artifacts.ttft_p90.double_value: {operator: "<", value: max}}
"#;

const MAIN: &str = r#"
source: Main
models:
  - name: ibm/granite-8b-code
    provider: IBM
    description: A decoder-only code model.
    license: apache-2.0
    libraryName: transformers
    language: [en, de]
    tasks: [text-generation, code-generation]
    createTimeSinceEpoch: "1700000000000"
    lastUpdateTimeSinceEpoch: "1700000500000"
    customProperties:
      validated: {metadataType: MetadataStringValue, string_value: "yes"}
      size: {metadataType: MetadataIntValue, int_value: "8"}
    artifacts:
      - uri: oci://registry/ibm/granite:1
      - artifactType: metrics-artifact
        metricsType: performance-metrics
        customProperties:
          hardware_type: {string_value: H100}
          hardware_count: {int_value: "2"}
          ttft_p90: {double_value: 50.0}
          requests_per_second: {double_value: 4.0}
      - artifactType: metrics-artifact
        metricsType: performance-metrics
        customProperties:
          hardware_type: {string_value: A100}
          hardware_count: {int_value: "1"}
          ttft_p90: {double_value: 300.0}
          requests_per_second: {double_value: 1.0}
  - name: Meta/Llama-3-70B
    provider: Meta
    description: A large chat model.
    license: llama3
    language: [en]
    tasks: [text-generation]
    createTimeSinceEpoch: "1710000000000"
    customProperties:
      accuracy: {double_value: 0.91}
    artifacts:
      - artifactType: metrics-artifact
        customProperties:
          hardware_type: {string_value: A100}
          ttft_p90: {double_value: 40.0}
      - artifactType: metrics-artifact
        customProperties:
          hardware_type: {string_value: H100}
          ttft_p90: {double_value: 400.0}
  - name: google/bert-base
    provider: Google
    description: Masked language model; granite-free.
    license: apache-2.0
    tasks: [fill-mask]
    createTimeSinceEpoch: "1690000000000"
"#;

const SECOND: &str = r#"
models:
  - {name: mistral/mistral-7b, provider: Mistral, license: apache-2.0, tasks: [text-generation]}
  - {name: mistral/mistral-7b-draft, provider: Mistral, license: apache-2.0}
"#;

/// A server whose sources live in a temporary directory the test may edit.
struct Catalog {
    app: TestApp,
    dir: tempfile::TempDir,
}

impl Catalog {
    async fn start(files: &[(&str, &str)]) -> Catalog {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write fixture");
        }
        let sources = vec![dir.path().join("sources.yaml")];
        let app = TestApp::spawn_configured(Backend::Sqlite, |settings| {
            settings.catalog.sources = sources;
            settings.catalog.debounce = Duration::from_millis(30);
        })
        .await
        .expect("sqlite always runs");
        Catalog { app, dir }
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Reply {
        let request = self.app.client.get(format!("{}{CATALOG}{path}", self.app.address)).query(query);
        crate::helpers::reply(request.send().await.expect("request sent")).await
    }

    async fn names(&self, query: &[(&str, &str)]) -> Vec<String> {
        let reply = self.get("/models", query).await;
        assert_eq!(reply.status, StatusCode::OK, "{query:?}: {}", reply.body);
        names(&reply.body)
    }

    async fn source(&self, id: &str) -> Value {
        let sources = self.get("/sources", &[("pageSize", "100")]).await.body;
        sources["items"].as_array().unwrap().iter().find(|source| source["id"] == id).cloned().unwrap_or(Value::Null)
    }

    fn write(&self, name: &str, text: &str) {
        write_atomically(&self.dir.path().join(name), text);
    }
}

/// Writes like an editor does: a temporary file renamed over the old one.
fn write_atomically(path: &Path, text: &str) {
    let temporary = path.with_extension("swp");
    std::fs::write(&temporary, text).expect("write");
    std::fs::rename(&temporary, path).expect("rename");
}

fn names(body: &Value) -> Vec<String> {
    body["items"].as_array().expect("items").iter().map(|item| item["name"].as_str().unwrap().to_owned()).collect()
}

async fn standard() -> Catalog {
    Catalog::start(&[("sources.yaml", SOURCES), ("main.yaml", MAIN), ("second.yaml", SECOND)]).await
}

#[tokio::test]
async fn sources_show_status_and_one_bad_source_spares_the_others() {
    let catalog = standard().await;
    let listed = catalog.get("/sources", &[]).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["size"], 6, "five configured plus the registry: {}", listed.body);
    let main = catalog.source("main").await;
    assert_eq!(
        (main["status"].as_str(), main["labels"].clone(), main["error"].clone()),
        (Some("available"), json!(["Primary"]), Value::Null)
    );
    assert_eq!(catalog.source("off").await["status"], "disabled");
    assert_eq!(catalog.source("off").await["enabled"], false);
    let missing = catalog.source("missing").await;
    assert_eq!(missing["status"], "error");
    assert!(missing["error"].as_str().unwrap().contains("nowhere.yaml"), "{missing}");
    assert!(catalog.source("odd").await["error"].as_str().unwrap().contains("unknown source type \"ftp\""));
    assert_eq!(catalog.source("second").await["excludedModels"], json!(["*-draft"]));
    assert_eq!(catalog.source("registry").await["status"], "available");
    let named = catalog.get("/sources", &[("name", "SECOND")]).await;
    assert_eq!(named.body["size"], 1);

    let labels = catalog.get("/labels", &[]).await.body;
    assert_eq!(
        labels["items"],
        json!([{"name": "Primary", "displayName": "Primary models"}, {"name": null, "displayName": "Everything else"}])
    );
    let ordered = catalog.get("/labels", &[("orderBy", "displayName"), ("sortOrder", "ASC")]).await.body;
    assert_eq!(ordered["items"][0]["displayName"], "Everything else");
}

#[tokio::test]
async fn models_search_filter_order_and_page() {
    let catalog = standard().await;
    let all = catalog.names(&[]).await;
    assert_eq!(
        all,
        ["google/bert-base", "ibm/granite-8b-code", "Meta/Llama-3-70B", "mistral/mistral-7b"],
        "NAME order, case-insensitive; excluded and disabled left out"
    );
    let mut reversed = catalog.names(&[("sortOrder", "DESC")]).await;
    reversed.reverse();
    assert_eq!(reversed, all, "DESC is the exact reverse of ASC");

    // q: word prefixes across name, provider and tasks; every word must match.
    assert_eq!(catalog.names(&[("q", "gran")]).await, ["google/bert-base", "ibm/granite-8b-code"]);
    assert_eq!(
        catalog.names(&[("q", "gran"), ("orderBy", "RELEVANCE")]).await[0],
        "ibm/granite-8b-code",
        "name matches rank first"
    );
    assert_eq!(catalog.names(&[("q", "META llama")]).await, ["Meta/Llama-3-70B"]);
    assert!(catalog.names(&[("q", "granite zebra")]).await.is_empty());

    // filterQuery on catalog fields, custom properties and artifacts.
    let cases: &[(&str, &[&str])] = &[
        ("license = 'apache-2.0'", &["google/bert-base", "ibm/granite-8b-code", "mistral/mistral-7b"]),
        ("license != 'apache-2.0'", &["Meta/Llama-3-70B"]),
        ("provider IN ('IBM', 'Meta')", &["ibm/granite-8b-code", "Meta/Llama-3-70B"]),
        ("provider NOT IN ('IBM', 'Meta')", &["google/bert-base", "mistral/mistral-7b"]),
        ("name LIKE '%granite%'", &["ibm/granite-8b-code"]),
        ("name ILIKE 'meta/%'", &["Meta/Llama-3-70B"]),
        ("description NOT LIKE '%model%'", &[]),
        ("tasks = 'code-generation'", &["ibm/granite-8b-code"]),
        (r#"language LIKE '%"de"%'"#, &["ibm/granite-8b-code"]),
        ("validated = 'yes'", &["ibm/granite-8b-code"]),
        ("validated.string_value IS NULL AND source_id = 'main'", &["google/bert-base", "Meta/Llama-3-70B"]),
        ("size.int_value >= 8", &["ibm/granite-8b-code"]),
        ("accuracy > 0.9", &["Meta/Llama-3-70B"]),
        ("createTimeSinceEpoch < 1700000000001", &["google/bert-base", "ibm/granite-8b-code"]),
        ("NOT license = 'apache-2.0' OR provider = 'Google'", &["google/bert-base", "Meta/Llama-3-70B"]),
        ("artifacts.ttft_p90 < 100", &["ibm/granite-8b-code", "Meta/Llama-3-70B"]),
        ("artifacts.hardware_type = 'H100' AND artifacts.ttft_p90.double_value < 100", &["ibm/granite-8b-code"]),
        ("artifacts.hardware_count.int_value = 2", &["ibm/granite-8b-code"]),
    ];
    for (filter, expected) in cases {
        assert_eq!(catalog.names(&[("filterQuery", filter)]).await, *expected, "{filter}");
    }
    let bad = catalog.get("/models", &[("filterQuery", "name = ")]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["code"], "Bad Request");
    assert!(bad.body["message"].as_str().unwrap().contains("position"), "{}", bad.body);

    // Sources and labels select, values ORed; both at once is an error.
    assert_eq!(catalog.names(&[("source", "second")]).await, ["mistral/mistral-7b"]);
    assert_eq!(catalog.names(&[("source", "second,main"), ("q", "mistral")]).await, ["mistral/mistral-7b"]);
    assert_eq!(catalog.names(&[("sourceLabel", "null")]).await, ["mistral/mistral-7b"]);
    assert_eq!(catalog.names(&[("sourceLabel", "Primary")]).await.len(), 3);
    assert!(catalog.names(&[("source", "off")]).await.is_empty(), "disabled sources serve nothing");
    assert_eq!(
        catalog.get("/models", &[("source", "main"), ("sourceLabel", "x")]).await.status,
        StatusCode::BAD_REQUEST
    );

    // Orders: times, properties, artifact aggregates.
    assert_eq!(
        catalog.names(&[("orderBy", "CREATE_TIME"), ("source", "main")]).await,
        ["google/bert-base", "ibm/granite-8b-code", "Meta/Llama-3-70B"]
    );
    assert_eq!(
        catalog.names(&[("orderBy", "artifacts.ttft_p90.double_value"), ("source", "main")]).await,
        ["Meta/Llama-3-70B", "ibm/granite-8b-code", "google/bert-base"]
    );
    assert_eq!(catalog.names(&[("orderBy", "size.int_value"), ("source", "main")]).await[0], "ibm/granite-8b-code");
    assert_eq!(catalog.names(&[("recommendations", "true")]).await[0], "Meta/Llama-3-70B", "lowest latency first");
    assert_eq!(catalog.get("/models", &[("orderBy", "BOGUS")]).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(catalog.get("/models", &[("sortOrder", "UP")]).await.status, StatusCode::BAD_REQUEST);

    // Pages: default 10, tokens lead through every model exactly once and are bound to their query.
    let first = catalog.get("/models", &[("pageSize", "3")]).await.body;
    assert_eq!((first["size"].as_u64(), first["pageSize"].as_u64()), (Some(3), Some(3)));
    let token = first["nextPageToken"].as_str().unwrap().to_owned();
    let second = catalog.get("/models", &[("pageSize", "3"), ("nextPageToken", &token)]).await.body;
    assert_eq!([names(&first), names(&second)].concat(), all);
    assert_eq!(second["nextPageToken"], "");
    let misused = catalog.get("/models", &[("q", "x"), ("nextPageToken", &token)]).await;
    assert_eq!(misused.status, StatusCode::BAD_REQUEST);
    assert_eq!(catalog.get("/models", &[]).await.body["pageSize"], 10);

    // Facet counts for the current query (a modelcat addition).
    let faceted = catalog.get("/models", &[("q", "text"), ("facets", "license,provider")]).await.body;
    assert_eq!(faceted["facets"]["license"], json!({"apache-2.0": 2, "llama3": 1}));
    assert_eq!(faceted["facets"]["provider"]["IBM"], 1);
}

#[tokio::test]
async fn model_detail_artifacts_and_performance() {
    let catalog = standard().await;
    let model = catalog.get("/sources/main/models/ibm/granite-8b-code", &[]).await;
    assert_eq!(model.status, StatusCode::OK);
    assert_eq!(
        (model.body["name"].as_str(), model.body["source_id"].as_str()),
        (Some("ibm/granite-8b-code"), Some("main"))
    );
    assert_eq!(model.body["createTimeSinceEpoch"], "1700000000000");
    assert_eq!(model.body["customProperties"]["size"], json!({"metadataType": "MetadataIntValue", "int_value": "8"}));
    let encoded = catalog.get("/sources/main/models/ibm%2Fgranite-8b-code", &[]).await;
    assert_eq!(encoded.body["id"], model.body["id"], "an encoded slash names the same model");
    assert_eq!(catalog.get("/sources/main/models/ibm/nothing", &[]).await.status, StatusCode::NOT_FOUND);
    assert_eq!(catalog.get("/sources/nope/models/ibm/granite-8b-code", &[]).await.status, StatusCode::NOT_FOUND);
    assert_eq!(catalog.get("/sources/off/models/ibm/granite-8b-code", &[]).await.status, StatusCode::NOT_FOUND);

    let artifacts = catalog.get("/sources/main/models/ibm/granite-8b-code/artifacts", &[]).await.body;
    assert_eq!(artifacts["size"], 3);
    assert_eq!(
        artifacts["items"].as_array().unwrap().iter().filter(|a| a["artifactType"] == "model-artifact").count(),
        1
    );
    let metrics = catalog
        .get(
            "/sources/main/models/ibm/granite-8b-code/artifacts",
            &[("artifactType", "metrics-artifact"), ("orderBy", "ttft_p90.double_value"), ("sortOrder", "DESC")],
        )
        .await
        .body;
    let latencies: Vec<f64> = metrics["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["customProperties"]["ttft_p90"]["double_value"].as_f64().unwrap())
        .collect();
    assert_eq!(latencies, [300.0, 50.0]);
    let filtered = catalog
        .get("/sources/main/models/ibm/granite-8b-code/artifacts", &[("filterQuery", "hardware_type = 'H100'")])
        .await
        .body;
    assert_eq!(filtered["size"], 1);
    let bad_order =
        catalog.get("/sources/main/models/ibm/granite-8b-code/artifacts", &[("orderBy", ".double_value")]).await;
    assert_eq!(bad_order.status, StatusCode::BAD_REQUEST);

    let sized = catalog
        .get("/sources/main/models/ibm/granite-8b-code/artifacts/performance", &[("targetRPS", "10")])
        .await
        .body;
    assert_eq!(sized["size"], 2, "performance metrics only: {sized}");
    let h100 = &sized["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["customProperties"]["hardware_type"]["string_value"] == "H100")
        .unwrap()["customProperties"];
    assert_eq!(h100["replicas"], json!({"metadataType": "MetadataIntValue", "int_value": "3"}));
    assert_eq!(h100["total_requests_per_second"]["double_value"], 12.0);
    let recommended = catalog
        .get("/sources/main/models/Meta/Llama-3-70B/artifacts/performance", &[("recommendations", "true")])
        .await
        .body;
    assert_eq!(recommended["size"], 2, "one per hardware type: {recommended}");
    assert_eq!(
        catalog
            .get("/sources/main/models/ibm/granite-8b-code/artifacts/performance", &[("targetRPS", "-1")])
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn filter_options_list_values_ranges_counts_and_named_queries() {
    let catalog = standard().await;
    let options = catalog.get("/models/filter_options", &[]).await.body;
    let filters = &options["filters"];
    assert_eq!(filters["license"]["type"], "string");
    assert_eq!(filters["license"]["values"], json!(["apache-2.0", "llama3"]));
    assert_eq!(filters["license"]["counts"], json!({"apache-2.0": 3, "llama3": 1}));
    assert_eq!(filters["tasks"]["values"], json!(["code-generation", "fill-mask", "text-generation"]));
    assert_eq!(filters["validated.string_value"]["values"], json!(["yes"]));
    assert_eq!(filters["size.int_value"], json!({"type": "number", "range": {"min": 8.0, "max": 8.0}}));
    assert_eq!(filters["artifacts.ttft_p90.double_value"]["range"], json!({"min": 40.0, "max": 400.0}));
    assert!(filters.get("name").is_none() && filters.get("source_id").is_none());
    assert_eq!(
        options["namedQueries"]["fast"]["artifacts.ttft_p90.double_value"],
        json!({"operator": "<", "value": 400.0})
    );
}

#[tokio::test]
async fn preview_reports_included_and_excluded_models() {
    let catalog = standard().await;
    let form = |config: &str| {
        reqwest::multipart::Form::new().text("config", config.to_owned()).text("catalogData", SECOND.to_owned())
    };
    let url = format!("{}{CATALOG}/sources/preview", catalog.app.address);
    let response = catalog
        .app
        .client
        .post(&url)
        .multipart(form("type: yaml\nexcludedModels: ['*-draft']\n"))
        .send()
        .await
        .unwrap();
    let preview = crate::helpers::reply(response).await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert_eq!(preview.body["summary"], json!({"totalModels": 2, "includedModels": 1, "excludedModels": 1}));
    assert_eq!(preview.body["items"][1], json!({"name": "mistral/mistral-7b-draft", "included": false}));
    let response = catalog
        .app
        .client
        .post(format!("{url}?filterStatus=excluded"))
        .multipart(form("type: yaml\nexcludedModels: ['*-draft']\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(crate::helpers::reply(response).await.body["size"], 1);
    let response =
        catalog.app.client.post(&url).multipart(form("type: yaml\nincludedModels: ['']\n")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let response = catalog.app.client.post(&url).multipart(form("kind: yaml\n")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn catalog_edits_reload_and_broken_edits_keep_the_last_good_models() {
    let catalog = standard().await;
    catalog.write("second.yaml", &SECOND.replace("mistral-7b,", "mistral-7b-v2,"));
    let seen = eventually(WAIT, || async {
        (catalog.names(&[("source", "second")]).await == ["mistral/mistral-7b-v2"]).then_some(())
    })
    .await;
    assert!(seen.is_some(), "the edit became searchable");

    catalog.write("second.yaml", "models:\n  - name: broken\n    colour: red\n");
    let error = eventually(WAIT, || async {
        let source = catalog.source("second").await;
        (source["status"] == "error").then(|| source["error"].as_str().unwrap().to_owned())
    })
    .await
    .expect("the broken edit shows an error");
    assert!(error.contains("colour") && error.contains("line 3"), "{error}");
    assert_eq!(catalog.names(&[("source", "second")]).await, ["mistral/mistral-7b-v2"], "last good models stay");

    catalog.write("second.yaml", SECOND);
    let recovered = eventually(WAIT, || async {
        let source = catalog.source("second").await;
        (source["status"] == "available" && catalog.names(&[("source", "second")]).await == ["mistral/mistral-7b"])
            .then_some(())
    })
    .await;
    assert!(recovered.is_some(), "a good save recovers");
    let missing = catalog.source("missing").await;
    assert_eq!(missing["status"], "error");
    catalog.write("nowhere.yaml", "models: [{name: found/now}]");
    let found =
        eventually(WAIT, || async { (catalog.names(&[("source", "missing")]).await == ["found/now"]).then_some(()) })
            .await;
    assert!(found.is_some(), "a source whose file appears starts serving");
}

#[tokio::test]
async fn sources_config_edits_add_remove_and_toggle_sources() {
    let catalog = standard().await;
    let edited = SOURCES
        .replace("enabled: false", "enabled: true")
        .replace("  - {id: second, name: Second, type: yaml, excludedModels: [\"*-draft\"], properties: {yamlCatalogPath: second.yaml}}\n", "")
        .replace("labels:\n", "  - {id: third, name: Third, type: yaml, properties: {yamlCatalogPath: second.yaml}}\nlabels:\n");
    assert!(edited.contains("third") && !edited.contains("id: second") && !edited.contains("enabled: false"));
    catalog.write("sources.yaml", &edited);
    let applied = eventually(WAIT, || async {
        let third = catalog.names(&[("source", "third")]).await;
        let off = catalog.names(&[("source", "off")]).await;
        let second = catalog.source("second").await;
        (third.len() == 2 && off.len() == 3 && second.is_null()).then_some(())
    })
    .await;
    assert!(
        applied.is_some(),
        "added, enabled and removed sources took effect: {}",
        catalog.get("/sources", &[]).await.body
    );
    assert!(catalog.names(&[("q", "mistral"), ("source", "second")]).await.is_empty());

    catalog.write("sources.yaml", "model_catalogs:\n  - id: x\n    nme: typo\n");
    let rejected = eventually(WAIT, || async {
        let status = catalog.get("/status", &[]).await.body;
        status["configError"].as_str().map(str::to_owned)
    })
    .await
    .expect("the rejected config is reported");
    assert!(rejected.contains("sources.yaml") && rejected.contains("nme"), "{rejected}");
    assert_eq!(catalog.names(&[("source", "third")]).await.len(), 2, "the previous config keeps serving");

    catalog.write(
        "sources.yaml",
        "model_catalogs:\n  - {id: registry, name: Mine, type: yaml, properties: {yamlCatalogPath: second.yaml}}\n",
    );
    let reserved = eventually(WAIT, || async {
        let status = catalog.get("/status", &[]).await.body;
        status["configError"].as_str().filter(|error| error.contains("reserved")).map(str::to_owned)
    })
    .await;
    assert!(reserved.is_some(), "the registry's source id cannot be taken by a config edit");
    assert_eq!(catalog.source("registry").await["name"], "Model Registry");
}

#[tokio::test]
async fn registered_models_join_the_catalog_and_leave_when_archived_or_deleted() {
    let catalog = standard().await;
    let app = &catalog.app;
    let id = app.create("/registered_models", json!({"name": "team/fraud-detector", "description": "Scores card payments", "provider": "Risk Team", "tasks": ["tabular-classification"], "customProperties": {"team": {"metadataType": "MetadataStringValue", "string_value": "risk"}}})).await;
    let version = app.create("/model_versions", json!({"name": "v1", "registeredModelId": id})).await;
    app.create(
        &format!("/model_versions/{version}/artifacts"),
        json!({"artifactType": "model-artifact", "name": "onnx", "uri": "s3://models/fraud/v1.onnx"}),
    )
    .await;
    let listed = eventually(Duration::from_secs(1), || async {
        let reply = catalog.get("/models", &[("q", "fraud"), ("source", "registry")]).await;
        (names(&reply.body) == ["team/fraud-detector"]).then_some(reply.body)
    })
    .await;
    assert!(listed.is_some(), "a registered model is searchable within a second");
    let artifacts = eventually(WAIT, || async {
        let body = catalog.get("/sources/registry/models/team/fraud-detector/artifacts", &[]).await.body;
        (body["size"] == 1).then_some(body)
    })
    .await
    .expect("the version's artifact follows");
    assert_eq!(artifacts["items"][0]["uri"], "s3://models/fraud/v1.onnx");
    assert_eq!(catalog.names(&[("filterQuery", "team = 'risk'")]).await, ["team/fraud-detector"]);

    app.patch(&format!("/registered_models/{id}"), json!({"state": "ARCHIVED"})).await;
    let archived =
        eventually(WAIT, || async { catalog.names(&[("source", "registry")]).await.is_empty().then_some(()) }).await;
    assert!(archived.is_some(), "archived models leave the catalog");
    let restored = app
        .patch(&format!("/registered_models/{id}"), json!({"state": "LIVE", "description": "Scores payments"}))
        .await;
    assert_eq!(restored.status, StatusCode::OK, "{}", restored.body);
    let back = eventually(WAIT, || async {
        let reply = catalog.get("/sources/registry/models/team/fraud-detector", &[]).await;
        (reply.body["description"] == "Scores payments").then_some(())
    })
    .await;
    assert!(back.is_some(), "restoring brings the model back, updated");
    assert_eq!(app.delete(&format!("/registered_models/{id}")).await.status, StatusCode::NO_CONTENT);
    let deleted =
        eventually(WAIT, || async { catalog.names(&[("source", "registry")]).await.is_empty().then_some(()) }).await;
    assert!(deleted.is_some(), "deleted models leave the catalog");
}

/// Kubeflow's own sample sources and catalogs (read from `../shared/reference/kubeflow` or
/// `MODELCAT_KUBEFLOW_REFERENCE`; skipped when absent): every catalog parses, and every sources file
/// serves with its YAML sources available.
#[tokio::test]
async fn kubeflow_reference_files_load() {
    let root = std::env::var_os("MODELCAT_KUBEFLOW_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/kubeflow"));
    if !root.join("sources").is_dir() {
        eprintln!("skipped: no Kubeflow reference files at {}", root.display());
        return;
    }
    let catalogs: Vec<PathBuf> =
        std::fs::read_dir(root.join("catalogs")).unwrap().map(|entry| entry.unwrap().path()).collect();
    for path in &catalogs {
        let records = modelcat_sources::parse_catalog(&std::fs::read(path).unwrap());
        assert!(records.is_ok(), "{}: {:?}", path.display(), records.err());
    }
    for entry in std::fs::read_dir(root.join("sources")).unwrap() {
        let sources = entry.unwrap().path();
        // Upstream resolves catalog paths next to the sources file: lay both out in one directory.
        let mut files = vec![("sources.yaml".to_owned(), std::fs::read_to_string(&sources).unwrap())];
        for path in &catalogs {
            files.push((
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(path).unwrap(),
            ));
        }
        let borrowed: Vec<(&str, &str)> = files.iter().map(|(name, text)| (name.as_str(), text.as_str())).collect();
        let catalog = Catalog::start(&borrowed).await;
        let listed = catalog.get("/sources", &[("pageSize", "100")]).await.body;
        for source in listed["items"].as_array().unwrap() {
            let (id, status) = (source["id"].as_str().unwrap(), source["status"].as_str().unwrap());
            if source["enabled"] == false {
                assert_eq!(status, "disabled", "{}: {source}", sources.display());
            } else if id.starts_with("hf") {
                // Hub sources start syncing from huggingface.co at once; offline, that sync fails.
                assert!(matches!(status, "available" | "error"), "{}: {source}", sources.display());
            } else {
                assert_eq!(status, "available", "{}: {source}", sources.display());
            }
        }
        let models = catalog.get("/models", &[("pageSize", "1000")]).await.body;
        let enabled_yaml = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| {
                s["status"] == "available" && s["id"] != "registry" && !s["id"].as_str().unwrap().starts_with("hf")
            })
            .count();
        assert_eq!(models["size"].as_u64().unwrap() > 0, enabled_yaml > 0, "{}: {models}", sources.display());

        // MCP sources are listed under their asset type. The reference holds no MCP catalog files, so an
        // enabled one shows the read error, naming its file, while the model sources serve.
        let text = &files[0].1;
        let mcp = catalog.get("/sources", &[("assetType", "mcp_servers"), ("pageSize", "100")]).await.body;
        let mcp = mcp["items"].as_array().unwrap();
        assert_eq!(!mcp.is_empty(), text.contains("mcp_catalogs:"), "{}: {mcp:?}", sources.display());
        let mcp_files = files.iter().any(|(_, text)| text.contains("mcp_servers:"));
        for source in mcp.iter().filter(|source| source["enabled"] == true) {
            assert_eq!(source["assetType"], "mcp_servers");
            if mcp_files {
                assert_eq!(source["status"], "available", "{}: {source}", sources.display());
            } else {
                assert_eq!(source["status"], "error", "{}: {source}", sources.display());
                let error = source["error"].as_str().unwrap_or_default();
                assert!(error.contains("cannot read") && error.contains("mcp-servers.yaml"), "{source}");
            }
        }
        // MCP named queries are offered with the MCP filter options, not the models'.
        let options =
            catalog.app.call(reqwest::Method::GET, "/api/mcp_catalog/v1alpha1/mcp_servers/filter_options", None).await;
        let named = options.body["namedQueries"].as_object().map(|queries| queries.len()).unwrap_or_default();
        assert_eq!(named > 0, text.contains("assetType: mcp_servers"), "{}: {}", sources.display(), options.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_restricted_to_sources_sees_only_them() {
    let catalog = standard().await;
    let app = &catalog.app;
    let body = json!({"name": "second only", "role": "viewer", "sources": ["second"]});
    let created = app.call(reqwest::Method::POST, "/api/modelcat/v1/tokens", Some(body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["sources"], json!(["second"]));
    let client = crate::helpers::authorized_client(created.body["token"].as_str().expect("token"));
    let get = |path: &str| {
        let request = client.get(format!("{}{path}", app.address));
        async move { crate::helpers::reply(request.send().await.expect("sent")).await }
    };
    let sources = get(&format!("{CATALOG}/sources")).await;
    let ids: Vec<&str> = sources.body["items"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["second"]);
    assert_eq!(names(&get(&format!("{CATALOG}/models")).await.body), ["mistral/mistral-7b"]);
    assert!(names(&get(&format!("{CATALOG}/models?source=main")).await.body).is_empty(), "another source selects none");
    let faceted = get(&format!("{CATALOG}/models?facets=provider")).await;
    assert_eq!(faceted.body["facets"]["provider"], json!({"Mistral": 1}), "{}", faceted.body);
    let options = get(&format!("{CATALOG}/models/filter_options")).await;
    assert_eq!(options.body["filters"]["provider"]["values"], json!(["Mistral"]), "{}", options.body);
    let everything = catalog.get("/models/filter_options", &[]).await;
    assert!(everything.body["filters"]["provider"]["values"].as_array().unwrap().len() > 1, "the admin sees all");
    let hidden = get(&format!("{CATALOG}/sources/main/models/ibm/granite-8b-code")).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND, "{}", hidden.body);
    let own = get(&format!("{CATALOG}/sources/second/models/mistral/mistral-7b")).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    let status = get(&format!("{CATALOG}/status")).await;
    let listed: Vec<&str> =
        status.body["sources"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(listed, ["second"]);
    // The Hub API and the change feed serve every source, so they refuse it.
    for path in ["/api/models", "/api/modelcat/v1/changes?wait=0"] {
        assert_eq!(get(path).await.status, StatusCode::FORBIDDEN, "{path}");
    }
    let bad = json!({"name": "x", "role": "viewer", "sources": []});
    let refused = app.call(reqwest::Method::POST, "/api/modelcat/v1/tokens", Some(bad)).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
}
