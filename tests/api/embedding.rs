//! Embedding modelcat over HTTP: CORS preflights on every route, conditional requests (`ETag`,
//! `If-None-Match`, 304) whose tags move exactly with the data, the API families listing with their
//! documents, the `v1` mounts of the Kubeflow catalog and the alpha paths' deprecation headers.

use std::collections::BTreeMap;
use std::time::Duration;

use modelcat::api::cors::CorsSettings;
use modelcat::api::families::AlphaDeprecation;
use modelcat::fake_hub::FakeHub;
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, eventually};

const ALLOWED: &str = "http://portal.test:8080";
const WILDCARD_MATCH: &str = "https://dash.corp.test";
const FOREIGN: &str = "http://evil.test";

fn allowing_portal() -> CorsSettings {
    CorsSettings {
        allowed_origins: vec![ALLOWED.to_owned(), "https://*.corp.test".to_owned()],
        allow_credentials: true,
        ..CorsSettings::default()
    }
}

/// Every documented path of every family (`GET /api`, then each OpenAPI document), with its methods,
/// plus the Hub-compatible and operational routes, which have no document.
async fn every_route(app: &TestApp) -> Vec<(Method, String)> {
    let families = app.call(Method::GET, "/api", None).await;
    assert_eq!(families.status, StatusCode::OK);
    let mut routes = Vec::new();
    for family in families.body["families"].as_array().expect("families") {
        for version in family["versions"].as_array().expect("versions") {
            let Some(url) = version["openapi"].as_str() else { continue };
            let response = app.anonymous.get(format!("{}{url}", app.address)).send().await.expect("document");
            assert_eq!(response.status(), StatusCode::OK, "{url}");
            let document: Value = serde_norway::from_str(&response.text().await.unwrap()).expect("YAML document");
            let server = document["servers"][0]["url"].as_str().unwrap_or_default().to_owned();
            for (path, item) in document["paths"].as_object().expect("paths") {
                let concrete =
                    path.split('/').map(|part| if part.starts_with('{') { "1" } else { part }).collect::<Vec<_>>();
                let concrete = format!("{server}{}", concrete.join("/"));
                for method in item.as_object().unwrap().keys() {
                    // Besides methods, a path item may hold shared parameters.
                    if ["get", "head", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                        routes.push((Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(), concrete.clone()));
                    }
                }
            }
        }
    }
    for path in [
        "/api/models",
        "/api/models/org/m",
        "/org/m/resolve/main/config.json",
        "/healthz",
        "/readyz",
        "/metrics",
        "/api",
    ] {
        routes.push((Method::GET, path.to_owned()));
    }
    routes
}

async fn preflight(app: &TestApp, method: &Method, path: &str, origin: &str) -> (StatusCode, HeaderMap) {
    let response = app
        .anonymous
        .request(Method::OPTIONS, format!("{}{path}", app.address))
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, method.as_str())
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization,content-type")
        .send()
        .await
        .expect("preflight");
    (response.status(), response.headers().clone())
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or_default()
}

