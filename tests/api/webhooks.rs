//! Webhooks over HTTP against a real receiver: the subscription API and its checks, signed deliveries
//! of registry and governance events, retries after 500s with every attempt in the delivery log, a 410
//! that disables the subscription, redelivery, secret rotation, and no secret in lists or the audit
//! log. (An independent verifier, and a `kill -9` between commit and delivery: `tests/compat/test_webhooks.py`.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use modelcat::webhooks::signing;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, eventually};

const WEBHOOKS: &str = "/api/modelcat/v1/webhooks";

/// A delivery as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

/// An HTTP receiver that answers each delivery with the next scripted status (200 once the script ends).
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Vec<u16>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let received = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Mutex<Vec<u16>>> = Arc::new(Mutex::new(Vec::new()));
        let (seen, answers) = (received.clone(), script.clone());
        let handler = move |headers: HeaderMap, body: String| {
            let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or("").to_owned();
            seen.lock().unwrap().push(Received {
                id: header("webhook-id"),
                timestamp: header("webhook-timestamp"),
                signature: header("webhook-signature"),
                body,
            });
            let mut answers = answers.lock().unwrap();
            let status = if answers.is_empty() { 200 } else { answers.remove(0) };
            std::future::ready(axum::http::StatusCode::from_u16(status).unwrap())
        };
        let router = axum::Router::new().route("/hook", axum::routing::post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}/hook", listener.local_addr().unwrap().port());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Receiver { url, received, script }
    }

    fn of_type(&self, event_type: &str) -> Vec<Received> {
        let received = self.received.lock().unwrap();
        received
            .iter()
            .filter(|delivery| delivery.body.contains(&format!("\"type\":\"{event_type}\"")))
            .cloned()
            .collect()
    }
}

async fn spawn() -> TestApp {
    TestApp::spawn_configured(Backend::Sqlite, |settings| {
        settings.webhooks.allowed_networks = vec!["127.0.0.0/8".parse().unwrap()];
        settings.webhooks.retry_schedule_secs = vec![0, 0];
        settings.webhooks.poll_interval_ms = 20;
    })
    .await
    .expect("sqlite app")
}

fn verify(secret: &str, delivery: &Received) -> bool {
    let key = signing::secret_key(secret).expect("a secret");
    let timestamp: i64 = delivery.timestamp.parse().expect("a timestamp");
    let expected = signing::signature(&[key], &delivery.id, timestamp, delivery.body.as_bytes());
    delivery.signature.split(' ').any(|signature| signature == expected)
}

async fn wait_for<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    let mut check = check;
    eventually(Duration::from_secs(10), || std::future::ready(check())).await.unwrap_or_else(|| panic!("{what}"))
}

