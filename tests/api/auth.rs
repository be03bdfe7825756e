//! Authentication and authorization over HTTP: the 401/403 matrix over every route, token lifecycle
//! (create, use, expire, revoke, only digests stored), the bootstrap admin token, trusted-proxy
//! identities, and authentication turned off.

use modelcat::api::registry::{BASE_PATH, ROUTES, Shape, V1_BASE_PATH};
use modelcat::auth::tokens::{self, NewToken};
use modelcat::auth::{AuthSettings, Role};
use modelcat::registry::schema::{MODEL_VERSION, REGISTERED_MODEL};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, authorized_client, reply};

/// Who sends a request in the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    Foreign,
    Malformed,
    Expired,
    Revoked,
    Follower,
    Viewer,
    Editor,
    /// An editor who owns another model (model-level refusals, with real entities: `permissions.rs`).
    OtherOwner,
    /// An editor token restricted to another model.
    Restricted,
    Admin,
}

/// What a route needs, as this test expects it (written independently of the server's rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    Public,
    AnonymousRead,
    RegistryRead,
    Feed,
    Write,
    /// A create of entities that belong to no registered model (experiments, serving, unattached
    /// artifacts), which a token restricted to named models may not make.
    WriteUnscoped,
    Admin,
}

/// The expected status class: `Some(401 or 403)`, or `None` (anything else: the request got through).
fn expected(needs: Needs, caller: Caller) -> Option<u16> {
    use Caller::*;
    match (needs, caller) {
        (Needs::Public, _) => None,
        (_, Malformed | Expired | Revoked) => Some(401),
        (Needs::AnonymousRead, _) => None,
        (_, Anonymous | Foreign) => Some(401),
        (Needs::Feed, _) => None,
        (Needs::RegistryRead, Follower) => Some(403),
        (Needs::RegistryRead, _) => None,
        (Needs::Write | Needs::WriteUnscoped, Follower | Viewer) => Some(403),
        (Needs::WriteUnscoped, Restricted) => Some(403),
        (Needs::Write | Needs::WriteUnscoped, _) => None,
        (Needs::Admin, Admin) => None,
        (Needs::Admin, _) => Some(403),
    }
}

/// Every route with its methods and what it needs: the registry's from its route table (both base
/// paths), the rest listed here.
fn routes() -> Vec<(Method, String, Needs)> {
    let mut all = Vec::new();
    for base in [BASE_PATH, V1_BASE_PATH] {
        for route in &ROUTES {
            let path = format!("{base}{}", route.path.replace("{id}", "999999"));
            let writes: &[Method] = match route.shape {
                Shape::Collection | Shape::Children { .. } | Shape::Artifacts { .. } => &[Method::POST],
                Shape::Item { deletable: true } => &[Method::PATCH, Method::DELETE],
                Shape::Item { deletable: false } => &[Method::PATCH],
                _ => &[],
            };
            let creates_unscoped = match route.shape {
                Shape::Collection => route.kind != &REGISTERED_MODEL && route.kind != &MODEL_VERSION,
                Shape::Children { parent, .. } => parent != &REGISTERED_MODEL,
                _ => false,
            };
            all.push((Method::GET, path.clone(), Needs::RegistryRead));
            for method in writes {
                let needs =
                    if *method == Method::POST && creates_unscoped { Needs::WriteUnscoped } else { Needs::Write };
                all.push((method.clone(), path.clone(), needs));
            }
        }
        all.push((Method::GET, format!("{base}/openapi.yaml"), Needs::Public));
    }
    let catalog = "/api/model_catalog/v1alpha1";
    for path in ["/sources", "/models", "/models/filter_options", "/labels", "/status", "/sources/x/models/y"] {
        all.push((Method::GET, format!("{catalog}{path}"), Needs::AnonymousRead));
    }
    all.push((Method::POST, format!("{catalog}/sources/preview"), Needs::Write));
    all.push((Method::GET, format!("{catalog}/openapi.yaml"), Needs::Public));
    for path in ["/api/models", "/api/models/org/m1", "/api/models/org/m1/revision/main", "/org/m1/resolve/main/x.json"]
    {
        all.push((Method::GET, path.to_owned(), Needs::AnonymousRead));
    }
    all.push((Method::POST, "/api/models/org/m1/paths-info/main".to_owned(), Needs::AnonymousRead));
    let modelcat = "/api/modelcat/v1";
    all.push((Method::GET, format!("{modelcat}/changes?wait=0"), Needs::Feed));
    all.push((Method::GET, format!("{modelcat}/snapshot"), Needs::Feed));
    all.push((Method::GET, format!("{modelcat}/whoami"), Needs::Public));
    all.push((Method::GET, format!("{modelcat}/tokens"), Needs::Admin));
    all.push((Method::POST, format!("{modelcat}/tokens"), Needs::Admin));
    all.push((Method::DELETE, format!("{modelcat}/tokens/999999"), Needs::Admin));
    all.push((Method::GET, format!("{modelcat}/audit"), Needs::Admin));
    let permissions = format!("{modelcat}/registered_models/999999/permissions");
    all.push((Method::GET, permissions.clone(), Needs::RegistryRead));
    all.push((Method::PUT, format!("{permissions}/everyone"), Needs::Write));
    all.push((Method::DELETE, format!("{permissions}/everyone"), Needs::Write));
    for path in ["/healthz", "/readyz", "/metrics", "/no/such/path"] {
        all.push((Method::GET, path.to_owned(), Needs::Public));
    }
    // Last: it empties the registry.
    all.push((Method::POST, format!("{BASE_PATH}/testing/reset"), Needs::Admin));
    all
}