#[tokio::test]
async fn every_route_answers_preflights_for_allowed_origins_only() {
    let app = TestApp::spawn_configured(Backend::Sqlite, |settings| settings.api.cors = allowing_portal())
        .await
        .expect("sqlite always runs");
    let routes = every_route(&app).await;
    assert!(routes.len() > 40, "the documents list every route: {}", routes.len());
    for (method, path) in &routes {
        let (status, headers) = preflight(&app, method, path, ALLOWED).await;
        assert_eq!(status, StatusCode::OK, "{method} {path}");
        assert_eq!(header_text(&headers, header::ACCESS_CONTROL_ALLOW_ORIGIN), ALLOWED, "{method} {path}");
        let methods = header_text(&headers, header::ACCESS_CONTROL_ALLOW_METHODS);
        assert!(methods.contains(method.as_str()), "{method} {path}: {methods}");
        let allowed_headers = header_text(&headers, header::ACCESS_CONTROL_ALLOW_HEADERS);
        assert!(allowed_headers.contains("authorization"), "{method} {path}: {allowed_headers}");
        assert_eq!(header_text(&headers, header::ACCESS_CONTROL_ALLOW_CREDENTIALS), "true");
        assert_eq!(header_text(&headers, header::ACCESS_CONTROL_MAX_AGE), "600");

        let (status, headers) = preflight(&app, method, path, FOREIGN).await;
        assert_eq!(status, StatusCode::OK, "{method} {path}");
        assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none(), "{method} {path} allowed {FOREIGN}");
        assert!(headers.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none(), "{method} {path}");
    }
    // A wildcard subdomain is allowed, without credentials.
    let (_, headers) = preflight(&app, &Method::GET, "/api/model_catalog/v1alpha1/models", WILDCARD_MATCH).await;
    assert_eq!(header_text(&headers, header::ACCESS_CONTROL_ALLOW_ORIGIN), WILDCARD_MATCH);
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
    let (_, headers) = preflight(&app, &Method::GET, "/api/model_catalog/v1alpha1/models", "https://corp.test").await;
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none(), "the bare domain is not a subdomain");

    // The actual request: allowed origins may read the answer and the exposed headers, errors included.
    let catalog = app
        .client
        .get(format!("{}/api/model_catalog/v1alpha1/sources", app.address))
        .header(header::ORIGIN, ALLOWED)
        .send()
        .await
        .unwrap();
    assert_eq!(catalog.status(), StatusCode::OK);
    assert_eq!(header_text(catalog.headers(), header::ACCESS_CONTROL_ALLOW_ORIGIN), ALLOWED);
    let exposed = header_text(catalog.headers(), header::ACCESS_CONTROL_EXPOSE_HEADERS).to_owned();
    for name in ["etag", "link", "x-repo-commit", "x-request-id"] {
        assert!(exposed.contains(name), "{name} is exposed: {exposed}");
    }
    let refused = app
        .anonymous
        .get(format!("{}/api/model_registry/v1alpha3/registered_models", app.address))
        .header(header::ORIGIN, ALLOWED)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header_text(refused.headers(), header::ACCESS_CONTROL_ALLOW_ORIGIN), ALLOWED, "a page can read the 401");
}

#[tokio::test]
async fn the_default_is_same_origin_only_and_bad_cors_settings_are_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("sqlite always runs");
    let (status, headers) = preflight(&app, &Method::GET, "/api/model_catalog/v1alpha1/models", ALLOWED).await;
    assert_eq!(status, StatusCode::OK, "a preflight is answered, not 405");
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    let response = app
        .client
        .get(format!("{}/api/model_catalog/v1alpha1/models", app.address))
        .header(header::ORIGIN, ALLOWED)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("modelcat.yaml");
    std::fs::write(&config, "api:\n  cors:\n    allowed_origins: ['*', 'https://*.com']\n").unwrap();
    let overrides = modelcat::config::Overrides { config: Some(config), ..Default::default() };
    let Err(error) = modelcat::config::Settings::load(overrides) else { panic!("invalid CORS settings were accepted") };
    let error = error.to_string();
    assert!(error.contains("api.cors.allowed_origins: \"*\""), "{error}");
    assert!(error.contains("\"https://*.com\""), "{error}");
}

/// Sources: a YAML catalog, a Hub mirror syncing every second, and the registry.
async fn spawn_with_sources(hub_url: &str) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("main.yaml"), catalog_file("A code model.")).unwrap();
    let sources = format!(
        "model_catalogs:\n  - {{id: main, name: Main, type: yaml, properties: {{yamlCatalogPath: main.yaml}}}}\n  \
         - id: hub\n    name: Hub\n    type: hf\n    includedModels: [org/*]\n    properties: {{url: \"{hub_url}\", \
         syncInterval: 1s}}\n"
    );
    std::fs::write(dir.path().join("sources.yaml"), sources).unwrap();
    let path = dir.path().join("sources.yaml");
    let app = TestApp::spawn_configured(Backend::Sqlite, |settings| {
        settings.catalog.sources = vec![path];
        settings.catalog.debounce = Duration::from_millis(30);
    })
    .await
    .expect("sqlite always runs");
    (app, dir)
}

fn catalog_file(description: &str) -> String {
    format!(
        "source: Main\nmodels:\n  - name: ibm/granite\n    provider: IBM\n    description: {description}\n    \
         license: apache-2.0\n    tasks: [text-generation]\n  - name: google/bert\n    provider: Google\n    \
         license: apache-2.0\n    tasks: [fill-mask]\n"
    )
}

