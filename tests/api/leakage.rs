//! No secret leaks: after a scripted run over every API family, by real `modelcat serve` processes (one
//! following the other with a token file), no plaintext token appears in either process's log (at debug
//! level), in any file of their data directories (SQLite database and WAL, index, keys), in audit rows,
//! in status pages or in any answer except the one that created it.

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::cluster::{ADMIN_TOKEN, CATALOG, Node, REGISTRY, Timing};
use crate::helpers::{authorized_client, eventually};

const LOG_FILTER: &str = "info,modelcat=debug,tower_http=debug";

/// Every answer of the run, as text.
#[derive(Default)]
struct Answers(Vec<String>);

impl Answers {
    async fn send(
        &mut self,
        client: &reqwest::Client,
        node: &Node,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let mut request = client.request(method.clone(), format!("{}{path}", node.address));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("sent");
        let headers = format!("{:?}", response.headers());
        let text = response.text().await.expect("body");
        self.0.push(format!("{method} {path}\n{headers}\n{text}"));
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

/// Every file under `dir`, as bytes, with its path.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut all = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return all };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            all.extend(files(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            all.push((path.display().to_string(), bytes));
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_appears_in_logs_files_audit_rows_or_answers() {
    let root = tempfile::tempdir().expect("temp dir");
    let timing = Timing::default();
    let sqlite = |id: &str| format!("sqlite://{}", root.path().join(format!("{id}.db")).display());
    let a = Node::spawn_logging(root.path(), "a", &sqlite("a"), "", &timing, LOG_FILTER);
    let mut a = a;
    a.wait_ready().await;
    let admin = authorized_client(&ADMIN_TOKEN);
    let mut answers = Answers::default();
    let mut secrets = vec![ADMIN_TOKEN.clone()];

    // Tokens of every kind, each created over the API (the one answer allowed to carry it).
    let mut token = |answer: Value| {
        let secret = answer["token"].as_str().expect("token").to_owned();
        secrets.push(secret.clone());
        secret
    };
    let create = |name: &str, role: &str| json!({"name": name, "role": role});
    let tokens = "/api/modelcat/v1/tokens";
    let editor = token(answers.send(&admin, &a, Method::POST, tokens, Some(create("editor", "editor"))).await);
    let viewer = token(answers.send(&admin, &a, Method::POST, tokens, Some(create("viewer", "viewer"))).await);
    let follower = token(answers.send(&admin, &a, Method::POST, tokens, Some(create("peer", "follower"))).await);
    let restricted = json!({"name": "ci", "role": "editor", "models": ["team/a"]});
    let restricted = token(answers.send(&admin, &a, Method::POST, tokens, Some(restricted)).await);
    let revoked = answers.send(&admin, &a, Method::POST, tokens, Some(create("gone", "editor"))).await;
    let revoked_id = revoked["id"].as_i64().expect("id");
    let revoked = token(revoked);
    let created_answers = answers.0.len();
    answers.send(&admin, &a, Method::DELETE, &format!("{tokens}/{revoked_id}"), None).await;

    // Every family, as each caller, including refusals.
    let editor = authorized_client(&editor);
    let viewer = authorized_client(&viewer);
    let restricted = authorized_client(&restricted);
    let revoked = authorized_client(&revoked);
    let hub_token = "hf_SecretHubTokenThatMustNotLeak0123456789";
    secrets.push(hub_token.to_owned());
    let hub = authorized_client(hub_token);
    let checksum_typo = {
        let mut typo = secrets[1].clone();
        let last = typo.pop().expect("char");
        typo.push(if last == 'A' { 'B' } else { 'A' });
        typo
    };
    secrets.push(checksum_typo.clone());
    let typo = authorized_client(&checksum_typo);
    let model = answers
        .send(&editor, &a, Method::POST, &format!("{REGISTRY}/registered_models"), Some(json!({"name": "team/a"})))
        .await;
    let model_id = model["id"].as_str().expect("id").to_owned();
    let version = json!({"name": "v1", "registeredModelId": model_id});
    answers.send(&restricted, &a, Method::POST, &format!("{REGISTRY}/model_versions"), Some(version)).await;
    let permissions = format!("/api/modelcat/v1/registered_models/{model_id}/permissions");
    answers
        .send(&editor, &a, Method::PUT, &format!("{permissions}/user:token:ci"), Some(json!({"level": "edit"})))
        .await;
    answers.send(&editor, &a, Method::GET, &permissions, None).await;
    for client in [&editor, &viewer, &restricted, &revoked, &hub, &typo] {
        for path in [
            format!("{REGISTRY}/registered_models"),
            format!("{REGISTRY}/registered_models/{model_id}"),
            format!("{CATALOG}/models?q=team"),
            format!("{CATALOG}/status"),
            "/api/models".to_owned(),
            "/api/modelcat/v1/whoami".to_owned(),
            "/api/modelcat/v1/changes?wait=0".to_owned(),
            "/api/modelcat/v1/audit".to_owned(),
            format!("{tokens}"),
        ] {
            answers.send(client, &a, Method::GET, &path, None).await;
        }
        let patch = json!({"description": "touched"});
        answers.send(client, &a, Method::PATCH, &format!("{REGISTRY}/registered_models/{model_id}"), Some(patch)).await;
        answers.send(client, &a, Method::POST, &format!("{REGISTRY}/registered_models"), Some(json!({"bad": 1}))).await;
    }
    answers.send(&admin, &a, Method::GET, "/api/modelcat/v1/audit?pageSize=1000", None).await;
    answers.send(&admin, &a, Method::GET, "/metrics", None).await;

    // A second server follows the first with the follower token, read from a file.
    let token_file = root.path().join("peer.token");
    std::fs::write(&token_file, &follower).expect("token file");
    let sources = format!(
        "model_catalogs:\n  - id: upstream\n    name: Upstream\n    type: peer\n    properties:\n      url: {}\n      \
         syncInterval: 1s\n      tokenFile: {}\n",
        a.address,
        token_file.display()
    );
    let mut b = Node::spawn_logging(root.path(), "b", &sqlite("b"), &sources, &timing, LOG_FILTER);
    b.wait_ready().await;
    let followed = eventually(Duration::from_secs(20), || async {
        b.catalog_names("upstream").await.filter(|names| names.contains("team/a"))
    })
    .await;
    assert!(followed.is_some(), "b follows a; its log:\n{}", b.log());
    answers.send(&admin, &b, Method::GET, &format!("{CATALOG}/status"), None).await;
    answers.send(&admin, &b, Method::GET, &format!("{CATALOG}/sources"), None).await;
    answers.send(&admin, &b, Method::GET, "/metrics", None).await;
    a.stop();
    b.stop();

    let mut leaks = Vec::new();
    for secret in &secrets {
        // The random part alone must not appear either (a token logged with its prefix cut off).
        let core = secret.strip_prefix("mct_").map_or(secret.as_str(), |rest| &rest[..32.min(rest.len())]);
        for (index, answer) in answers.0.iter().enumerate() {
            if index >= created_answers && answer.contains(core) {
                leaks.push(format!("answer {}", answer.lines().next().unwrap_or_default()));
            }
        }
        for node in [&a, &b] {
            if node.log().contains(core) {
                leaks.push(format!("the log of {}", node.id));
            }
            for (path, bytes) in files(node.dir()) {
                let is_log = path.ends_with("modelcat.log");
                if !is_log && contains(&bytes, core) {
                    leaks.push(format!("file {path}"));
                }
            }
        }
        for id in ["a", "b"] {
            for suffix in [".db", ".db-wal", ".db-shm"] {
                let path = root.path().join(format!("{id}{suffix}"));
                if std::fs::read(&path).is_ok_and(|bytes| contains(&bytes, core)) {
                    leaks.push(format!("database file {}", path.display()));
                }
            }
        }
    }
    assert!(leaks.is_empty(), "secrets leaked to: {leaks:#?}");
    // The run did reach what it meant to: refusals, the audit log, the peer's status.
    let text = answers.0.join("\n");
    for expected in
        ["\"code\":\"Unauthorized\"", "\"code\":\"Forbidden\"", "permission.grant", "token.revoke", "upstream"]
    {
        assert!(text.contains(expected), "the run never produced {expected}");
    }
}