/// A token made straight in the store (for states the API cannot produce, such as already expired).
async fn stored_token(app: &TestApp, role: Role, expires_at: Option<i64>) -> String {
    let backend = modelcat::store::connect(&app.database_url).await.expect("store");
    let token = NewToken {
        name: format!("{role:?}"),
        role,
        expires_at,
        created_by: "test".into(),
        models: None,
        sources: None,
    };
    tokens::create(&*backend, &token).await.expect("token").1.expose().to_owned()
}

async fn api_token(app: &TestApp, role: &str) -> Value {
    let created = app.call(Method::POST, "/api/modelcat/v1/tokens", Some(json!({"name": role, "role": role}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    created.body
}

async fn matrix(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let mut secrets = vec![
        "hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789".to_owned(),
        "mct_not-a-real-token".to_owned(),
        stored_token(&app, Role::Admin, Some(1)).await,
    ];
    let revoked = api_token(&app, "admin").await;
    let deleted = app.call(Method::DELETE, &format!("/api/modelcat/v1/tokens/{}", revoked["id"]), None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    secrets.push(revoked["token"].as_str().expect("token").to_owned());
    for role in ["follower", "viewer", "editor"] {
        secrets.push(api_token(&app, role).await["token"].as_str().expect("token").to_owned());
    }
    let owner = api_token(&app, "editor").await["token"].as_str().expect("token").to_owned();
    let owned = json!({"name": "owned-elsewhere"});
    let created = authorized_client(&owner)
        .post(format!("{}{BASE_PATH}/registered_models", app.address))
        .json(&owned)
        .send()
        .await
        .expect("sent");
    assert_eq!(created.status(), StatusCode::CREATED);
    secrets.push(owner);
    let restricted = json!({"name": "restricted", "role": "editor", "models": ["owned-elsewhere"]});
    let restricted = app.call(Method::POST, "/api/modelcat/v1/tokens", Some(restricted)).await;
    secrets.push(restricted.body["token"].as_str().expect("token").to_owned());
    secrets.push(app.admin_token.clone());
    let kinds = [
        Caller::Foreign,
        Caller::Malformed,
        Caller::Expired,
        Caller::Revoked,
        Caller::Follower,
        Caller::Viewer,
        Caller::Editor,
        Caller::OtherOwner,
        Caller::Restricted,
        Caller::Admin,
    ];
    let mut callers = vec![(Caller::Anonymous, app.anonymous.clone())];
    callers.extend(kinds.into_iter().zip(&secrets).map(|(caller, secret)| (caller, authorized_client(secret))));

    let mut wrong = Vec::new();
    let routes = routes();
    for (method, path, needs) in &routes {
        for (caller, client) in &callers {
            let mut request = client.request(method.clone(), format!("{}{path}", app.address));
            if *method != Method::GET && *method != Method::DELETE {
                request = request.json(&json!({}));
            }
            let answer = reply(request.send().await.expect("sent")).await;
            let status = answer.status.as_u16();
            let got = matches!(status, 401 | 403).then_some(status);
            if got != expected(*needs, *caller) {
                wrong.push(format!("{method} {path} as {caller:?}: {status} {}", answer.body));
                continue;
            }
            if status == 401 {
                let challenge = answer.headers.get("www-authenticate").and_then(|value| value.to_str().ok());
                assert!(challenge.is_some_and(|value| value.starts_with("Bearer")), "{method} {path}: {challenge:?}");
            }
            if got.is_some() {
                // Refusals use the family's envelope and never echo the credential.
                let envelope = if path.starts_with("/api/modelcat/") {
                    answer.body["code"].as_str().is_some_and(|code| code == "unauthorized" || code == "forbidden")
                } else if path.starts_with("/api/model_") {
                    answer.body["code"].as_str().is_some_and(|code| code == "Unauthorized" || code == "Forbidden")
                } else {
                    answer.body["error"].is_string()
                };
                assert!(envelope, "{method} {path} as {caller:?}: {}", answer.body);
                let text = answer.body.to_string();
                assert!(secrets.iter().all(|secret| !text.contains(secret.as_str())), "{method} {path}: {text}");
            }
        }
    }
    assert!(wrong.is_empty(), "{} of {} cells wrong:\n{}", wrong.len(), routes.len() * callers.len(), wrong.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_401_and_403_as_its_role_rules_say_sqlite() {
    matrix(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_401_and_403_as_its_role_rules_say_postgres() {
    matrix(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_shown_once_stored_as_digests_and_stop_working_when_revoked() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("sqlite");
    let created = api_token(&app, "editor").await;
    let token = created["token"].as_str().expect("token").to_owned();
    assert!(token.starts_with("mct_") && token.len() == 42, "{token}");
    assert_eq!(created["role"], "editor");
    assert_eq!(created["createdBy"], "admin (MODELCAT_ADMIN_TOKEN)");
    assert_eq!(created["prefix"].as_str(), Some(&token[..8]));

    let editor = authorized_client(&token);
    let registered = editor
        .post(format!("{}/api/model_registry/v1alpha3/registered_models", app.address))
        .json(&json!({"name": "by-token"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(registered.status(), StatusCode::CREATED);
    let whoami: Value =
        editor.get(format!("{}/api/modelcat/v1/whoami", app.address)).send().await.unwrap().json().await.unwrap();
    assert_eq!(whoami["identity"]["subject"], "token:editor", "{whoami}");
    assert_eq!(whoami["identity"]["role"], "editor", "{whoami}");

    let listed = app.call(Method::GET, "/api/modelcat/v1/tokens", None).await;
    let listed_text = listed.body.to_string();
    assert!(!listed_text.contains(&token[8..]), "the list shows a secret: {listed_text}");
    let entry =
        listed.body["items"].as_array().expect("items").iter().find(|item| item["id"] == created["id"]).cloned();
    let entry = entry.expect("the new token is listed");
    // The last use is written in the background, so wait for it.
    let used = crate::helpers::eventually(std::time::Duration::from_secs(10), || async {
        let listed = app.call(Method::GET, "/api/modelcat/v1/tokens", None).await;
        let items = listed.body["items"].as_array().cloned().unwrap_or_default();
        items.into_iter().find(|item| item["id"] == created["id"] && item["lastUsedAt"].is_i64())
    })
    .await;
    assert!(used.is_some(), "last use is recorded: {entry}");
    assert!(entry["token"].is_null());

    // Only the digest is stored: the plaintext appears nowhere in the database files.
    for file in std::fs::read_dir(app.data_dir.parent().expect("root")).expect("dir").flatten() {
        if file.file_name().to_string_lossy().starts_with("registry.db") {
            let bytes = std::fs::read(file.path()).expect("read");
            let found = bytes.windows(token.len()).any(|window| window == token.as_bytes());
            assert!(!found, "the token is stored in {}", file.path().display());
        }
    }

    let revoked = app.call(Method::DELETE, &format!("/api/modelcat/v1/tokens/{}", created["id"]), None).await;
    assert!(revoked.body["revokedAt"].is_i64(), "{}", revoked.body);
    let refused = reply(
        editor.get(format!("{}/api/model_registry/v1alpha3/registered_models", app.address)).send().await.unwrap(),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.body["message"], "the token was revoked", "{}", refused.body);

    let expired = stored_token(&app, Role::Viewer, Some(1)).await;
    let answer = reply(
        authorized_client(&expired)
            .get(format!("{}/api/model_registry/v1alpha3/registered_models", app.address))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((answer.status, answer.body["message"].as_str()), (StatusCode::UNAUTHORIZED, Some("the token expired")));

    for bad in [json!({"name": "", "role": "viewer"}), json!({"name": "x", "role": "root"}), json!({"name": "x"})] {
        let answer = app.call(Method::POST, "/api/modelcat/v1/tokens", Some(bad.clone())).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}: {}", answer.body);
        assert_eq!(answer.body["code"], "bad_request");
    }
    let missing = app.call(Method::DELETE, "/api/modelcat/v1/tokens/424242", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_database_gets_one_bootstrap_admin_token_readable_only_by_its_owner() {
    let app =
        TestApp::spawn_configured(Backend::Sqlite, |settings| settings.auth.admin_token = None).await.expect("sqlite");
    let file = app.data_dir.join("admin-token");
    let token = std::fs::read_to_string(&file).expect("bootstrap token file").trim().to_owned();
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&file).expect("metadata").permissions().mode() & 0o777, 0o600);
    let admin = authorized_client(&token);
    let listed: Value =
        admin.get(format!("{}/api/modelcat/v1/tokens", app.address)).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["items"][0]["name"], "bootstrap-admin", "{listed}");
    assert_eq!(listed["size"], 1);

    // A second server on the same database (a restart, another replica) makes no second one.
    std::fs::remove_file(&file).expect("remove");
    let backend = modelcat::store::connect(&app.database_url).await.expect("store");
    let again = tokens::bootstrap(&*backend, &app.data_dir).await.expect("bootstrap");
    assert_eq!(again, None);
    assert!(!file.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_names_the_user_and_groups_map_to_roles() {
    let proxy = |trusted: &str| {
        let yaml = format!(
            "methods: [token, proxy]\ngroups: {{ml-admins: admin, ml-team: editor}}\nproxy: {{trusted: [{trusted}]}}\n"
        );
        let file: modelcat::auth::settings::AuthFileSettings = serde_norway::from_str(&yaml).expect("yaml");
        file.settings(None).expect("valid")
    };
    let trusted = proxy("127.0.0.1");
    let app = TestApp::spawn_configured(Backend::Sqlite, |settings| settings.auth = trusted).await.expect("sqlite");
    let as_user = |user: &str, groups: &str| {
        app.anonymous
            .post(format!("{}/api/model_registry/v1alpha3/registered_models", app.address))
            .header("kubeflow-userid", user)
            .header("kubeflow-groups", groups)
            .json(&json!({"name": format!("by-{user}")}))
    };
    assert_eq!(as_user("ada@example.com", "ml-team").send().await.unwrap().status(), StatusCode::CREATED);
    let viewer = reply(as_user("bob@example.com", "visitors").send().await.unwrap()).await;
    assert_eq!(viewer.status, StatusCode::FORBIDDEN, "{}", viewer.body);
    assert!(viewer.body["message"].as_str().is_some_and(|message| message.contains("bob@example.com (viewer)")));
    let whoami: Value = app
        .anonymous
        .get(format!("{}/api/modelcat/v1/whoami", app.address))
        .header("kubeflow-userid", "carol")
        .header("kubeflow-groups", "visitors, ml-admins")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(whoami["identity"]["role"], "admin", "{whoami}");
    assert_eq!(whoami["identity"]["groups"], json!(["visitors", "ml-admins"]));
    drop(app);

    // From an address that is not the proxy's, the headers count for nothing.
    let untrusted = proxy("10.0.0.0/8");
    let app = TestApp::spawn_configured(Backend::Sqlite, |settings| settings.auth = untrusted).await.expect("sqlite");
    let spoofed = app
        .anonymous
        .post(format!("{}/api/model_registry/v1alpha3/registered_models", app.address))
        .header("kubeflow-userid", "mallory")
        .header("kubeflow-groups", "ml-admins")
        .json(&json!({"name": "spoofed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(spoofed.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_off_anyone_writes_and_status_says_so() {
    let app = TestApp::spawn_configured(Backend::Sqlite, |settings| settings.auth = AuthSettings::off())
        .await
        .expect("sqlite");
    let created = app
        .anonymous
        .post(format!("{}/api/model_registry/v1alpha3/registered_models", app.address))
        .json(&json!({"name": "open"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let status = app.call(Method::GET, "/api/model_catalog/v1alpha1/status", None).await;
    assert_eq!(status.body["auth"]["methods"], json!(["none"]));
    assert!(status.body["auth"]["warning"].as_str().is_some_and(|warning| warning.contains("authentication is off")));
    assert!(!app.data_dir.join("admin-token").exists(), "no bootstrap token when auth is off");
}

#[test]
fn the_token_command_creates_lists_and_revokes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = format!("sqlite://{}", dir.path().join("registry.db").display());
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_modelcat"))
            .arg("token")
            .args(args)
            .args(["--database-url", &database, "--data-dir"])
            .arg(dir.path().join("data"))
            .output()
            .expect("runs");
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let (token, said) = run(&["create", "--name", "ci deploys", "--role", "editor", "--expires-in-days", "30"]);
    let token = token.trim();
    assert!(token.starts_with("mct_") && said.contains("shown only this once"), "{token} / {said}");
    assert!(modelcat::auth::token::Plaintext::parse(token).is_ok());
    let (listed, _) = run(&["list"]);
    assert!(listed.contains("ci deploys") && listed.contains("editor") && listed.contains("active"), "{listed}");
    assert!(!listed.contains(&token[8..]), "{listed}");
    let id = listed.lines().nth(1).and_then(|line| line.split_whitespace().next()).expect("id").to_owned();
    run(&["revoke", &id]);
    let (listed, _) = run(&["list"]);
    assert!(listed.contains("revoked"), "{listed}");
}