/// A conditional GET: (status, ETag, Cache-Control, body length).
async fn conditional_get(app: &TestApp, path: &str, tag: Option<&str>) -> (StatusCode, String, String, usize) {
    let mut request = app.client.get(format!("{}{path}", app.address));
    if let Some(tag) = tag {
        request = request.header(header::IF_NONE_MATCH, tag);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let etag = header_text(response.headers(), header::ETAG).to_owned();
    let cache = header_text(response.headers(), header::CACHE_CONTROL).to_owned();
    let body = response.bytes().await.expect("body");
    (status, etag, cache, body.len())
}

/// Each route's current tag, checking on the way that it is stable and that it answers 304.
async fn tags(app: &TestApp, routes: &[String]) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    for path in routes {
        let (status, mut tag, cache, _) = conditional_get(app, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(tag.starts_with('"') && tag.len() > 2, "{path} has a tag: {tag:?}");
        assert_eq!(cache, "private, no-cache", "{path}: answers to a token are private");
        // A change applied between the two reads (a reload in flight) gives a 200 with a new tag:
        // read again. A 200 that carries the very tag sent would be the bug.
        let mut confirmed = false;
        for _ in 0..5 {
            let (status, again, _, length) = conditional_get(app, path, Some(&tag)).await;
            if status == StatusCode::OK {
                assert_ne!(again, tag, "{path}: a 200 to a matching tag");
                tag = again;
                continue;
            }
            assert_eq!((status, length), (StatusCode::NOT_MODIFIED, 0), "{path}: 304 without a body");
            assert_eq!(again, tag, "{path}: a 304 carries the tag");
            confirmed = true;
            break;
        }
        assert!(confirmed, "{path}: the answer settled and a matching tag got a 304");
        let (status, _, _, length) = conditional_get(app, path, Some("\"stale\"")).await;
        assert_eq!(status, StatusCode::OK, "{path}: another tag gets the answer");
        assert!(length > 0, "{path}");
        tags.insert(path.clone(), tag);
    }
    tags
}

/// The routes whose tag changed between two readings.
fn changed(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    before.iter().filter(|(path, tag)| after.get(*path) != Some(tag)).map(|(path, _)| path.clone()).collect()
}

#[tokio::test]
async fn tags_change_exactly_when_the_answer_does() {
    let hub = FakeHub::new(0, 50);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (hub_url, task) = hub.serve(listener).await.unwrap();
    std::mem::forget(task);
    let (app, dir) = spawn_with_sources(&hub_url).await;
    let model = app.create("/registered_models", json!({"name": "tagged", "description": "first"})).await;
    let catalog = "/api/model_catalog/v1alpha1";
    let hub_id = hub.model_ids().into_iter().find(|id| id.starts_with("org/")).expect("a fake Hub model under org/");
    // The mirror and the registry source are in the catalog before the first reading.
    let loaded = eventually(Duration::from_secs(20), || async {
        for source in ["hub", "registry"] {
            let reply = app.call(Method::GET, &format!("{catalog}/models?source={source}"), None).await;
            reply.body["size"].as_u64().filter(|size| *size > 0)?;
        }
        Some(())
    })
    .await;
    assert!(loaded.is_some(), "the Hub mirror and the registry were indexed");

    let main_routes = [
        format!("{catalog}/models?source=main"),
        format!("{catalog}/models?q=granite&source=main"),
        format!("{catalog}/sources/main/models/ibm/granite"),
        format!("{catalog}/models/filter_options"),
    ];
    let registry_routes = [
        "/api/model_registry/v1alpha3/registered_models".to_owned(),
        format!("/api/model_registry/v1alpha3/registered_models/{model}"),
        format!("/api/model_registry/v1/registered_models/{model}"),
        format!("{catalog}/models?source=registry"),
    ];
    let hub_routes = ["/api/models?author=org".to_owned(), format!("/api/models/{hub_id}")];
    // Not `/sources`: it shows the Hub source's sync progress and times, which every sync moves.
    let steady = [format!("{catalog}/labels"), format!("{catalog}/sources?assetType=mcp_servers")];
    let all: Vec<String> =
        main_routes.iter().chain(&registry_routes).chain(&hub_routes).chain(&steady).cloned().collect();
    let first = tags(&app, &all).await;
    // Nothing changed: every tag holds, across Hub syncs of unchanged data.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(changed(&first, &tags(&app, &all).await), Vec::<String>::new());

    // A registry write moves the registry's answers (and the catalog's view of the registry) only.
    let patched = app
        .call(
            Method::PATCH,
            &format!("/api/model_registry/v1alpha3/registered_models/{model}"),
            Some(json!({"description": "second"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    let registry_moved = eventually(Duration::from_secs(10), || async {
        let now = tags(&app, &all).await;
        (changed(&first, &now).len() == registry_routes.len()).then_some(now)
    })
    .await;
    let second = registry_moved.unwrap_or_else(|| panic!("only the registry's tags moved"));
    let mut expected: Vec<String> = registry_routes.to_vec();
    expected.sort();
    assert_eq!(changed(&first, &second), expected);

    // A YAML edit moves the main source's answers only.
    let file = dir.path().join("main.yaml");
    std::fs::write(file.with_extension("swp"), catalog_file("An edited code model.")).unwrap();
    std::fs::rename(file.with_extension("swp"), &file).unwrap();
    let applied = eventually(Duration::from_secs(10), || async {
        let now = tags(&app, &all).await;
        (!changed(&second, &now).is_empty()).then_some(())
    })
    .await;
    assert!(applied.is_some(), "the edit was applied");
    // The reload may have landed midway through that reading: read every route again, after it.
    let third = tags(&app, &all).await;
    let moved = changed(&second, &third);
    // filter_options counts every source: it moves only when the values it lists do.
    assert!(moved.len() >= 3 && moved.iter().all(|path| main_routes.contains(path)), "{moved:?}");

    // A Hub sync that brings a change moves the Hub answers.
    hub.touch(&hub_id).expect("the fake Hub knows the model");
    let fourth = eventually(Duration::from_secs(15), || async {
        let now = tags(&app, &all).await;
        changed(&third, &now).iter().any(|path| path.starts_with("/api/models/")).then_some(now)
    })
    .await
    .expect("the touched model was synced");
    let moved = changed(&third, &fourth);
    assert!(
        moved
            .iter()
            .all(|path| hub_routes.contains(path) || path.contains("source=hub") || path.contains("filter_options")),
        "{moved:?}"
    );
}

#[tokio::test]
async fn conditional_answers_follow_the_caller() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("sqlite always runs");
    let path = "/api/model_catalog/v1alpha1/sources";
    let (_, tag, _, _) = conditional_get(&app, path, None).await;
    // Anonymous answers are shared-cacheable, and a caller's tag does not short-cut another's answer.
    let response =
        app.anonymous.get(format!("{}{path}", app.address)).header(header::IF_NONE_MATCH, &tag).send().await.unwrap();
    assert!(matches!(response.status(), StatusCode::OK | StatusCode::NOT_MODIFIED));
    assert_eq!(header_text(response.headers(), header::CACHE_CONTROL), "no-cache");
    assert!(header_text(response.headers(), header::VARY).contains("authorization"));
    // Writes and errors are never stored.
    let missing = app
        .client
        .get(format!("{}/api/model_registry/v1alpha3/registered_models/999", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(header_text(missing.headers(), header::CACHE_CONTROL), "no-store");
    let document = app.anonymous.get(format!("{}/api/modelcat/v1/openapi.yaml", app.address)).send().await.unwrap();
    assert_eq!(header_text(document.headers(), header::CACHE_CONTROL), "public, max-age=3600");
}

#[tokio::test]
async fn families_documents_and_v1_mounts() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("sqlite always runs");
    let families = app.anonymous.get(format!("{}/api", app.address)).send().await.unwrap();
    assert_eq!(families.status(), StatusCode::OK);
    let families: Value = families.json().await.unwrap();
    let ids: Vec<&str> =
        families["families"].as_array().unwrap().iter().map(|family| family["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["model_registry", "model_catalog", "mcp_catalog", "modelcat", "governance", "huggingface_hub"]);
    assert_eq!(families["families"][1]["versions"][1]["status"], "alpha");
    for (url, base) in [
        ("/api/model_registry/v1/openapi.yaml", "/api/model_registry/v1/registered_models"),
        ("/api/model_registry/v1alpha3/openapi.yaml", "/api/model_registry/v1alpha3/registered_models"),
    ] {
        let text = app.anonymous.get(format!("{}{url}", app.address)).send().await.unwrap().text().await.unwrap();
        let document: Value = serde_norway::from_str(&text).unwrap();
        assert!(document["paths"].as_object().unwrap().contains_key(base), "{url} documents {base}");
    }
    for (url, server) in [
        ("/api/model_catalog/v1/openapi.yaml", "/api/model_catalog/v1"),
        ("/api/model_catalog/v1alpha1/openapi.yaml", "/api/model_catalog/v1alpha1"),
        ("/api/mcp_catalog/v1/openapi.yaml", "/api/mcp_catalog/v1"),
        ("/api/mcp_catalog/v1alpha1/openapi.yaml", "/api/mcp_catalog/v1alpha1"),
        ("/api/modelcat/v1/openapi.yaml", "/api/modelcat/v1"),
        ("/api/governance/v1/openapi.yaml", "/api/governance/v1"),
    ] {
        let text = app.anonymous.get(format!("{}{url}", app.address)).send().await.unwrap().text().await.unwrap();
        let document: Value = serde_norway::from_str(&text).unwrap();
        assert_eq!(document["servers"][0]["url"], server, "{url}");
    }
    // v1 answers as the alpha path does, with the same stricter orderBy.
    for path in ["/sources", "/models?pageSize=5", "/labels", "/models/filter_options"] {
        let alpha = app.call(Method::GET, &format!("/api/model_catalog/v1alpha1{path}"), None).await;
        let v1 = app.call(Method::GET, &format!("/api/model_catalog/v1{path}"), None).await;
        assert_eq!((alpha.status, &alpha.body), (v1.status, &v1.body), "{path}");
    }
    let bad = app.call(Method::GET, "/api/model_catalog/v1/models?orderBy=SIZE", None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body["message"].as_str().unwrap().contains("invalid orderBy"), "{}", bad.body);
    // The modelcat status answers like the catalog's.
    let status = app.call(Method::GET, "/api/modelcat/v1/status", None).await;
    assert_eq!(status.status, StatusCode::OK);
    assert!(status.body["replica"]["caughtUp"].is_boolean(), "{}", status.body);
    // No deprecation headers unless configured.
    let alpha = app.call(Method::GET, "/api/model_catalog/v1alpha1/sources", None).await;
    assert!(alpha.headers.get("deprecation").is_none());
}

#[tokio::test]
async fn alpha_paths_announce_their_deprecation_when_configured() {
    let deprecation = AlphaDeprecation { since: "2026-12-01".into(), sunset: Some("2027-06-30".into()) };
    let app = TestApp::spawn_configured(Backend::Sqlite, |settings| settings.api.alpha_deprecation = Some(deprecation))
        .await
        .expect("sqlite always runs");
    for (alpha, successor) in [
        ("/api/model_catalog/v1alpha1/sources", "/api/model_catalog/v1"),
        ("/api/model_registry/v1alpha3/registered_models", "/api/model_registry/v1"),
    ] {
        let reply = app.call(Method::GET, alpha, None).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(header_text(&reply.headers, header::HeaderName::from_static("deprecation")), "@1796083200");
        assert_eq!(
            header_text(&reply.headers, header::HeaderName::from_static("sunset")),
            "Wed, 30 Jun 2027 00:00:00 GMT"
        );
        assert_eq!(header_text(&reply.headers, header::LINK), format!("<{successor}>; rel=\"successor-version\""));
    }
    let families = app.call(Method::GET, "/api", None).await.body;
    assert_eq!(families["families"][1]["versions"][1]["status"], "deprecated", "{families}");
    for path in ["/api/model_catalog/v1/sources", "/api/model_registry/v1/registered_models", "/api/modelcat/v1/whoami"]
    {
        let reply = app.call(Method::GET, path, None).await;
        assert!(reply.headers.get("deprecation").is_none(), "{path}");
    }
}
