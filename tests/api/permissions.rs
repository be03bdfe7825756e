//! Per registered-model permissions over HTTP: every model-scoped registry route refuses the owner of a
//! different model and a token restricted to another model; private models vanish from lists, finds,
//! the catalog, its counts and facets; grants, groups of a trusted proxy, and the permissions API.

use std::time::Duration;

use modelcat::api::registry::{BASE_PATH, ROUTES, Shape, V1_BASE_PATH};
use modelcat::registry::schema::{ANY_ARTIFACT, MODEL_ARTIFACT, MODEL_VERSION, REGISTERED_MODEL};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, Reply, TestApp, authorized_client, eventually, reply};

const PERMISSIONS: &str = "/api/modelcat/v1/registered_models";
const CATALOG: &str = "/api/model_catalog/v1alpha1";

/// A client for a new token made by the admin.
async fn token(app: &TestApp, name: &str, role: &str, models: Option<&[&str]>) -> reqwest::Client {
    let mut body = json!({"name": name, "role": role});
    if let Some(models) = models {
        body["models"] = json!(models);
    }
    let created = app.call(Method::POST, "/api/modelcat/v1/tokens", Some(body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    authorized_client(created.body["token"].as_str().expect("token"))
}

async fn send(app: &TestApp, client: &reqwest::Client, method: Method, path: &str, body: Option<Value>) -> Reply {
    let mut request = client.request(method, format!("{}{path}", app.address));
    if let Some(body) = body {
        request = request.json(&body);
    }
    reply(request.send().await.expect("sent")).await
}

/// Creates a model with a version and a model artifact as `client`; returns their ids.
async fn model_tree(app: &TestApp, client: &reqwest::Client, name: &str) -> [String; 3] {
    let created = |reply: Reply| {
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body["id"].as_str().expect("id").to_owned()
    };
    let body = json!({"name": name, "license": format!("{name}-license")});
    let model = created(send(app, client, Method::POST, &format!("{BASE_PATH}/registered_models"), Some(body)).await);
    let version = json!({"name": "v1", "registeredModelId": model});
    let version = created(send(app, client, Method::POST, &format!("{BASE_PATH}/model_versions"), Some(version)).await);
    let artifact = json!({"artifactType": "model-artifact", "name": "weights", "uri": format!("s3://{name}/v1")});
    let path = format!("{BASE_PATH}/model_versions/{version}/artifacts");
    let artifact = created(send(app, client, Method::POST, &path, Some(artifact)).await);
    [model, version, artifact]
}

/// Every registry route that addresses one model's entity, with the ids of `tree` in place, and the
/// methods that read and that change it. Generated from the route table, so a new model-scoped route
/// is covered as soon as it exists.
fn model_routes(tree: &[String; 3]) -> Vec<(Method, String)> {
    let [model, version, artifact] = tree;
    let mut all = Vec::new();
    for base in [BASE_PATH, V1_BASE_PATH] {
        for route in &ROUTES {
            let id = match route.shape {
                Shape::Item { .. } if route.kind == &REGISTERED_MODEL => model,
                Shape::Item { .. } if route.kind == &MODEL_VERSION => version,
                Shape::Item { .. } if route.kind == &MODEL_ARTIFACT || route.kind == &ANY_ARTIFACT => artifact,
                Shape::Children { parent, .. } if parent == &REGISTERED_MODEL => model,
                Shape::Artifacts { owner } if owner == &MODEL_VERSION => version,
                _ => continue,
            };
            let path = format!("{base}{}", route.path.replace("{id}", id));
            all.push((Method::GET, path.clone()));
            match route.shape {
                Shape::Item { deletable: true } => {
                    all.push((Method::PATCH, path.clone()));
                    all.push((Method::DELETE, path));
                }
                Shape::Item { deletable: false } => all.push((Method::PATCH, path)),
                _ => all.push((Method::POST, path)),
            }
        }
    }
    all
}

/// A body each write route would accept from a caller who may write.
fn write_body(method: &Method, path: &str) -> Option<Value> {
    match *method {
        Method::GET | Method::DELETE => None,
        Method::PATCH => Some(json!({"description": "changed"})),
        _ if path.ends_with("/versions") => Some(json!({"name": "v-intruder"})),
        _ => Some(json!({"artifactType": "model-artifact", "name": "intruder", "uri": "s3://x"})),
    }
}

async fn other_owners_and_restricted_tokens_are_refused(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let alice = token(&app, "alice", "editor", None).await;
    let bob = token(&app, "bob", "editor", None).await;
    let restricted = token(&app, "ci-b", "editor", Some(&["team/b"])).await;
    let tree = model_tree(&app, &alice, "team/a").await;
    model_tree(&app, &bob, "team/b").await;

    let mut wrong = Vec::new();
    for (method, path) in model_routes(&tree) {
        for (caller, client) in [("bob, owner of another model", &bob), ("a token restricted to team/b", &restricted)] {
            let answer = send(&app, client, method.clone(), &path, write_body(&method, &path)).await;
            let status = answer.status.as_u16();
            // Everyone reads a model by default; the restricted token sees only its own.
            let expected: &[u16] = match (&method, caller.starts_with("bob")) {
                (&Method::GET, true) => &[200],
                (&Method::GET, false) => &[404],
                (_, true) => &[403],
                (_, false) => &[404],
            };
            if !expected.contains(&status) {
                wrong.push(format!("{method} {path} as {caller}: {status} {}", answer.body));
            } else if status >= 400 {
                assert!(answer.body["code"].is_string() && answer.body["message"].is_string(), "{}", answer.body);
            }
        }
    }
    assert!(wrong.is_empty(), "{} cells wrong:\n{}", wrong.len(), wrong.join("\n"));

    // Nothing the refused callers sent landed.
    let model = app.get(&format!("/registered_models/{}", tree[0])).await;
    assert_eq!(model.status, StatusCode::OK);
    assert!(model.body.get("description").is_none(), "{}", model.body);
    let versions = app.get(&format!("/registered_models/{}/versions", tree[0])).await;
    assert_eq!(versions.body["size"], 1, "{}", versions.body);

    // The owner may do what the others may not, and the restricted token may within its model.
    let path = format!("{BASE_PATH}/registered_models/{}", tree[0]);
    let patched = send(&app, &alice, Method::PATCH, &path, Some(json!({"description": "mine"}))).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    let listed = send(&app, &restricted, Method::GET, &format!("{BASE_PATH}/registered_models"), None).await;
    let names: Vec<&str> =
        listed.body["items"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["team/b"], "a restricted token lists only its models");
    let found =
        send(&app, &restricted, Method::GET, &format!("{BASE_PATH}/registered_model?name=team%2Fa"), None).await;
    assert_eq!(found.status, StatusCode::NOT_FOUND, "{}", found.body);
    let b_id = send(&app, &restricted, Method::GET, &format!("{BASE_PATH}/registered_model?name=team%2Fb"), None)
        .await
        .body["id"]
        .as_str()
        .expect("its own model")
        .to_owned();
    let version = json!({"name": "v2"});
    let path = format!("{BASE_PATH}/registered_models/{b_id}/versions");
    let created = send(&app, &restricted, Method::POST, &path, Some(version)).await;
    assert_eq!(created.status, StatusCode::FORBIDDEN, "bob's model is bob's: {}", created.body);
    let granted = send(
        &app,
        &bob,
        Method::PUT,
        &format!("{PERMISSIONS}/{b_id}/permissions/user:token:ci-b"),
        Some(json!({"level": "edit"})),
    )
    .await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.body);
    let created = send(&app, &restricted, Method::POST, &path, Some(json!({"name": "v2"}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "an edit grant lets it register versions: {}", created.body);
    let new_model = json!({"name": "team/c"});
    let made = send(&app, &restricted, Method::POST, &format!("{BASE_PATH}/registered_models"), Some(new_model)).await;
    assert_eq!(made.status, StatusCode::FORBIDDEN, "{}", made.body);
    let experiment = json!({"name": "exp"});
    let made = send(&app, &restricted, Method::POST, &format!("{BASE_PATH}/experiments"), Some(experiment)).await;
    assert_eq!(made.status, StatusCode::FORBIDDEN, "entities of no model are read-only to it: {}", made.body);
    let deleted = send(&app, &restricted, Method::DELETE, &format!("{BASE_PATH}/registered_models/{b_id}"), None).await;
    assert_eq!(deleted.status, StatusCode::FORBIDDEN, "deleting takes manage: {}", deleted.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_routes_refuse_other_owners_and_restricted_tokens_sqlite() {
    other_owners_and_restricted_tokens_are_refused(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_routes_refuse_other_owners_and_restricted_tokens_postgres() {
    other_owners_and_restricted_tokens_are_refused(Backend::Postgres).await;
}

fn names(body: &Value) -> Vec<String> {
    let items = body["items"].as_array().unwrap_or_else(|| panic!("items in {body}"));
    items.iter().map(|item| item["name"].as_str().unwrap_or_default().to_owned()).collect()
}

async fn catalog_names(app: &TestApp, client: &reqwest::Client) -> Vec<String> {
    let path = format!("{CATALOG}/models?source=registry&pageSize=100");
    let answer = send(app, client, Method::GET, &path, None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    names(&answer.body)
}

async fn private_models_leave_every_list(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let alice = token(&app, "alice", "editor", None).await;
    let bob = token(&app, "bob", "viewer", None).await;
    let [model, version, artifact] = model_tree(&app, &alice, "team/secret").await;
    model_tree(&app, &alice, "team/open").await;
    let wait = Duration::from_secs(10);
    let both = eventually(wait, || async { (catalog_names(&app, &app.anonymous).await.len() == 2).then_some(()) });
    assert!(both.await.is_some(), "registered models join the catalog");

    let private = json!({"level": "none"});
    let path = format!("{PERMISSIONS}/{model}/permissions/everyone");
    let set = send(&app, &alice, Method::PUT, &path, Some(private)).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(set.body["everyone"], "none");
    let principals: Vec<&str> =
        set.body["grants"].as_array().unwrap().iter().map(|g| g["principal"].as_str().unwrap()).collect();
    assert_eq!(principals, ["everyone", "user:token:alice"], "the creator manages it");

    // Bob, a viewer, no longer sees it anywhere in the registry.
    let lists = [
        format!("{BASE_PATH}/registered_models"),
        format!("{BASE_PATH}/model_versions"),
        format!("{BASE_PATH}/model_artifacts"),
        format!("{BASE_PATH}/artifacts"),
    ];
    for list in &lists {
        let answer = send(&app, &bob, Method::GET, list, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.body["size"], 1, "{list} shows only the open model's entity: {}", answer.body);
        let mine = send(&app, &alice, Method::GET, list, None).await;
        assert_eq!(mine.body["size"], 2, "{list}: the owner sees both: {}", mine.body);
    }
    for path in [
        format!("{BASE_PATH}/registered_models/{model}"),
        format!("{BASE_PATH}/model_versions/{version}"),
        format!("{BASE_PATH}/model_artifacts/{artifact}"),
        format!("{BASE_PATH}/registered_models/{model}/versions"),
        format!("{BASE_PATH}/registered_model?name=team%2Fsecret"),
        format!("{PERMISSIONS}/{model}/permissions"),
    ] {
        let answer = send(&app, &bob, Method::GET, &path, None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}: {}", answer.body);
        assert!(!answer.body.to_string().contains("secret\""), "{path}: {}", answer.body);
    }
    // A page token does not reach past the filter: paging one by one still shows one model.
    let first = send(&app, &bob, Method::GET, &format!("{BASE_PATH}/registered_models?pageSize=1"), None).await;
    assert_eq!(first.body["nextPageToken"], "", "{}", first.body);

    // The catalog, its counts and its facets forget it, for everyone.
    let gone =
        eventually(wait, || async { (catalog_names(&app, &app.anonymous).await == ["team/open"]).then_some(()) });
    assert!(gone.await.is_some(), "a private model leaves the catalog");
    assert_eq!(catalog_names(&app, &alice).await, ["team/open"]);
    let options = send(&app, &app.anonymous, Method::GET, &format!("{CATALOG}/models/filter_options"), None).await;
    assert!(!options.body.to_string().contains("team/secret-license"), "{}", options.body);
    let counted = send(&app, &app.anonymous, Method::GET, &format!("{CATALOG}/sources"), None).await;
    assert!(!counted.body.to_string().contains("team/secret"), "{}", counted.body);

    // A grant lets bob read it again through the registry; everyone's read brings it back to the catalog.
    let grant = json!({"level": "read"});
    let granted =
        send(&app, &alice, Method::PUT, &format!("{PERMISSIONS}/{model}/permissions/user:token:bob"), Some(grant))
            .await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.body);
    let seen = send(&app, &bob, Method::GET, &format!("{BASE_PATH}/registered_models/{model}"), None).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    let patch = json!({"description": "bob was here"});
    let refused = send(&app, &bob, Method::PATCH, &format!("{BASE_PATH}/registered_models/{model}"), Some(patch)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "a viewer's grant never lifts its role: {}", refused.body);
    let reopened = send(&app, &alice, Method::DELETE, &path, None).await;
    assert_eq!(reopened.body["everyone"], "read", "{}", reopened.body);
    let back = eventually(wait, || async { (catalog_names(&app, &app.anonymous).await.len() == 2).then_some(()) });
    assert!(back.await.is_some(), "an open model returns to the catalog");

    // Each change is in the audit log, by whom it was made (PostgreSQL lists entries once chained).
    let changes = eventually(wait, || async {
        let audit = app.call(Method::GET, "/api/modelcat/v1/audit?action=permission.grant&pageSize=100", None).await;
        let revokes = app.call(Method::GET, "/api/modelcat/v1/audit?action=permission.revoke&pageSize=100", None).await;
        let entries: Vec<String> = [audit.body, revokes.body]
            .iter()
            .flat_map(|body| body["items"].as_array().cloned().unwrap_or_default())
            .map(|entry| {
                format!(
                    "{} {}",
                    entry["actor"].as_str().unwrap_or_default(),
                    entry["detail"].as_str().unwrap_or_default()
                )
            })
            .collect();
        (entries.len() == 3).then_some(entries)
    })
    .await
    .expect("three permission changes are audited");
    assert!(changes.iter().all(|change| change.starts_with("token:alice ")), "{changes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_models_leave_lists_finds_and_the_catalog_sqlite() {
    private_models_leave_every_list(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_models_leave_lists_finds_and_the_catalog_postgres() {
    private_models_leave_every_list(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_permissions_api_checks_its_input_and_its_callers() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("sqlite");
    let alice = token(&app, "alice", "editor", None).await;
    let bob = token(&app, "bob", "editor", None).await;
    let viewer = token(&app, "val", "viewer", None).await;
    let [model, ..] = model_tree(&app, &alice, "team/a").await;
    let base = format!("{PERMISSIONS}/{model}/permissions");
    let edit = Some(json!({"level": "edit"}));
    let cases: [(&reqwest::Client, Method, String, Option<Value>, u16); 9] = [
        (&alice, Method::PUT, format!("{base}/someone"), edit.clone(), 400),
        (&alice, Method::PUT, format!("{base}/user:"), edit.clone(), 400),
        (&alice, Method::PUT, format!("{base}/user:bob"), Some(json!({"level": "owner"})), 400),
        (&alice, Method::PUT, format!("{base}/user:bob"), Some(json!({"level": "none"})), 400),
        (&alice, Method::PUT, format!("{base}/user:bob"), Some(json!({"level": "edit", "x": 1})), 400),
        (&bob, Method::PUT, format!("{base}/user:token:bob"), edit.clone(), 403),
        (&viewer, Method::PUT, format!("{base}/group:ml"), edit.clone(), 403),
        (&alice, Method::PUT, format!("{PERMISSIONS}/999999/permissions/group:ml"), edit.clone(), 404),
        (&alice, Method::GET, format!("{PERMISSIONS}/x/permissions"), None, 400),
    ];
    for (client, method, path, body, status) in cases {
        let answer = send(&app, client, method.clone(), &path, body).await;
        assert_eq!(answer.status.as_u16(), status, "{method} {path}: {}", answer.body);
        assert!(answer.body["code"].is_string() && answer.body["message"].is_string(), "{}", answer.body);
    }
    // Manage passes on: bob, given manage, may grant and delete.
    let manage = Some(json!({"level": "manage"}));
    let granted = send(&app, &alice, Method::PUT, &format!("{base}/user:token:bob"), manage).await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.body);
    let group = send(&app, &bob, Method::PUT, &format!("{base}/group:ml"), edit).await;
    assert_eq!(group.status, StatusCode::OK, "{}", group.body);
    let listed = send(&app, &viewer, Method::GET, &base, None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.body["grants"].as_array().map(Vec::len), Some(3), "{}", listed.body);
    let deleted = send(&app, &bob, Method::DELETE, &format!("{BASE_PATH}/registered_models/{model}"), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    let gone = send(&app, &alice, Method::GET, &base, None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "grants go with their model: {}", gone.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_from_a_trusted_proxy_receive_grants() {
    let yaml = "methods: [token, proxy]\ngroups: {editors: editor}\nproxy: {trusted: [127.0.0.1]}\n";
    let file: modelcat::auth::settings::AuthFileSettings = serde_norway::from_str(yaml).expect("yaml");
    let auth = file.settings(None).expect("valid");
    let app = TestApp::spawn_configured(Backend::Sqlite, |settings| settings.auth = auth).await.expect("sqlite");
    let as_user = |user: &str, groups: &str| {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("kubeflow-userid", user.parse().unwrap());
        headers.insert("kubeflow-groups", groups.parse().unwrap());
        reqwest::Client::builder().default_headers(headers).build().unwrap()
    };
    let ann = as_user("ann@example.com", "editors,fraud-team");
    let ben = as_user("ben@example.com", "editors,fraud-team");
    let cat = as_user("cat@example.com", "editors");
    let [model, ..] = model_tree(&app, &ann, "fraud/scorer").await;
    let path = format!("{BASE_PATH}/registered_models/{model}");
    let patch = || Some(json!({"description": "tuned"}));
    assert_eq!(send(&app, &ben, Method::PATCH, &path, patch()).await.status, StatusCode::FORBIDDEN);
    let grant = Some(json!({"level": "edit"}));
    let granted =
        send(&app, &ann, Method::PUT, &format!("{PERMISSIONS}/{model}/permissions/group:fraud-team"), grant).await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.body);
    assert_eq!(send(&app, &ben, Method::PATCH, &path, patch()).await.status, StatusCode::OK, "ben is in fraud-team");
    assert_eq!(send(&app, &cat, Method::PATCH, &path, patch()).await.status, StatusCode::FORBIDDEN, "cat is not");
}
