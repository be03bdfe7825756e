//! The web UI through the router (`/ui`): each page and state as HTML, on catalogs written here. What a
//! browser does with it (htmx swaps, keyboard, accessibility) is tested in `tests/compat/test_ui.py`.

use std::time::Duration;

use reqwest::{StatusCode, header};

use crate::helpers::{TestApp, eventually};

const SOURCES: &str = r#"
model_catalogs:
  - {id: main, name: Main Models, type: yaml, properties: {yamlCatalogPath: main.yaml}}
  - {id: broken, name: Broken Models, type: yaml, properties: {yamlCatalogPath: broken.yaml}}
"#;

/// A README with front matter, relative links and everything a sanitizer must remove.
const HOSTILE_README: &str = "---\\nlicense: mit\\ntags: [chat, small]\\n---\\n# Granite card\\n\\n\
    <script>alert(1)</script><img src=x onerror=alert(2)>\\n\\n[run](javascript:alert(3)) \
    [config](config.json) [docs](https://example.com/docs)\\n\\n| a | b |\\n|---|---|\\n| 1 | 2 |\\n";

fn main_catalog() -> String {
    format!(
        r#"source: Main
models:
  - name: ibm/granite-chat
    provider: IBM
    description: A chat model.
    license: mit
    tasks: [text-generation]
    readme: "{HOSTILE_README}"
    artifacts:
      - {{artifactType: model-artifact, uri: "oci://registry.example/granite:1.0"}}
      - artifactType: metrics-artifact
        metricsType: performance-metrics
        customProperties:
          hardware_type: {{metadataType: MetadataStringValue, string_value: H100}}
          hardware_count: {{metadataType: MetadataIntValue, int_value: "1"}}
          ttft_p90: {{metadataType: MetadataDoubleValue, double_value: 40}}
          ttft_p50: {{metadataType: MetadataDoubleValue, double_value: 20}}
          requests_per_second: {{metadataType: MetadataDoubleValue, double_value: 4}}
      - artifactType: metrics-artifact
        metricsType: performance-metrics
        customProperties:
          hardware_type: {{metadataType: MetadataStringValue, string_value: L40S}}
          hardware_count: {{metadataType: MetadataIntValue, int_value: "2"}}
          ttft_p90: {{metadataType: MetadataDoubleValue, double_value: 90}}
          ttft_p50: {{metadataType: MetadataDoubleValue, double_value: 45}}
          requests_per_second: {{metadataType: MetadataDoubleValue, double_value: 2}}
  - name: google/bert
    provider: Google
    license: apache-2.0
    tasks: [fill-mask]
  - name: meta/llama-small
    provider: Meta
    license: llama3
    tasks: [text-generation]
"#
    )
}

struct Ui {
    app: TestApp,
    _dir: tempfile::TempDir,
}

/// A GET's status, headers and text.
struct Page {
    status: StatusCode,
    headers: header::HeaderMap,
    text: String,
}

impl Ui {
    async fn start() -> Ui {
        Ui::start_with("", |_| {}).await
    }

    /// A server with [`SOURCES`] and `more_sources` (entries of `model_catalogs`), then `configure`d.
    async fn start_with(more_sources: &str, configure: impl FnOnce(&mut modelcat::config::Settings)) -> Ui {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("sources.yaml"), format!("{SOURCES}{more_sources}")).unwrap();
        std::fs::write(dir.path().join("main.yaml"), main_catalog()).unwrap();
        std::fs::write(dir.path().join("broken.yaml"), "source: Broken\nmodels:\n  - name: [unclosed\n").unwrap();
        let sources = vec![dir.path().join("sources.yaml")];
        let app = TestApp::spawn_configured(crate::helpers::Backend::Sqlite, |settings| {
            settings.catalog.sources = sources;
            configure(settings);
        })
        .await
        .expect("sqlite always runs");
        let ui = Ui { app, _dir: dir };
        let loaded = eventually(Duration::from_secs(20), || async {
            (ui.get("/ui?source=main").await.text.contains("3 models")).then_some(())
        })
        .await;
        assert!(loaded.is_some(), "the catalog was loaded");
        ui
    }

    async fn get(&self, path: &str) -> Page {
        self.get_with(path, &[]).await
    }

    /// An anonymous GET (the catalog is readable without a token, by default), with extra headers.
    async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Page {
        let mut request = self.app.anonymous.get(format!("{}{path}", self.app.address));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("request");
        let (status, headers) = (response.status(), response.headers().clone());
        Page { status, headers, text: response.text().await.expect("text") }
    }
}