#[tokio::test]
async fn subscriptions_are_checked_and_keep_their_secret() {
    let strict = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let private = strict.call(Method::POST, WEBHOOKS, Some(json!({"url": "http://127.0.0.1:9/hook"}))).await;
    assert_eq!(private.status, StatusCode::BAD_REQUEST, "{}", private.body);
    assert!(private.body["message"].as_str().unwrap().contains("webhooks.allowed_networks"), "{}", private.body);
    let metadata = strict.call(Method::POST, WEBHOOKS, Some(json!({"url": "http://169.254.169.254/latest"}))).await;
    assert_eq!(metadata.status, StatusCode::BAD_REQUEST);
    let cases = [
        json!({"url": "https://hooks.example.com/x", "eventTypes": ["model.exploded"]}),
        json!({"url": "ftp://hooks.example.com/x"}),
        json!({"description": "no url"}),
        json!({"url": "https://hooks.example.com/x", "secret": "mine"}),
    ];
    for body in cases {
        let refused = strict.call(Method::POST, WEBHOOKS, Some(body.clone())).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{body}: {}", refused.body);
        assert_eq!(refused.body["code"], "bad_request");
    }
    let created =
        strict.call(Method::POST, WEBHOOKS, Some(json!({"url": "https://hooks.example.com/x?token=abc"}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.headers["cache-control"], "no-store");
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let id = created.body["id"].as_str().unwrap();
    let listed = strict.call(Method::GET, WEBHOOKS, None).await;
    let read = strict.call(Method::GET, &format!("{WEBHOOKS}/{id}"), None).await;
    let audit = strict.call(Method::GET, "/api/modelcat/v1/audit?entity=webhook/", None).await;
    for body in [&listed.body, &read.body, &audit.body] {
        assert!(!body.to_string().contains(&secret), "a secret leaked: {body}");
        assert!(!body.to_string().contains("token=abc") || body == &listed.body || body == &read.body);
    }
    assert!(!audit.body.to_string().contains("token=abc"), "the audit log names the host only: {}", audit.body);
    assert_eq!(audit.body["items"][0]["detail"], "to hooks.example.com");
    let viewer =
        strict.call(Method::POST, "/api/modelcat/v1/tokens", Some(json!({"name": "v", "role": "editor"}))).await;
    let editor = crate::helpers::authorized_client(viewer.body["token"].as_str().unwrap());
    let denied = editor.get(format!("{}{WEBHOOKS}", strict.address)).send().await.unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN, "webhooks are for admins");
    let missing = strict.call(Method::DELETE, &format!("{WEBHOOKS}/999"), None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn deliveries_are_signed_retried_logged_and_stop_at_410() {
    let app = spawn().await;
    let receiver = Receiver::start().await;
    let body = json!({"url": receiver.url, "eventTypes": ["registered_model.created", "registered_model.updated"]});
    let created = app.call(Method::POST, WEBHOOKS, Some(body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    let id = created.body["id"].as_str().unwrap().to_owned();

    // A registered model's creation arrives signed; a version's (not subscribed) does not.
    let model = app.create("/registered_models", json!({"name": "hooked"})).await;
    app.create("/model_versions", json!({"name": "v1", "registeredModelId": model})).await;
    let first = wait_for("the creation event", || receiver.of_type("registered_model.created").pop()).await;
    assert!(verify(&secret, &first), "the signature verifies");
    let payload: Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(payload["data"]["registeredModelId"], model.as_str());
    assert_eq!(payload["data"]["name"], "hooked");
    assert!(first.id.starts_with("evt_"));
    let mut tampered = first.clone();
    tampered.body = tampered.body.replacen("hooked", "hookee", 1);
    assert!(!verify(&secret, &tampered), "a changed body fails");

    // Two 500s, then success: three attempts, all logged.
    receiver.script.lock().unwrap().extend([500, 503]);
    app.patch(&format!("/registered_models/{model}"), json!({"description": "retried"})).await;
    wait_for("three attempts", || (receiver.of_type("registered_model.updated").len() == 3).then_some(())).await;
    let attempts = receiver.of_type("registered_model.updated");
    assert!(attempts.iter().all(|attempt| attempt.id == attempts[0].id), "one webhook-id across retries");
    let deliveries = format!("{WEBHOOKS}/{id}/deliveries");
    let log = eventually(Duration::from_secs(10), || async {
        let log = app.call(Method::GET, &deliveries, None).await;
        (log.body["items"][0]["state"] == "delivered").then_some(log)
    })
    .await
    .expect("the delivered state");
    let statuses: Vec<i64> =
        log.body["items"][0]["attemptLog"].as_array().unwrap().iter().map(|a| a["status"].as_i64().unwrap()).collect();
    assert_eq!(statuses, [500, 503, 200]);

    // Redelivery sends the same event again.
    let delivery = log.body["items"][0]["id"].as_str().unwrap();
    let again = app.call(Method::POST, &format!("{WEBHOOKS}/{id}/deliveries/{delivery}/redeliver"), None).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    wait_for("the redelivery", || (receiver.of_type("registered_model.updated").len() == 4).then_some(())).await;

    // A rotation: both secrets sign for a while.
    let rotated = app.call(Method::POST, &format!("{WEBHOOKS}/{id}/rotate-secret"), None).await;
    let new_secret = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    assert!(rotated.body["previousSecretUntil"].is_string());
    app.create("/registered_models", json!({"name": "rotated"})).await;
    let signed = wait_for("a delivery after rotation", || {
        receiver.of_type("registered_model.created").into_iter().find(|delivery| delivery.body.contains("rotated"))
    })
    .await;
    assert!(verify(&new_secret, &signed) && verify(&secret, &signed), "{}", signed.signature);

    // Failures past the schedule end as failed; a 410 disables the subscription.
    receiver.script.lock().unwrap().extend([500, 500, 500]);
    app.create("/registered_models", json!({"name": "failing"})).await;
    let failed = eventually(Duration::from_secs(10), || async {
        let log = app.call(Method::GET, &deliveries, None).await;
        (log.body["items"][0]["state"] == "failed").then_some(log)
    })
    .await
    .expect("a failed delivery");
    assert_eq!(failed.body["items"][0]["attempts"], 3, "the first attempt and two retries");
    receiver.script.lock().unwrap().push(410);
    app.create("/registered_models", json!({"name": "gone"})).await;
    let subscription = format!("{WEBHOOKS}/{id}");
    let disabled = eventually(Duration::from_secs(10), || async {
        let read = app.call(Method::GET, &subscription, None).await;
        (read.body["enabled"] == false).then_some(read)
    })
    .await
    .expect("the subscription disabled");
    assert_eq!(disabled.body["disabledReason"], "the endpoint answered 410 Gone");
    let before = receiver.received.lock().unwrap().len();
    app.create("/registered_models", json!({"name": "after-gone"})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received.lock().unwrap().len(), before, "nothing goes to a disabled subscription");
    let enabled = app.call(Method::PATCH, &format!("{WEBHOOKS}/{id}"), Some(json!({"enabled": true}))).await;
    assert_eq!(enabled.body["enabled"], true, "{}", enabled.body);
}

#[tokio::test]
async fn without_a_subscription_no_event_is_written() {
    let app = spawn().await;
    let model = app.create("/registered_models", json!({"name": "quiet"})).await;
    app.patch(&format!("/registered_models/{model}"), json!({"description": "still quiet"})).await;
    let backend = modelcat::store::connect(&app.database_url).await.unwrap();
    assert_eq!(modelcat::store::outbox::count(&*backend).await.unwrap(), 0);
    let receiver = Receiver::start().await;
    let created = app
        .call(Method::POST, WEBHOOKS, Some(json!({"url": receiver.url, "eventTypes": ["registered_model.updated"]})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    app.create("/registered_models", json!({"name": "not wanted"})).await;
    app.patch(&format!("/registered_models/{model}"), json!({"description": "wanted"})).await;
    wait_for("the wanted event", || receiver.of_type("registered_model.updated").pop()).await;
    assert_eq!(modelcat::store::outbox::count(&*backend).await.unwrap(), 1, "only the wanted type was written");
}

#[tokio::test]
async fn the_command_line_manages_subscriptions() {
    let app = spawn().await;
    let cli = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_modelcat"))
            .arg("webhook")
            .args(args)
            .args(["--database-url", &app.database_url, "--data-dir"])
            .arg(&app.data_dir)
            .output()
            .expect("runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, secret, said) =
        cli(&["create", "--url", "https://hooks.example.com/cli", "--event", "model_version.transitioned"]);
    assert!(ok, "{said}");
    assert!(secret.trim().starts_with("whsec_") && said.contains("shown only this once"), "{secret} {said}");
    let (ok, listed, _) = cli(&["list"]);
    assert!(
        ok && listed.contains("https://hooks.example.com/cli") && listed.contains("model_version.transitioned"),
        "{listed}"
    );
    assert!(!listed.contains(secret.trim()), "no secret in the list");
    let read = app.call(Method::GET, WEBHOOKS, None).await;
    let id = read.body["items"][0]["id"].as_str().unwrap().to_owned();
    let (ok, rotated, _) = cli(&["rotate-secret", &id]);
    assert!(ok && rotated.trim().starts_with("whsec_") && rotated.trim() != secret.trim());
    let (refused, _, said) = cli(&["create", "--url", "http://10.0.0.1/hook"]);
    assert!(!refused && said.contains("webhooks.allowed_networks"), "{said}");
    let (refused, _, said) = cli(&["create", "--url", "https://hooks.example.com/x", "--event", "nope"]);
    assert!(!refused && said.contains("unknown event type"), "{said}");
    let (ok, _, _) = cli(&["delete", &id]);
    assert!(ok);
    assert_eq!(app.call(Method::GET, WEBHOOKS, None).await.body["items"], json!([]));
    let audit = app.call(Method::GET, "/api/modelcat/v1/audit?actor=cli", None).await;
    let actions: Vec<&str> =
        audit.body["items"].as_array().unwrap().iter().map(|item| item["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["webhook.create", "webhook.rotate_secret", "webhook.delete"]);
}

#[tokio::test]
async fn an_attempt_for_a_deleted_subscription_does_not_lose_the_batch() {
    use modelcat::store::outbox::{self, EventType};
    use modelcat::webhooks::store::{Outcome, SubscriptionDraft, WebhookStore};
    let directory = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", directory.path().join("webhooks.db").display());
    let backend = modelcat::store::connect(&url).await.unwrap();
    let store = WebhookStore::new(backend.clone());
    let draft = |url: &str| SubscriptionDraft { url: Some(url.to_owned()), ..Default::default() };
    let kept = store.create(draft("https://kept.example/")).await.unwrap().subscription.id.parse().unwrap();
    let deleted = store.create(draft("https://deleted.example/")).await.unwrap().subscription.id.parse().unwrap();
    let mut transaction = backend.begin().await.unwrap();
    outbox::append(&mut *transaction, backend.dialect(), EventType::ModelCreated, json!({})).await.unwrap();
    transaction.commit().await.unwrap();
    let due = store.claim_due(10, 60_000).await.unwrap();
    assert_eq!(due.len(), 2, "one delivery per subscription");
    assert!(store.claim_due(10, 60_000).await.unwrap().is_empty(), "claimed deliveries are not claimed again");
    store.delete(deleted).await.unwrap();
    let outcomes: Vec<_> = due.iter().map(|due| (due, Outcome::Delivered(204), 3)).collect();
    store.record(&outcomes).await.expect("the batch is recorded");
    let log = store.deliveries(kept, 10).await.unwrap();
    assert_eq!((log[0].state.as_str(), log[0].attempt_log.len()), ("delivered", 1));
}

/// Writes like an editor does: a temporary file renamed over the old one.
fn write_atomically(path: &std::path::Path, text: &str) {
    let temporary = path.with_extension("swp");
    std::fs::write(&temporary, text).expect("write");
    std::fs::rename(&temporary, path).expect("rename");
}

fn catalog(names: &[&str]) -> String {
    let models: Vec<String> =
        names.iter().map(|name| format!("  - {{name: {name}, provider: Acme, license: mit}}")).collect();
    format!("source: Acme\nmodels:\n{}\n", models.join("\n"))
}

#[tokio::test]
async fn catalog_events_on_sqlite() {
    catalog_events_announce_models_added_and_removed_for_chosen_sources(Backend::Sqlite).await;
}

#[tokio::test]
async fn catalog_events_on_postgres() {
    catalog_events_announce_models_added_and_removed_for_chosen_sources(Backend::Postgres).await;
}

async fn catalog_events_announce_models_added_and_removed_for_chosen_sources(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let sources = "model_catalogs:\n  - {id: team-a, name: Team A, type: yaml, properties: {yamlCatalogPath: a.yaml}}\n  \
                   - {id: team-b, name: Team B, type: yaml, properties: {yamlCatalogPath: b.yaml}}\n";
    std::fs::write(dir.path().join("sources.yaml"), sources).unwrap();
    std::fs::write(dir.path().join("a.yaml"), catalog(&["acme/m1", "acme/m2"])).unwrap();
    std::fs::write(dir.path().join("b.yaml"), catalog(&["acme/x1"])).unwrap();
    let sources = vec![dir.path().join("sources.yaml")];
    let Some(app) = TestApp::spawn_configured(backend, |settings| {
        settings.webhooks.allowed_networks = vec!["127.0.0.0/8".parse().unwrap()];
        settings.webhooks.poll_interval_ms = 20;
        settings.catalog.sources = sources;
        settings.catalog.debounce = Duration::from_millis(30);
    })
    .await
    else {
        return;
    };
    let (chosen, everything) = (Receiver::start().await, Receiver::start().await);
    let body = json!({"url": chosen.url, "catalogSources": ["team-a", "team-a"],
                      "eventTypes": ["catalog.models_added", "catalog.models_removed"]});
    let created = app.call(Method::POST, WEBHOOKS, Some(body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["catalogSources"], json!(["team-a"]));
    let other = app.call(Method::POST, WEBHOOKS, Some(json!({"url": everything.url}))).await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.body);
    let bad = app.call(Method::POST, WEBHOOKS, Some(json!({"url": everything.url, "catalogSources": ["Not an id!"]})));
    assert_eq!(bad.await.status, StatusCode::BAD_REQUEST);

    // Team A gains a model and loses one; team B gains one.
    write_atomically(&dir.path().join("a.yaml"), &catalog(&["acme/m2", "acme/m3"]));
    write_atomically(&dir.path().join("b.yaml"), &catalog(&["acme/x1", "acme/x2"]));
    let models = |delivery: &Received| {
        let body: Value = serde_json::from_str(&delivery.body).unwrap();
        (body["data"]["sourceId"].as_str().unwrap().to_owned(), body["data"]["models"].clone())
    };
    let added = eventually(Duration::from_secs(10), || async {
        let added = chosen.of_type("catalog.models_added");
        (!added.is_empty() && !chosen.of_type("catalog.models_removed").is_empty()).then_some(added)
    })
    .await
    .expect("catalog events for team A");
    assert_eq!(added.iter().map(models).collect::<Vec<_>>(), [("team-a".to_owned(), json!(["acme/m3"]))]);
    let removed: Vec<_> = chosen.of_type("catalog.models_removed").iter().map(models).collect();
    assert_eq!(removed, [("team-a".to_owned(), json!(["acme/m1"]))]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(chosen.received.lock().unwrap().len(), 2, "nothing for team B, which it did not choose");
    assert!(
        everything.received.lock().unwrap().iter().all(|delivery| !delivery.body.contains("\"catalog.")),
        "a subscription without catalog sources gets no catalog events"
    );

    // Another replica announcing the same change finds nothing left to announce.
    let backend = modelcat::store::connect(&app.database_url).await.expect("store");
    let announcer = modelcat::catalog::events::Announcer::new(backend);
    let names = |names: &[&str]| names.iter().map(|name| name.to_string()).collect::<Vec<_>>();
    let again = announcer.announce("team-a", &names(&["acme/m1", "acme/m2"]), &names(&["acme/m2", "acme/m3"])).await;
    assert_eq!(again.expect("announce"), (0, 0));
    let back = announcer.announce("team-a", &[], &names(&["acme/m1", "acme/m2", "acme/m3"])).await;
    assert_eq!(back.expect("announce"), (1, 0), "a fresh index announces only what is new");
}
