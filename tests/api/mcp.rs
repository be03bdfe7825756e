//! The MCP catalog over HTTP (`/api/mcp_catalog/v1alpha1`): listing, search, filters, named queries,
//! paging, tools, filter options, `assetType` on `/sources` and `/labels`, hot reload and per-source
//! errors, on MCP catalogs written here.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, Reply, TestApp, eventually};

const MCP: &str = "/api/mcp_catalog/v1alpha1";
const CATALOG: &str = "/api/model_catalog/v1alpha1";
const WAIT: Duration = Duration::from_secs(10);

const SOURCES: &str = r#"
model_catalogs:
  - {id: models, name: Models, type: yaml, properties: {yamlCatalogPath: models.yaml}}
mcp_catalogs:
  - {id: community, name: Community MCP, type: yaml, labels: [Community], properties: {yamlCatalogPath: community.yaml}}
  - {id: partner, name: Partner MCP, type: yaml, excludedServers: ["*-beta"], properties: {yamlCatalogPath: partner.yaml}}
labels:
  - {name: Community, assetType: mcp_servers}
  - {name: Validated}
namedQueries:
  audited:
    assetType: mcp_servers
    filters:
      verifiedSource: {operator: "=", value: true}
      sast: {operator: "=", value: true}
  remote:
    assetType: mcp_servers
    filters:
      deploymentMode: {operator: "=", value: remote}
"#;

const MODELS: &str = "source: Models\nmodels:\n  - name: org/calculator-llm\n    description: A model.\n";

const COMMUNITY: &str = r#"
mcp_servers:
  - name: calculator
    description: Arithmetic for agents.
    provider: Math Community
    license: MIT
    tags: [math]
    transports: [stdio]
    deploymentMode: local
    securityIndicators: {verifiedSource: true, sast: true, readOnlyTools: true}
    customProperties:
      tier: {metadataType: MetadataStringValue, string_value: gold}
      rating: {metadataType: MetadataDoubleValue, double_value: 4.5}
    createTimeSinceEpoch: "1700000000000"
    tools:
      - {name: add, description: Adds two numbers., accessType: read_only,
         parameters: [{name: a, type: number, required: true}, {name: b, type: number, required: true}]}
      - {name: divide, accessType: read_only}
      - {name: reset_memory, accessType: execute}
  - name: weather-api
    description: Forecasts by city.
    provider: Weather Community
    license: MIT
    tags: [weather]
    deploymentMode: remote
    endpoints: {http: "https://weather.example.com/mcp"}
    securityIndicators: {verifiedSource: false}
    tools:
      - {name: forecast, accessType: read_only}
  - name: file-manager
    description: File system management in a sandbox.
    provider: Workspace Tools
    license: Apache-2.0
    customProperties:
      tier: {metadataType: MetadataStringValue, string_value: ""}
    tools:
      - {name: read_file, accessType: read_only}
      - {name: write_file, accessType: read_write}
"#;

const PARTNER: &str = r#"
mcp_servers:
  - name: remote-http-server
    description: A hosted server.
    provider: CloudMCP
    license: Apache-2.0
    deploymentMode: remote
    endpoints: {http: "https://cloud.example.com/mcp", websocket: "wss://cloud.example.com/ws"}
  - name: search-beta
    provider: CloudMCP
"#;

struct Mcp {
    app: TestApp,
    dir: tempfile::TempDir,
}

impl Mcp {
    async fn start() -> Mcp {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, text) in [
            ("sources.yaml", SOURCES),
            ("models.yaml", MODELS),
            ("community.yaml", COMMUNITY),
            ("partner.yaml", PARTNER),
        ] {
            std::fs::write(dir.path().join(name), text).expect("fixture");
        }
        let sources = vec![dir.path().join("sources.yaml")];
        let app = TestApp::spawn_configured(Backend::Sqlite, |settings| {
            settings.catalog.sources = sources;
            settings.catalog.debounce = Duration::from_millis(30);
        })
        .await
        .expect("sqlite always runs");
        Mcp { app, dir }
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Reply {
        let request = self.app.anonymous.get(format!("{}{path}", self.app.address)).query(query);
        crate::helpers::reply(request.send().await.expect("request sent")).await
    }

    /// The names a server listing returns (checking it succeeded).
    async fn names(&self, query: &[(&str, &str)]) -> BTreeSet<String> {
        let reply = self.get(&format!("{MCP}/mcp_servers"), query).await;
        assert_eq!(reply.status, StatusCode::OK, "{query:?}: {}", reply.body);
        names(&reply.body)
    }

