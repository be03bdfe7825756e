//! Behaviour of the server around the API: health, metrics, limits, the v1 mount, the CLI.

use std::process::Command;

use modelcat::config::ApiSettings;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Backend, TestApp};

async fn sqlite_app() -> TestApp {
    TestApp::spawn(Backend::Sqlite).await.expect("sqlite app")
}

#[tokio::test]
async fn health_readiness_and_root() {
    let app = sqlite_app().await;
    for path in ["/healthz", "/readyz", "/readyz/health"] {
        let response = app.client.get(format!("{}{path}", app.address)).send().await.expect("sent");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    let dirty = app.client.get(format!("{}/readyz/isDirty", app.address)).send().await.expect("sent");
    assert_eq!(dirty.text().await.expect("text"), "false");
    // The root leads to the web UI (the client follows the redirect); unknown paths are 404s.
    let root = app.client.get(format!("{}/", app.address)).send().await.expect("sent");
    assert_eq!((root.status(), root.url().path()), (StatusCode::OK, "/ui"));
    assert!(root.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let unknown = app.call(Method::GET, "/nowhere", None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.body["code"], "Not Found");
    let request_id = app.client.get(format!("{}/healthz", app.address)).send().await.expect("sent");
    assert!(request_id.headers().contains_key("x-request-id"));
}

#[tokio::test]
async fn metrics_count_requests_by_route() {
    let app = sqlite_app().await;
    app.get("/registered_models").await;
    app.get("/registered_models/12345").await;
    let body =
        app.client.get(format!("{}/metrics", app.address)).send().await.expect("sent").text().await.expect("text");
    assert!(body.contains("http_requests_total"), "{body}");
    assert!(body.contains("route=\"/api/model_registry/v1alpha3/registered_models/{id}\""), "{body}");
    assert!(body.contains("status=\"404\""), "{body}");
    assert!(body.contains("http_request_duration_seconds_bucket"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_resources_and_the_facet_cache_keeps_its_budget() {
    let budget = 8 * 1024;
    let app = TestApp::spawn_configured(Backend::Sqlite, |settings| settings.catalog.search_cache_bytes = budget)
        .await
        .expect("app");
    let catalog = format!("{}/api/model_catalog/v1alpha1/models", app.address);
    // Several index generations (each registration is one), each with many distinct faceted searches.
    for round in 0..4 {
        app.create("/registered_models", json!({"name": format!("model-{round}")})).await;
        for query in 0..60 {
            let q = format!("model-{round} query-{query}");
            let response = app
                .client
                .get(&catalog)
                .query(&[("q", q.as_str()), ("facets", "provider"), ("facets", "license")])
                .send()
                .await
                .expect("sent");
            assert_eq!(response.status(), StatusCode::OK);
        }
    }
    // The registrations are indexed by the follower in the background: under a busy test run, wait until
    // they are searchable before reading the index's figures.
    let indexed = crate::helpers::eventually(std::time::Duration::from_secs(20), || async {
        let page = app.client.get(format!("{catalog}?source=registry")).send().await.ok()?;
        let page: serde_json::Value = page.json().await.ok()?;
        (page["size"].as_u64() == Some(4)).then_some(())
    })
    .await;
    assert!(indexed.is_some(), "the four registered models never became searchable");
    let body =
        app.client.get(format!("{}/metrics", app.address)).send().await.expect("sent").text().await.expect("text");
    let gauge = |line_start: &str| -> f64 {
        let line =
            body.lines().find(|line| line.starts_with(line_start)).unwrap_or_else(|| panic!("{line_start}: {body}"));
        line.rsplit(' ').next().and_then(|value| value.parse().ok()).expect("a number")
    };
    let facets = gauge("modelcat_cache_bytes{cache=\"facets\"}");
    assert!(facets > 0.0 && facets <= budget as f64, "facet cache holds {facets} bytes of a {budget} budget");
    assert!(gauge("modelcat_cache_entries{cache=\"facets\"}") >= 1.0);
    assert!(gauge("modelcat_process_heap_bytes") > 1e6);
    assert!(gauge("modelcat_process_open_fds") >= 3.0);
    assert!(gauge("modelcat_index_segments") >= 1.0);
    assert!(gauge("modelcat_sqlite_wal_bytes") > 0.0);
    assert!(gauge("modelcat_tokio_alive_tasks") >= 1.0);
    for cache in ["filter_options", "hub_repos"] {
        gauge(&format!("modelcat_cache_bytes{{cache=\"{cache}\"}}"));
    }
}

#[tokio::test]
async fn default_page_size_is_bounded_and_max_is_enforced() {
    let api = ApiSettings { default_page_size: 3, max_page_size: 4, ..ApiSettings::default() };
    let app = TestApp::spawn_with(Backend::Sqlite, api).await.expect("app");
    for index in 0..6 {
        app.create("/registered_models", json!({"name": format!("m{index}")})).await;
    }
    let default_page = app.get("/registered_models").await.body;
    assert_eq!(default_page["size"], 3);
    assert_eq!(default_page["pageSize"], 3);
    assert_ne!(default_page["nextPageToken"], "");
    let clamped = app.get_query("/registered_models", &[("pageSize", "100")]).await.body;
    assert_eq!(clamped["size"], 4);
    let rest = app
        .get_query(
            "/registered_models",
            &[("pageSize", "100"), ("nextPageToken", clamped["nextPageToken"].as_str().unwrap())],
        )
        .await
        .body;
    assert_eq!(rest["size"], 2);
    assert_eq!(rest["nextPageToken"], "");
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let api = ApiSettings { max_body_bytes: 2048, ..ApiSettings::default() };
    let app = TestApp::spawn_with(Backend::Sqlite, api).await.expect("app");
    let huge = app.post("/registered_models", json!({"name": "big", "readme": "x".repeat(4096)})).await;
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn v1_mount_serves_the_same_store_with_string_steps() {
    let app = sqlite_app().await;
    let metric =
        app.post("/artifacts", json!({"artifactType": "metric", "name": "acc", "value": 0.5, "step": 7})).await;
    assert_eq!(metric.body["step"], 7);
    let id = metric.body["id"].as_str().expect("id");
    let through_v1 = app.call(Method::GET, &format!("/api/model_registry/v1/artifacts/{id}"), None).await;
    assert_eq!(through_v1.status, StatusCode::OK);
    assert_eq!(through_v1.body["step"], "7");
    let created = app
        .call(
            Method::POST,
            "/api/model_registry/v1/artifacts",
            Some(json!({"artifactType": "metric", "name": "f1", "step": "3"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
}

#[tokio::test]
async fn openapi_document_matches_the_router() {
    let app = sqlite_app().await;
    let response =
        app.client.get(format!("{}/api/model_registry/v1alpha3/openapi.yaml", app.address)).send().await.expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    let document: serde_json::Value =
        serde_norway::from_str(&response.text().await.expect("text")).expect("valid YAML");
    assert_eq!(document["openapi"], "3.0.3");
    let paths = document["paths"].as_object().expect("paths");
    assert_eq!(paths.len(), 34);
    assert!(document["components"]["schemas"]["RegisteredModelCreate"]["required"].as_array().is_some());
    for (path, item) in paths {
        let concrete = path.replace("{id}", "1");
        for method in ["get", "post", "patch", "delete"] {
            let documented = item.get(method).is_some();
            let reply = app
                .call(method.to_uppercase().parse().expect("method"), &concrete, (method != "get").then(|| json!({})))
                .await;
            if documented {
                assert_ne!(
                    reply.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is documented but not routed"
                );
                assert_ne!(reply.body["message"], "not found", "{method} {path} is documented but not routed");
            } else {
                assert_eq!(
                    reply.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is routed but not documented"
                );
            }
        }
    }
    let delete = &paths["/api/model_registry/v1alpha3/registered_models/{id}"]["delete"];
    assert_eq!(delete["operationId"], "deleteRegisteredModel");
}

#[tokio::test]
async fn the_catalog_openapi_document_lists_every_catalog_route() {
    let app = sqlite_app().await;
    let base = "/api/model_catalog/v1alpha1";
    let response = app.anonymous.get(format!("{}{base}/openapi.yaml", app.address)).send().await.expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    let document: serde_json::Value =
        serde_norway::from_str(&response.text().await.expect("text")).expect("valid YAML");
    assert_eq!(document["servers"][0]["url"], base);
    let paths = document["paths"].as_object().expect("paths");
    // Each documented path is routed (a 404 names what is missing, never an unknown path), and each
    // operation lists the auth refusals every route can give.
    for (path, item) in paths {
        let concrete = path.replace("{source_id}", "example").replace("{model_name}", "example/sentiment-small");
        let method = if item.get("get").is_some() { Method::GET } else { Method::POST };
        let reply = app.call(method.clone(), &format!("{base}{concrete}"), None).await;
        assert_ne!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_ne!(reply.body["message"], "not found", "{method} {path} is documented but not routed");
        for operation in item.as_object().expect("item").iter().filter(|(key, _)| *key != "parameters") {
            let responses = operation.1["responses"].as_object().expect("responses");
            if path != "/openapi.yaml" {
                assert!(responses.contains_key("401") && responses.contains_key("403"), "{path}");
            }
        }
    }
    assert_eq!(paths.len(), 10, "{:?}", paths.keys().collect::<Vec<_>>());
}

#[test]
fn cli_reports_configuration_errors() {
    let binary = env!("CARGO_BIN_EXE_modelcat");
    let dir = tempfile::tempdir().expect("tempdir");
    let missing =
        Command::new(binary).args(["serve", "--config"]).arg(dir.path().join("absent.yaml")).output().expect("runs");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("absent.yaml"));

    let config = dir.path().join("modelcat.yaml");
    std::fs::write(&config, "listen: 127.0.0.1:0\napi:\n  default_pagesize: 5\n").expect("write");
    let unknown = Command::new(binary).args(["serve", "--config"]).arg(&config).output().expect("runs");
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(!unknown.status.success());
    assert!(stderr.contains("default_pagesize") && stderr.contains("line 3"), "{stderr}");

    std::fs::write(&config, "listen: 127.0.0.1:0\n").expect("write");
    let bad_url = Command::new(binary)
        .args(["serve", "--config"])
        .arg(&config)
        .env("MODELCAT_DATABASE_URL", "mysql://nope")
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&bad_url.stderr).contains("database_url"), "env overrides the file");
}