/// The facet checkbox for `value` of `parameter`, as rendered.
fn checkbox<'a>(html: &'a str, parameter: &str, value: &str) -> &'a str {
    let needle = format!("name=\"{parameter}\" value=\"{value}\"");
    let at = html.find(&needle).unwrap_or_else(|| panic!("no checkbox for {parameter}={value}"));
    let end = html[at..].find('>').map_or(html.len(), |end| at + end);
    &html[at..end]
}

#[tokio::test]
async fn search_page_counts_facets_disjunctively_and_keeps_its_state_in_the_url() {
    let ui = Ui::start().await;
    let all = ui.get("/ui").await;
    assert_eq!(all.status, StatusCode::OK);
    assert!(all.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    assert_eq!(all.text.matches("class=\"card\"").count(), 3, "every model is a card");
    assert!(all.text.contains("href=\"/ui/models/main/ibm/granite-chat\""), "cards are links to model pages");
    assert!(all.text.contains("Main Models"), "the source facet shows source names");

    // One license picked: its other values keep the counts they would give, other facets narrow.
    let mit = ui.get("/ui?license=mit").await.text;
    assert!(mit.contains("1 model<") || mit.contains("1 model\n"), "one model is MIT");
    assert!(checkbox(&mit, "license", "mit").contains("checked"));
    let apache = checkbox(&mit, "license", "apache-2.0");
    assert!(!apache.contains("disabled"), "another license can still be added: {apache}");
    assert!(checkbox(&mit, "tasks", "fill-mask").contains("disabled"), "a value with nothing left is disabled");
    assert!(!checkbox(&mit, "tasks", "text-generation").contains("disabled"));
    // Two licenses are ORed, and each is a removable chip.
    let two = ui.get("/ui?license=mit&license=apache-2.0").await.text;
    assert_eq!(two.matches("class=\"card\"").count(), 2);
    assert!(two.contains("href=\"/ui?license=apache-2.0\"") && two.contains("href=\"/ui?license=mit\""), "chips");
    assert!(two.contains("Clear all"));

    // Text search, ranges and sorting.
    let chat = ui.get("/ui?q=chat").await.text;
    assert_eq!(chat.matches("class=\"card\"").count(), 1);
    assert!(chat.contains("value=\"chat\""), "the box shows the query");
    let fast = ui.get("/ui?max.artifacts.ttft_p90.double_value=50").await.text;
    assert_eq!(fast.matches("class=\"card\"").count(), 1, "only granite has a p90 under 50 ms");
    assert!(fast.contains("ttft_p90: ≤ 50"), "the range is a chip");
    let sorted = ui.get("/ui?sort=name").await.text;
    let order: Vec<usize> = ["google/bert", "ibm/granite-chat", "meta/llama-small"]
        .iter()
        .map(|name| sorted.find(&format!("<h2>{name}</h2>")).expect("listed"))
        .collect();
    assert!(order.windows(2).all(|pair| pair[0] < pair[1]), "sorted by name");
    assert!(sorted.contains("<option value=\"low:artifacts.ttft_p90.double_value\""), "metric sorts are offered");
}

#[tokio::test]
async fn htmx_requests_get_the_fragment_and_the_canonical_url() {
    let ui = Ui::start().await;
    let path = "/ui?q=&license=mit&min.artifacts.ttft_p90.double_value=&sort=";
    let fragment = ui.get_with(path, &[("HX-Request", "true")]).await;
    assert_eq!(fragment.status, StatusCode::OK);
    assert!(fragment.text.starts_with("<div id=\"results\""), "{}", &fragment.text[..80]);
    assert!(fragment.text.contains("hx-swap-oob=\"innerHTML\""), "the count is updated in its live region");
    assert_eq!(fragment.headers["hx-push-url"], "/ui?license=mit", "empty fields leave the address bar");
    assert!(fragment.headers.get_all(header::VARY).iter().any(|value| value == "hx-request"));
    // Back and forward ask for the whole page.
    let restore = ui.get_with(path, &[("HX-Request", "true"), ("HX-History-Restore-Request", "true")]).await;
    assert!(restore.text.starts_with("<!doctype html>"));
    // The page and its fragment are tagged apart, and a repeat is a 304.
    let page = ui.get(path).await;
    let tag = page.headers[header::ETAG].to_str().unwrap().to_owned();
    assert_ne!(fragment.headers[header::ETAG], page.headers[header::ETAG]);
    let again = ui.get_with(path, &[("If-None-Match", &tag)]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn empty_results_and_bad_input_are_pages_that_say_what_happened() {
    let ui = Ui::start().await;
    let none = ui.get("/ui?q=zzzznothing").await;
    assert_eq!(none.status, StatusCode::OK);
    assert!(none.text.contains("No models match"));
    for (path, status, says) in [
        ("/ui?page=0", StatusCode::BAD_REQUEST, "is not a page number"),
        ("/ui?min.artifacts.ttft_p90.double_value=fast", StatusCode::BAD_REQUEST, "is not a number"),
        ("/ui?min.license=3", StatusCode::BAD_REQUEST, "is not a numeric property"),
        ("/ui?sort=sideways", StatusCode::BAD_REQUEST, "is unknown"),
        ("/ui/models/main/nobody/nothing", StatusCode::NOT_FOUND, "There is no model"),
        ("/ui/models/elsewhere/ibm/granite-chat", StatusCode::NOT_FOUND, "There is no source"),
        ("/ui/models/main/ibm/granite-chat?tab=gossip", StatusCode::BAD_REQUEST, "is unknown"),
        ("/ui/models/main/ibm/granite-chat?tab=performance&latency=ttft_p999", StatusCode::BAD_REQUEST, "not measured"),
        ("/ui/assets/missing.js", StatusCode::NOT_FOUND, "no asset"),
    ] {
        let page = ui.get(path).await;
        assert_eq!(page.status, status, "{path}");
        assert!(page.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"), "{path}");
        assert!(page.text.contains(says), "{path}: {}", page.text);
    }
}

#[tokio::test]
async fn model_pages_render_each_tab_and_sanitize_the_readme() {
    let ui = Ui::start().await;
    let base = "/ui/models/main/ibm/granite-chat";
    let card = ui.get(base).await.text;
    assert!(card.contains("<h1>Granite card</h1>") && card.contains("<table>"), "markdown with tables");
    for banned in ["<script>alert", "onerror", "javascript:"] {
        assert!(!card.contains(banned), "{banned} survived");
    }
    assert!(card.contains("<th scope=\"row\">tags</th><td>chat, small</td>"), "front matter is a table");
    assert!(card.contains("href=\"https://example.com/docs\"") && !card.contains("href=\"config.json\""));
    assert!(card.contains("aria-current=\"page\">Card<"));
    let bare = ui.get("/ui/models/main/google/bert").await.text;
    assert!(bare.contains("This model has no README."));

    let artifacts = ui.get(&format!("{base}?tab=artifacts")).await.text;
    assert!(artifacts.contains("data-copy=\"oci://registry.example/granite:1.0\""), "a copy button for the URI");

    let performance = ui.get(&format!("{base}?tab=performance")).await.text;
    assert_eq!(performance.matches("class=\"point\"").count(), 2, "one point per measurement");
    assert!(performance.contains("<svg class=\"chart\"") && performance.contains("ttft_p90 (ms)"));
    assert!(performance.contains("<option selected>ttft_p90</option>"), "the default latency is selected");
    let p50 = ui.get(&format!("{base}?tab=performance&latency=ttft_p50&hardware=H100")).await.text;
    assert_eq!(p50.matches("class=\"point\"").count(), 1, "the hardware selector filters");
    assert!(p50.contains("ttft_p50 (ms)"));
    let csv = ui.get(&format!("{base}?tab=performance&format=csv&latency=ttft_p90")).await;
    assert_eq!(csv.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(lines[0], "best,hardware_type,hardware_count,requests_per_second,ttft_p50,ttft_p90");
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[1].contains(",H100,1,4,20,40"), "sorted by latency, fastest first: {lines:?}");

    let source = ui.get(&format!("{base}?tab=source")).await.text;
    assert!(source.contains("Main Models (main)") && source.contains("YAML catalog"));
}

#[tokio::test]
async fn sources_page_shows_status_counts_and_errors() {
    let ui = Ui::start().await;
    let page = ui.get("/ui/sources").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("hx-trigger=\"every 5s\""), "it refreshes itself");
    assert!(page.text.contains("3 models") && page.text.contains("Main Models"));
    assert!(page.text.contains("class=\"status error\""), "the broken source is in error");
    assert!(page.text.contains("broken.yaml"), "its error names the file: {}", page.text);
    let fragment = ui.get_with("/ui/sources", &[("HX-Request", "true")]).await;
    assert!(fragment.text.starts_with("<div id=\"sources\""));
}

#[tokio::test]
async fn assets_are_pinned_immutable_and_compressed() {
    let ui = Ui::start().await;
    let page = ui.get("/ui").await.text;
    let start = page.find("/ui/assets/htmx-2.0.11.min.js?v=").expect("htmx is linked");
    let url = &page[start..start + page[start..].find('"').unwrap()];
    let asset = ui.get_with(url, &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(asset.status, StatusCode::OK);
    assert_eq!(asset.headers[header::CACHE_CONTROL], "public, max-age=31536000, immutable");
    assert_eq!(asset.headers[header::CONTENT_ENCODING], "gzip");
    assert_eq!(asset.headers[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
    let html = ui.get_with("/ui", &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(html.headers[header::CONTENT_ENCODING], "gzip", "pages are compressed too");
}

impl Ui {
    /// A new token of `role`, made by the admin.
    async fn token(&self, role: &str) -> String {
        let body = serde_json::json!({"name": format!("ui-{role}"), "role": role});
        let created = self.app.call(reqwest::Method::POST, "/api/modelcat/v1/tokens", Some(body)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        created.body["token"].as_str().expect("token").to_owned()
    }

    /// A form POST (no redirects followed) with `cookie` and extra headers.
    async fn post(&self, path: &str, form: &[(&str, &str)], cookie: Option<&str>, headers: &[(&str, &str)]) -> Page {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let body: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let mut request = client
            .post(format!("{}{path}", self.app.address))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        if let Some(token) = cookie {
            request = request.header(header::COOKIE, format!("modelcat_token={token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("request");
        let (status, headers) = (response.status(), response.headers().clone());
        Page { status, headers, text: response.text().await.expect("text") }
    }

    async fn get_as(&self, path: &str, token: &str) -> Page {
        self.get_with(path, &[("Cookie", &format!("modelcat_token={token}"))]).await
    }
}

#[tokio::test]
async fn signing_in_registering_from_the_catalog_and_reading_the_registry() {
    let ui = Ui::start().await;
    // The registry is not readable anonymously (the default): a 401 page that offers to sign in.
    let anonymous = ui.get("/ui/registry").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(anonymous.text.contains("href=\"/ui/sign-in\""));

    // A wrong token is refused without being shown back.
    let wrong = ui.post("/ui/sign-in", &[("token", "mct_not-a-real-token"), ("next", "/ui/registry")], None, &[]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.text.contains("not valid") && !wrong.text.contains("mct_not-a-real-token"));
    // A good one is kept in an HttpOnly cookie for UI paths only, and `next` stays inside the UI.
    let editor = ui.token("editor").await;
    let signed = ui.post("/ui/sign-in", &[("token", &editor), ("next", "https://evil.example/")], None, &[]).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER);
    assert_eq!(signed.headers[header::LOCATION], "/ui");
    let cookie = signed.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/ui"));
    let account = ui.get_as("/ui/sign-in", &editor).await;
    assert!(account.text.contains("(editor)"), "the account page says who is signed in");
    // The API does not take the cookie: it stays a UI credential.
    let api = ui
        .get_with("/api/model_registry/v1alpha3/registered_models", &[("Cookie", &format!("modelcat_token={editor}"))])
        .await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);

    // Register from the catalog: a registered model, a version with the source as properties, artifacts.
    let form = [("source", "main"), ("name", "ibm/granite-chat"), ("model_name", "granite"), ("version_name", "1.0")];
    let cross_site = ui.post("/ui/register", &form, Some(&editor), &[("Origin", "https://evil.example")]).await;
    assert_eq!(cross_site.status, StatusCode::FORBIDDEN, "a form from another site is refused");
    let registered = ui.post("/ui/register", &form, Some(&editor), &[]).await;
    assert_eq!(registered.status, StatusCode::SEE_OTHER, "{}", registered.text);
    let page_url = registered.headers[header::LOCATION].to_str().unwrap().to_owned();
    let page = ui.get_as(&page_url, &editor).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("<h1>granite</h1>") && page.text.contains("1.0"));
    assert!(page.text.contains("oci://registry.example/granite:1.0"), "the catalog's artifact came along");
    assert!(page.text.contains("href=\"/ui/models/main/ibm/granite-chat\""), "the version links back to its source");
    let again = ui.post("/ui/register", &form, Some(&editor), &[]).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "the same version twice is a conflict page");
    assert!(again.text.contains("The API says"));
    // Through the API, the same records, made by the editor.
    let versions =
        ui.app.call(reqwest::Method::GET, "/api/model_registry/v1alpha3/model_versions?name=1.0", None).await;
    let version = &versions.body["items"][0];
    assert_eq!(version["customProperties"]["catalog_source_id"]["string_value"], "main", "{}", versions.body);
    assert_eq!(version["author"], "token:ui-editor");

    // The list filters by name, state, owner and properties; bad filters are 400 pages.
    let listed = ui.get_as("/ui/registry?q=gran&state=LIVE", &editor).await;
    assert!(listed.text.contains(&format!("href=\"{page_url}\"")), "{}", listed.text);
    let other_owner = ui.get_as("/ui/registry?owner=somebody-else", &editor).await;
    assert!(other_owner.text.contains("No registered models match"));
    let by_property = ui.get_as("/ui/registry?filter=license.string_value%20%3D%20%27mit%27", &editor).await;
    assert!(by_property.text.contains(&format!("href=\"{page_url}\"")));
    let bad = ui.get_as("/ui/registry?filter=name%20%3D%3D", &editor).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(ui.get_as("/ui/registry?state=ALIVE", &editor).await.status, StatusCode::BAD_REQUEST);

    // A viewer reads the registry but may not register.
    let viewer = ui.token("viewer").await;
    assert_eq!(ui.get_as(&page_url, &viewer).await.status, StatusCode::OK);
    let refused = ui.post("/ui/register", &form, Some(&viewer), &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    // Signing out clears the cookie.
    let out = ui.post("/ui/sign-out", &[], Some(&editor), &[]).await;
    assert!(out.headers[header::SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
}

#[tokio::test]
async fn pages_embed_without_chrome_where_framing_is_allowed_and_describe_themselves_as_oembed() {
    let ui = Ui::start().await;
    // By default no site may frame the UI.
    let page = ui.get("/ui").await;
    let policy = page.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    assert!(policy.contains("frame-ancestors 'none'") && policy.contains("script-src 'self'"), "{policy}");
    assert_eq!(page.headers[header::X_FRAME_OPTIONS], "DENY");
    assert!(page.text.contains("class=\"top\""), "the whole page has the site's header");
    // Embedded: no chrome, links open a new tab, the theme is forced, the form keeps the framing.
    let embedded = ui.get("/ui?embed=1&theme=dark&q=granite").await.text;
    assert!(!embedded.contains("class=\"top\"") && embedded.contains("<base target=\"_blank\">"));
    assert!(embedded.contains("data-theme=\"dark\"") && embedded.contains("name=\"embed\" value=\"1\""));
    let fragment = ui.get_with("/ui?embed=1&q=granite", &[("HX-Request", "true")]).await;
    assert!(!fragment.headers.contains_key("hx-push-url"), "an embed keeps its own address");
    let card = ui.get("/ui/models/main/ibm/granite-chat?embed=1&tab=performance").await.text;
    assert!(card.contains("<svg class=\"chart\"") && card.contains("View in modelcat"));
    assert!(!card.contains("Register in the registry"));
    assert!(
        card.contains("href=\"/ui/models/main/ibm/granite-chat?tab=artifacts&#38;embed=1\""),
        "tabs keep the framing"
    );
    for (path, says) in [("/ui?embed=perhaps", "is not a flag"), ("/ui?theme=sepia", "is unknown")] {
        let page = ui.get(path).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(page.text.contains(says), "{path}");
    }

    // oEmbed: a rich description whose HTML frames the embeddable page.
    let url = format!("{}/ui/models/main/ibm/granite-chat?tab=card", ui.app.address);
    let oembed = ui
        .app
        .anonymous
        .get(format!("{}/ui/oembed", ui.app.address))
        .query(&[("url", url.as_str()), ("maxwidth", "500")])
        .send()
        .await
        .unwrap();
    assert_eq!(oembed.status(), StatusCode::OK);
    let body: serde_json::Value = oembed.json().await.unwrap();
    assert_eq!(
        (body["type"].as_str(), body["version"].as_str(), body["width"].as_u64()),
        (Some("rich"), Some("1.0"), Some(500))
    );
    assert_eq!(body["title"], "ibm/granite-chat");
    assert!(body["html"].as_str().unwrap().contains("/ui/models/main/ibm/granite-chat?embed=1\""), "{body}");
    assert!(ui.get("/ui/models/main/ibm/granite-chat").await.text.contains("application/json+oembed"), "discoverable");
    for (query, status) in [
        ("url=/ui/sources", StatusCode::NOT_FOUND),
        ("url=/ui/models/main/nobody/nothing", StatusCode::NOT_FOUND),
        ("url=/ui/models/main/ibm/granite-chat&format=xml", StatusCode::NOT_IMPLEMENTED),
        ("url=/ui/models/main/ibm/granite-chat&maxwidth=wide", StatusCode::BAD_REQUEST),
        ("", StatusCode::BAD_REQUEST),
    ] {
        assert_eq!(ui.get(&format!("/ui/oembed?{query}")).await.status, status, "{query}");
    }

    // Allowed origins are listed, and the legacy header that would deny them is gone.
    let allowing = Ui::start_with("", |settings| {
        settings.api.frame_ancestors = vec!["https://portal.example.com".into(), "https://*.intranet.example".into()];
    })
    .await;
    let page = allowing.get("/ui?embed=1").await;
    let policy = page.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(policy.ends_with("frame-ancestors https://portal.example.com https://*.intranet.example"), "{policy}");
    assert!(!page.headers.contains_key(header::X_FRAME_OPTIONS));
}

#[tokio::test]
async fn models_compare_side_by_side_with_differences_marked() {
    let ui = Ui::start().await;
    let search = ui.get("/ui").await.text;
    assert!(search.contains("form=\"compare\" name=\"m\" value=\"main/ibm/granite-chat\""), "cards can be picked");
    let page = ui.get("/ui/compare?m=main/ibm/granite-chat&m=main/google/bert&m=main/meta/llama-small").await;
    assert_eq!(page.status, StatusCode::OK);
    let text = page.text;
    for name in ["ibm/granite-chat", "google/bert", "meta/llama-small"] {
        assert!(text.contains(&format!(">{name}</a>")), "{name} has a column");
    }
    assert!(text.contains("<tr class=\"differs\"><th scope=\"row\">License"), "licenses differ");
    assert!(text.contains("<td>40</td>"), "granite's best TTFT p90");
    assert!(
        text.contains("href=\"/ui/compare?m=main%2Fgoogle%2Fbert&amp;m=main%2Fmeta%2Fllama-small\"")
            || text.contains("m=main%2Fgoogle%2Fbert&#38;m=main%2Fmeta%2Fllama-small"),
        "a column can be removed"
    );
    for (query, status) in [
        ("m=main/ibm/granite-chat", StatusCode::BAD_REQUEST),
        ("m=main/ibm/granite-chat&m=main/nobody", StatusCode::NOT_FOUND),
        ("m=main/ibm/granite-chat&m=nosource", StatusCode::BAD_REQUEST),
        ("m=a/b&m=c/d&m=e/f&m=g/h&m=i/j", StatusCode::BAD_REQUEST),
    ] {
        assert_eq!(ui.get(&format!("/ui/compare?{query}")).await.status, status, "{query}");
    }
}

#[tokio::test]
async fn admins_manage_tokens_and_a_new_secret_is_shown_once() {
    let ui = Ui::start().await;
    let admin = ui.token("admin").await;
    let editor = ui.token("editor").await;
    assert_eq!(ui.get_as("/ui/tokens", &editor).await.status, StatusCode::FORBIDDEN, "admins only");
    let listed = ui.get_as("/ui/tokens", &admin).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert!(listed.text.contains("ui-editor") && !listed.text.contains(&editor), "listed without secrets");
    assert!(ui.get_as("/ui/sign-in", &admin).await.text.contains("href=\"/ui/tokens\""), "the account page links it");

    let made = ui
        .post("/ui/tokens", &[("name", "ci-bot"), ("role", "viewer"), ("expires_in_days", "7")], Some(&admin), &[])
        .await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.text);
    assert_eq!(made.headers[header::CACHE_CONTROL], "no-store");
    let start =
        made.text.find("<code id=\"new-token\">").expect("the secret is shown") + "<code id=\"new-token\">".len();
    let secret = made.text[start..start + made.text[start..].find('<').unwrap()].to_owned();
    assert!(secret.starts_with("mct_"), "{secret}");
    // The new token works, and is never shown again.
    let whoami = ui.get_with("/api/modelcat/v1/whoami", &[("Authorization", &format!("Bearer {secret}"))]).await;
    assert!(whoami.text.contains("ci-bot"), "{}", whoami.text);
    assert!(!ui.get_as("/ui/tokens", &admin).await.text.contains(&secret));
    let bad = ui.post("/ui/tokens", &[("name", ""), ("role", "viewer")], Some(&admin), &[]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "an empty name is refused with the API's reason");
    assert!(bad.text.contains("name must be"));

    // Revoking from the page: the token stops working.
    let page = ui.get_as("/ui/tokens", &admin).await.text;
    let marker = "aria-label=\"Revoke ci-bot\"";
    let form_at = page[..page.find(marker).expect("a revoke button")].rfind("action=\"").unwrap() + "action=\"".len();
    let action = page[form_at..form_at + page[form_at..].find('"').unwrap()].to_owned();
    let cross_site = ui.post(&action, &[], Some(&admin), &[("Origin", "https://evil.example")]).await;
    assert_eq!(cross_site.status, StatusCode::FORBIDDEN);
    let revoked = ui.post(&action, &[], Some(&admin), &[]).await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    let refused = ui.get_with("/api/modelcat/v1/whoami", &[("Authorization", &format!("Bearer {secret}"))]).await;
    assert!(refused.status == StatusCode::UNAUTHORIZED || !refused.text.contains("ci-bot"), "{}", refused.text);
    // The audit log names the admin who did it from the UI.
    let audit = ui.app.call(reqwest::Method::GET, "/api/modelcat/v1/audit?pageSize=100", None).await;
    let actions: Vec<(String, String)> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            (
                item["action"].as_str().unwrap_or_default().to_owned(),
                item["actor"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(
        actions.iter().any(|(action, actor)| action.starts_with("token.create") && actor == "token:ui-admin"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn the_mirror_page_shows_what_is_mirrored_and_how_the_sync_went() {
    let plain = Ui::start().await;
    assert!(plain.get("/ui/mirror").await.text.contains("No Hugging Face source is configured"));
    drop(plain);
    let hub = modelcat::fake_hub::FakeHub::new(0, 20);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (hub_url, task) = hub.serve(listener).await.unwrap();
    std::mem::forget(task);
    let mirror = format!(
        "  - {{id: hub, name: Hub Mirror, type: hf, includedModels: [org/*], properties: {{url: \"{hub_url}\"}}}}\n"
    );
    let ui = Ui::start_with(&mirror, |_| {}).await;
    let synced = eventually(Duration::from_secs(20), || async {
        let page = ui.get("/ui/mirror").await.text;
        (page.contains("Last successful sync")).then_some(page)
    })
    .await
    .expect("the first sync finished");
    assert!(synced.contains("Hub Mirror") && synced.contains("org/*"), "what it takes: {synced}");
    assert!(synced.contains("Outcome:"), "the last sync's outcome");
    assert!(synced.contains("href=\"/ui?source=hub\""), "its models are a click away");
    assert!(!synced.contains("Main Models"), "only Hub sources");
    let fragment = ui.get_with("/ui/mirror", &[("HX-Request", "true")]).await.text;
    assert!(fragment.starts_with("<div id=\"mirror\""));
}