    async fn server(&self, name: &str) -> Value {
        let reply = self.get(&format!("{MCP}/mcp_servers"), &[("name", name)]).await;
        reply.body["items"][0].clone()
    }

    fn write(&self, name: &str, text: &str) {
        let path = self.dir.path().join(name);
        std::fs::write(path.with_extension("swp"), text).expect("write");
        std::fs::rename(path.with_extension("swp"), path).expect("rename");
    }
}

fn names(body: &Value) -> BTreeSet<String> {
    body["items"].as_array().expect("items").iter().map(|item| item["name"].as_str().unwrap().to_owned()).collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

#[tokio::test]
async fn servers_list_search_filter_and_page() {
    let mcp = Mcp::start().await;
    let all = set(&["calculator", "file-manager", "remote-http-server", "weather-api"]);
    let listed = mcp.get(&format!("{MCP}/mcp_servers"), &[]).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(names(&listed.body), all, "search-beta is excluded by its source");
    for server in listed.body["items"].as_array().unwrap() {
        for field in ["id", "name", "source_id", "toolCount", "createTimeSinceEpoch", "lastUpdateTimeSinceEpoch"] {
            assert!(!server[field].is_null(), "{field}: {server}");
        }
        assert!(server.get("tools").is_none(), "tools only when asked: {server}");
    }
    let calculator = mcp.server("calculator").await;
    assert_eq!(calculator["toolCount"], 3);
    assert_eq!(calculator["createTimeSinceEpoch"], "1700000000000");
    assert_eq!(calculator["securityIndicators"], json!({"verifiedSource": true, "sast": true, "readOnlyTools": true}));
    assert_eq!(calculator["customProperties"]["tier"]["string_value"], "gold");
    assert_eq!(calculator["source_id"], "community");

    // q: a case-insensitive substring of name, description or provider.
    for (q, expected) in [
        ("calc", &["calculator"][..]),
        ("CALCULATOR", &["calculator"]),
        ("manager", &["file-manager"]),
        ("system", &["file-manager"]),
        ("cloudmcp", &["remote-http-server"]),
        ("community", &["calculator", "weather-api"]),
        ("nothing-like-this", &[]),
        ("test' OR '1'='1", &[]),
    ] {
        assert_eq!(mcp.names(&[("q", q)]).await, set(expected), "q={q}");
    }
    assert_eq!(mcp.names(&[("q", "")]).await, all);
    assert_eq!(mcp.names(&[("name", "calculator")]).await, set(&["calculator"]));
    assert_eq!(mcp.names(&[("name", "%-api")]).await, set(&["weather-api"]));

    for (filter, expected) in [
        ("provider='Math Community'", &["calculator"][..]),
        ("provider IN ('Weather Community','Math Community')", &["calculator", "weather-api"]),
        ("verifiedSource=true AND sast=true", &["calculator"]),
        ("securityIndicators.verifiedSource = false", &["weather-api"]),
        (
            "license='MIT' AND (provider='Math Community' OR provider='Weather Community')",
            &["calculator", "weather-api"],
        ),
        ("tags = 'math'", &["calculator"]),
        (r#"tags LIKE '%"weather"%'"#, &["weather-api"]),
        ("toolCount >= 2", &["calculator", "file-manager"]),
        ("rating.double_value > 4", &["calculator"]),
        ("tier = 'gold'", &["calculator"]),
        ("deploymentMode IS NULL", &["file-manager"]),
        ("provider ILIKE '%COMMUNITY'", &["calculator", "weather-api"]),
    ] {
        assert_eq!(mcp.names(&[("filterQuery", filter)]).await, set(expected), "{filter}");
    }
    for bad in
        ["provider IN ('test','value'))", "provider = 'test' AND", "verifiedSource = 'yes'", "tier.string_value = 5"]
    {
        let reply = mcp.get(&format!("{MCP}/mcp_servers"), &[("filterQuery", bad)]).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}: {}", reply.body);
        let message = reply.body["message"].as_str().unwrap();
        assert!(message.starts_with("invalid filter query"), "{bad}: {message}");
    }

    // Named queries, alone and ANDed with filterQuery.
    assert_eq!(mcp.names(&[("namedQuery", "audited")]).await, set(&["calculator"]));
    assert_eq!(mcp.names(&[("namedQuery", "remote")]).await, set(&["remote-http-server", "weather-api"]));
    let both = [("namedQuery", "remote"), ("filterQuery", "provider = 'CloudMCP'")];
    assert_eq!(mcp.names(&both).await, set(&["remote-http-server"]));
    let none = [("namedQuery", "audited"), ("filterQuery", "provider='Weather Community'")];
    assert!(mcp.names(&none).await.is_empty());
    let unknown = mcp.get(&format!("{MCP}/mcp_servers"), &[("namedQuery", "no_such_query")]).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);

    // Sources and labels.
    assert_eq!(mcp.names(&[("sourceLabel", "Community")]).await, set(&["calculator", "file-manager", "weather-api"]));
    assert_eq!(mcp.names(&[("sourceLabel", "null")]).await, set(&["remote-http-server"]));
    assert!(mcp.names(&[("sourceLabel", "Nobody")]).await.is_empty());
    assert_eq!(mcp.names(&[("source", "partner")]).await, set(&["remote-http-server"]));

    // Order and pages: pageSize=1 walks every server exactly once.
    let mut walked = Vec::new();
    let mut token = String::new();
    for _ in 0..10 {
        let reply = mcp.get(&format!("{MCP}/mcp_servers"), &[("pageSize", "1"), ("nextPageToken", &token)]).await;
        assert_eq!(reply.body["items"].as_array().unwrap().len(), 1, "{}", reply.body);
        walked.push(reply.body["items"][0]["name"].as_str().unwrap().to_owned());
        token = reply.body["nextPageToken"].as_str().unwrap().to_owned();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(walked, ["calculator", "file-manager", "remote-http-server", "weather-api"], "NAME order by default");
    let newest = mcp.get(&format!("{MCP}/mcp_servers"), &[("orderBy", "CREATE_TIME"), ("sortOrder", "ASC")]).await;
    assert_eq!(newest.body["items"][0]["name"], "calculator", "the only server with an old, given create time");
    let descending = mcp.get(&format!("{MCP}/mcp_servers"), &[("orderBy", "NAME"), ("sortOrder", "DESC")]).await;
    assert_eq!(descending.body["items"][0]["name"], "weather-api");
    let bad_order = mcp.get(&format!("{MCP}/mcp_servers"), &[("orderBy", "SIZE")]).await;
    assert_eq!(bad_order.status, StatusCode::BAD_REQUEST);

    // Tools: inline when asked (at most toolLimit), listed, filtered and fetched one by one.
    let with_tools = mcp.get(&format!("{MCP}/mcp_servers"), &[("includeTools", "true"), ("toolLimit", "2")]).await;
    let calc = with_tools.body["items"].as_array().unwrap().iter().find(|s| s["name"] == "calculator").unwrap();
    assert_eq!(calc["tools"].as_array().unwrap().len(), 2);
    assert_eq!(calc["toolCount"], 3, "toolCount counts every tool");
    assert_eq!(calc["tools"][0]["parameters"][0], json!({"name": "a", "type": "number", "required": true}));
    let id = calculator["id"].as_str().unwrap();
    let single = mcp.get(&format!("{MCP}/mcp_servers/{id}"), &[("includeTools", "true")]).await;
    assert_eq!((single.status, single.body["tools"].as_array().map(Vec::len)), (StatusCode::OK, Some(3)));
    assert_eq!(mcp.get(&format!("{MCP}/mcp_servers/99999"), &[]).await.status, StatusCode::NOT_FOUND);
    assert_eq!(mcp.get(&format!("{MCP}/mcp_servers/not-a-number"), &[]).await.status, StatusCode::BAD_REQUEST);
    let tools = mcp.get(&format!("{MCP}/mcp_servers/{id}/tools"), &[("filterQuery", "accessType = 'read_only'")]).await;
    assert_eq!(names(&tools.body), set(&["add", "divide"]));
    let paged = mcp.get(&format!("{MCP}/mcp_servers/{id}/tools"), &[("pageSize", "2"), ("orderBy", "NAME")]).await;
    assert_eq!(names(&paged.body), set(&["add", "divide"]));
    assert!(!paged.body["nextPageToken"].as_str().unwrap().is_empty());
    let unknown_field = mcp.get(&format!("{MCP}/mcp_servers/{id}/tools"), &[("filterQuery", "size > 1")]).await;
    assert_eq!(unknown_field.status, StatusCode::BAD_REQUEST);
    let tool = mcp.get(&format!("{MCP}/mcp_servers/{id}/tools/add"), &[]).await;
    assert_eq!(tool.status, StatusCode::OK);
    assert_eq!((tool.body["serverId"].as_str(), &tool.body["serverName"]), (Some(id), &json!("calculator")));
    assert_eq!(tool.body["tool"]["description"], "Adds two numbers.");
    assert_eq!(mcp.get(&format!("{MCP}/mcp_servers/{id}/tools/missing"), &[]).await.status, StatusCode::NOT_FOUND);

    // The v1 path serves the same.
    let v1 = mcp.get(&format!("/api/mcp_catalog/v1/mcp_servers/{id}"), &[]).await;
    assert_eq!(v1.body["name"], "calculator");
}

#[tokio::test]
async fn filter_options_sources_and_labels_know_mcp_servers() {
    let mcp = Mcp::start().await;
    let options = mcp.get(&format!("{MCP}/mcp_servers/filter_options"), &[]).await.body;
    let filters = &options["filters"];
    assert_eq!(filters["license"]["values"], json!(["Apache-2.0", "MIT"]), "{options}");
    assert_eq!(filters["license"]["counts"], json!({"Apache-2.0": 2, "MIT": 2}));
    assert_eq!(filters["tier.string_value"]["values"], json!(["gold"]), "no empty string is offered");
    assert_eq!(filters["rating.double_value"]["range"], json!({"min": 4.5, "max": 4.5}));
    assert_eq!(filters["deploymentMode"]["values"], json!(["local", "remote"]));
    assert_eq!(options["namedQueries"]["audited"]["sast"], json!({"operator": "=", "value": true}));
    assert!(options["namedQueries"].get("remote").is_some());

    // /sources: MCP sources under assetType=mcp_servers only; an unknown asset type lists nothing.
    let sources = mcp.get(&format!("{CATALOG}/sources"), &[("assetType", "mcp_servers")]).await.body;
    let ids: Vec<&str> = sources["items"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["community", "partner"]);
    let partner = &sources["items"][1];
    assert_eq!((&partner["assetType"], &partner["excludedServers"]), (&json!("mcp_servers"), &json!(["*-beta"])));
    assert_eq!(partner["status"], "available");
    let models = mcp.get(&format!("{CATALOG}/sources"), &[]).await.body;
    assert_eq!(models["items"].as_array().unwrap().iter().filter(|s| s["id"] == "community").count(), 0);
    let bogus = mcp.get(&format!("{CATALOG}/sources"), &[("assetType", "datasets")]).await;
    assert_eq!((bogus.status, bogus.body["size"].as_u64()), (StatusCode::OK, Some(0)));

    // /labels: a label without assetType is a model label; an unknown asset type is a 400.
    let label_names = |body: &Value| -> Vec<String> {
        body["items"].as_array().unwrap().iter().map(|label| label["name"].as_str().unwrap().to_owned()).collect()
    };
    let mcp_labels = mcp.get(&format!("{CATALOG}/labels"), &[("assetType", "mcp_servers")]).await;
    assert_eq!(label_names(&mcp_labels.body), ["Community"]);
    let model_labels = mcp.get(&format!("{CATALOG}/labels"), &[("assetType", "models")]).await;
    assert_eq!(label_names(&model_labels.body), ["Validated"]);
    assert_eq!(mcp.get(&format!("{CATALOG}/labels"), &[("assetType", "x")]).await.status, StatusCode::BAD_REQUEST);

    // The status counts each source's servers; the family is listed with its documents.
    let status = mcp.app.call(reqwest::Method::GET, &format!("{CATALOG}/status"), None).await.body;
    let community = status["mcpSources"].as_array().unwrap().iter().find(|s| s["id"] == "community").unwrap().clone();
    assert_eq!(community["servers"], 3, "{status}");
    let document = mcp.get(&format!("{MCP}/openapi.yaml"), &[]).await;
    assert_eq!(document.status, StatusCode::OK);
    let families = mcp.get("/api", &[]).await.body;
    assert!(families["families"].as_array().unwrap().iter().any(|family| family["id"] == "mcp_catalog"), "{families}");
}

#[tokio::test]
async fn edits_reload_bad_files_keep_the_last_good_servers_and_times_hold() {
    let mcp = Mcp::start().await;
    let before = mcp.server("weather-api").await;
    let (created, updated) = (before["createTimeSinceEpoch"].clone(), before["lastUpdateTimeSinceEpoch"].clone());

    // An unrelated edit of the file: weather-api's times hold; a new server appears.
    let added = format!("{COMMUNITY}  - name: translator\n    provider: Lang Community\n");
    mcp.write("community.yaml", &added);
    let appeared =
        eventually(WAIT, || async { mcp.names(&[("q", "translator")]).await.len().eq(&1).then_some(()) }).await;
    assert!(appeared.is_some(), "the new server was loaded");
    let after = mcp.server("weather-api").await;
    assert_eq!((&after["createTimeSinceEpoch"], &after["lastUpdateTimeSinceEpoch"]), (&created, &updated));

    // Editing weather-api moves its update time only.
    tokio::time::sleep(Duration::from_millis(5)).await;
    mcp.write("community.yaml", &added.replace("Forecasts by city.", "Forecasts by city, hourly."));
    let edited = eventually(WAIT, || async {
        let server = mcp.server("weather-api").await;
        (server["description"] == "Forecasts by city, hourly.").then_some(server)
    })
    .await
    .expect("the edit was applied");
    assert_eq!(edited["createTimeSinceEpoch"], created);
    let moved = |value: &Value| value.as_str().unwrap().parse::<i64>().unwrap();
    assert!(moved(&edited["lastUpdateTimeSinceEpoch"]) > moved(&updated), "{edited}");

    // A broken file: the last good servers keep serving and the source says why.
    mcp.write("community.yaml", "mcp_servers: [\n");
    let errored = eventually(WAIT, || async {
        let sources = mcp.get(&format!("{CATALOG}/sources"), &[("assetType", "mcp_servers")]).await.body;
        let community = sources["items"][0].clone();
        (community["status"] == "error").then_some(community)
    })
    .await
    .expect("the source shows the error");
    assert!(errored["error"].as_str().unwrap().contains("community.yaml"), "{errored}");
    assert_eq!(mcp.names(&[("source", "community")]).await.len(), 4, "the last good servers still serve");

    // One bad server: the rest load and the source is partially available.
    mcp.write("community.yaml", "mcp_servers:\n  - name: good\n  - name: bad\n    deploymentMode: remote\n");
    let partial = eventually(WAIT, || async {
        let sources = mcp.get(&format!("{CATALOG}/sources"), &[("assetType", "mcp_servers")]).await.body;
        let community = sources["items"][0].clone();
        (community["status"] == "partially-available").then_some(community)
    })
    .await
    .expect("partially available");
    assert!(partial["error"].as_str().unwrap().contains("bad: deploymentMode 'remote'"), "{partial}");
    assert_eq!(mcp.names(&[("source", "community")]).await, set(&["good"]));

    // Removing the source from the config removes its servers.
    mcp.write("sources.yaml", &SOURCES.replace("  - {id: community", "  - {id: community, enabled: false"));
    let gone =
        eventually(WAIT, || async { mcp.names(&[]).await.eq(&set(&["remote-http-server"])).then_some(()) }).await;
    assert!(gone.is_some(), "a disabled source serves no servers");
}

#[tokio::test]
async fn one_search_spans_models_and_servers() {
    let mcp = Mcp::start().await;
    let search = |query: &'static [(&'static str, &'static str)]| {
        let mcp = &mcp;
        async move { mcp.get("/api/modelcat/v1/search", query).await }
    };
    let both = search(&[("q", "calc")]).await;
    assert_eq!(both.status, StatusCode::OK, "{}", both.body);
    let kinds: Vec<(&str, &str)> = both.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| (item["kind"].as_str().unwrap(), item["name"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, [("model", "org/calculator-llm"), ("mcp_server", "calculator")]);
    assert_eq!(both.body["facets"]["kind"], json!({"model": 1, "mcp_server": 1}));
    // Each item's url is its page in its own API.
    for item in both.body["items"].as_array().unwrap() {
        let own = mcp.get(item["url"].as_str().unwrap(), &[]).await;
        assert_eq!((own.status, &own.body["name"]), (StatusCode::OK, &item["name"]), "{item}");
    }
    let servers = search(&[("q", "calc"), ("kind", "mcp_server")]).await;
    assert_eq!(servers.body["total"], 1);
    assert_eq!(servers.body["facets"]["kind"], json!({"mcp_server": 1}));

    // Without q: every asset by name, paged.
    let first = search(&[("pageSize", "3")]).await.body;
    assert_eq!(first["total"], 5, "{first}");
    let names: Vec<&str> =
        first["items"].as_array().unwrap().iter().map(|item| item["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["calculator", "file-manager", "org/calculator-llm"]);
    let token = first["nextPageToken"].as_str().unwrap().to_owned();
    let rest = mcp.get("/api/modelcat/v1/search", &[("pageSize", "3"), ("nextPageToken", &token)]).await.body;
    let names: Vec<&str> =
        rest["items"].as_array().unwrap().iter().map(|item| item["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["remote-http-server", "weather-api"]);
    assert_eq!(rest["nextPageToken"], "");

    let bad = search(&[("kind", "dataset")]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["code"], "bad_request", "{}", bad.body);
}
