//! The audit log over HTTP and on disk: writes are recorded with who made them and the request id; the
//! API filters and pages; the database refuses edits; and `audit verify` catches an edited, deleted,
//! reordered, truncated or re-chained log, naming the entry.

use std::path::Path;
use std::time::Duration;

use modelcat::audit::checkpoint::PUBLIC_KEY_FILE;
use modelcat::audit::verify;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, eventually};

/// Writes a little of everything: a model (created, patched), a version, a token made and revoked.
async fn write_some(app: &TestApp) -> String {
    let model = app.create("/registered_models", json!({"name": "audited"})).await;
    app.patch(&format!("/registered_models/{model}"), json!({"description": "changed"})).await;
    app.create(&format!("/registered_models/{model}/versions"), json!({"name": "v1"})).await;
    let token = app.call(Method::POST, "/api/modelcat/v1/tokens", Some(json!({"name": "ci", "role": "viewer"}))).await;
    app.call(Method::DELETE, &format!("/api/modelcat/v1/tokens/{}", token.body["id"]), None).await;
    token.body["token"].as_str().expect("token").to_owned()
}

async fn audit(app: &TestApp, query: &str) -> Value {
    let answer = app.call(Method::GET, &format!("/api/modelcat/v1/audit{query}"), None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body
}

/// Waits until every entry is chained and the head is covered by a checkpoint.
async fn settled(app: &TestApp) -> i64 {
    let backend = modelcat::store::connect(&app.database_url).await.expect("store");
    let head = eventually(Duration::from_secs(10), || async {
        let (head, _) = modelcat::store::audit::last(&*backend).await.ok()?;
        let unsealed = modelcat::store::audit::unsealed(&*backend).await.ok()?;
        let checkpoints = modelcat::store::audit::checkpoints(&*backend).await.ok()?;
        // The three reads are not one snapshot: an entry chained between the first two would look
        // settled at the old head. The head must not have moved meanwhile.
        let (again, _) = modelcat::store::audit::last(&*backend).await.ok()?;
        (again == head && unsealed == 0 && checkpoints.last().is_some_and(|checkpoint| checkpoint.seq == head))
            .then_some(head)
    })
    .await;
    head.expect("the audit log was chained and checkpointed")
}

fn trusted(app: &TestApp) -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(app.data_dir.join(PUBLIC_KEY_FILE)).expect("public key");
    vec![modelcat::hex::decode(&text).expect("hex")]
}

async fn records_writes(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let secret = write_some(&app).await;
    settled(&app).await;
    let all = audit(&app, "").await;
    let actions: Vec<&str> =
        all["items"].as_array().expect("items").iter().filter_map(|item| item["action"].as_str()).collect();
    assert_eq!(actions, ["create", "update", "create", "token.create", "token.revoke"], "{all}");
    let first = &all["items"][0];
    assert_eq!(first["actor"], "admin (MODELCAT_ADMIN_TOKEN)");
    assert_eq!(first["entity"], "registered_model/1");
    assert!(first["requestId"].as_str().is_some_and(|id| !id.is_empty()), "{first}");
    assert!(first["beforeDigest"].is_null() && first["afterDigest"].as_str().is_some_and(|d| d.len() == 64));
    let update = &all["items"][1];
    assert_ne!(update["beforeDigest"], update["afterDigest"]);
    assert_eq!(update["beforeDigest"], first["afterDigest"], "the update starts from the created state");
    assert!(!all.to_string().contains(&secret), "a token is in the audit log");
    assert_eq!(all["items"][3]["detail"], "ci (viewer)");

    let models = audit(&app, "?entity=registered_model/&pageSize=1").await;
    assert_eq!((models["size"].as_u64(), models["items"][0]["action"].as_str()), (Some(1), Some("create")));
    let token = models["nextPageToken"].as_str().expect("next page").to_owned();
    let next = audit(&app, &format!("?entity=registered_model/&pageSize=1&pageToken={token}")).await;
    assert_eq!(next["items"][0]["action"], "update");
    assert_eq!(audit(&app, "?action=token.revoke").await["size"], 1);
    assert_eq!(audit(&app, "?actor=nobody").await["size"], 0);
    let bad = app.call(Method::GET, "/api/modelcat/v1/audit?pageSize=0", None).await;
    assert_eq!((bad.status, bad.body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_request")));

    let backend = modelcat::store::connect(&app.database_url).await.expect("store");
    let report = verify::verify(&*backend, &trusted(&app)).await.expect("verify");
    assert_eq!(report.problem, None);
    assert_eq!(report.entries, 5);
    assert!(report.checkpoints_verified >= 1);
    // The database itself refuses to change or remove an entry.
    for statement in ["UPDATE audit_log SET actor = 'eve' WHERE seq = 1", "DELETE FROM audit_log WHERE seq = 1"] {
        let refused = raw(&app, statement).await;
        assert!(refused.is_err_and(|error| error.contains("append-only")), "{statement}");
    }
}

/// Runs one statement on the server's database, as someone with database access would.
async fn raw(app: &TestApp, statement: &str) -> Result<(), String> {
    if app.database_url.starts_with("sqlite") {
        let path = app.database_url.trim_start_matches("sqlite://").to_owned();
        let statement = statement.to_owned();
        tokio::task::spawn_blocking(move || {
            let connection = rusqlite::Connection::open(path).map_err(|error| error.to_string())?;
            connection.execute_batch(&statement).map_err(|error| error.to_string())
        })
        .await
        .expect("join")
    } else {
        let pool = sqlx::PgPool::connect(&app.database_url).await.map_err(|error| error.to_string())?;
        let outcome = sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned())).execute(&pool).await;
        pool.close().await;
        outcome.map(drop).map_err(|error| error.to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_audited_with_actor_request_and_digests_sqlite() {
    records_writes(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_audited_with_actor_request_and_digests_postgres() {
    records_writes(Backend::Postgres).await;
}

/// A copy of the server's (intact, checkpointed) SQLite database with its triggers dropped, tampered
/// by `statements`, verified.
async fn tampered(app: &TestApp, dir: &Path, case: &str, statements: &str) -> Option<String> {
    let copy = dir.join(format!("{case}.db"));
    let source = app.database_url.trim_start_matches("sqlite://").to_owned();
    let (target, statements) = (copy.clone(), statements.to_owned());
    tokio::task::spawn_blocking(move || {
        let connection = rusqlite::Connection::open(source).expect("open");
        connection.execute("VACUUM INTO ?1", [target.display().to_string()]).expect("copy");
        let copy = rusqlite::Connection::open(&target).expect("open copy");
        copy.execute_batch(
            "DROP TRIGGER audit_log_append_only_update; DROP TRIGGER audit_log_append_only_delete; \
             DROP TRIGGER audit_checkpoint_append_only_delete;",
        )
        .expect("drop triggers");
        copy.execute_batch(&statements).expect("tamper");
    })
    .await
    .expect("join");
    let backend = modelcat::store::connect(&format!("sqlite://{}", copy.display())).await.expect("copy");
    verify::verify(&*backend, &trusted(app)).await.expect("verify").problem
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_the_first_edited_deleted_reordered_truncated_or_rechained_entry() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("sqlite");
    write_some(&app).await;
    let head = settled(&app).await;
    assert_eq!(head, 5);
    let dir = tempfile::tempdir().expect("temp dir");
    assert_eq!(tampered(&app, dir.path(), "intact", "SELECT 1").await, None);

    let edited = tampered(&app, dir.path(), "edit", "UPDATE audit_log SET actor = 'eve' WHERE seq = 3").await;
    assert_eq!(edited.as_deref(), Some("entry 3 was altered (its content does not match its hash)"));

    let deleted = tampered(&app, dir.path(), "delete", "DELETE FROM audit_log WHERE seq = 3").await;
    assert_eq!(deleted.as_deref(), Some("entry 3 is missing (deleted, or the log was reordered)"));

    let swap = "UPDATE audit_log SET seq = -2 WHERE seq = 2; UPDATE audit_log SET seq = 2 WHERE seq = 3; \
                UPDATE audit_log SET seq = 3 WHERE seq = -2;";
    let reordered = tampered(&app, dir.path(), "reorder", swap).await.expect("caught");
    assert!(reordered.starts_with("entry 2 "), "{reordered}");

    let truncated = tampered(&app, dir.path(), "truncate", "DELETE FROM audit_log WHERE seq = 5").await;
    assert_eq!(
        truncated.as_deref(),
        Some("the log ends at entry 4, but a signed checkpoint covers entry 5 (entries were removed from its end)")
    );

    // An attacker edits entry 2 and recomputes every hash after it: only the signed checkpoint knows.
    let mut rechain = String::from("UPDATE audit_log SET actor = 'eve' WHERE seq = 2;");
    let backend = modelcat::store::connect(&app.database_url).await.expect("store");
    let entries = modelcat::store::audit::chain_after(&*backend, 0, 100).await.expect("chain");
    let mut previous = entries[0].0.hash.clone();
    for (stored, _) in entries.iter().skip(1) {
        let mut entry = stored.entry.clone();
        if entry.seq == 2 {
            entry.actor = "eve".into();
        }
        let hash = modelcat::store::audit::hash(&previous, &entry);
        rechain.push_str(&format!(
            "UPDATE audit_log SET prev_hash = '{previous}', hash = '{hash}' WHERE seq = {};",
            entry.seq
        ));
        previous = hash;
    }
    // (The first checkpoint at or after entry 2 catches it: the last one, at 5, or an earlier one.)
    let rechained = tampered(&app, dir.path(), "rechain", &rechain).await.expect("caught");
    assert!(rechained.ends_with("does not match its signed checkpoint (the log was rewritten)"), "{rechained}");

    // The command line says the same, and exits non-zero.
    let verify = |database: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_modelcat"))
            .args(["audit", "verify", "--database-url", database, "--data-dir"])
            .arg(&app.data_dir)
            .output()
            .expect("runs")
    };
    let intact = verify(&app.database_url);
    assert!(intact.status.success(), "{}", String::from_utf8_lossy(&intact.stderr));
    assert!(String::from_utf8_lossy(&intact.stdout).contains("audit log intact: 5 entries"));
    let broken = verify(&format!("sqlite://{}", dir.path().join("edit.db").display()));
    assert!(!broken.status.success());
    assert!(String::from_utf8_lossy(&broken.stderr).contains("entry 3 was altered"));
}

/// Retention removes old entries up to a signed checkpoint and records it; verify accepts that and
/// catches entries removed any other way. On both backends (the database's triggers allow only the
/// prune's deletes).
async fn retention_prunes_and_verify_follows(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    write_some(&app).await;
    let head = settled(&app).await;
    let store = modelcat::store::connect(&app.database_url).await.expect("store");
    let now = modelcat::store::now_millis();
    assert_eq!(modelcat::store::audit::prune(&*store, now - 3_600_000).await.expect("prune"), None, "nothing is old");
    let pruned = modelcat::store::audit::prune(&*store, now + 1).await.expect("prune").expect("pruned");
    assert_eq!((pruned.through, pruned.entries), (head, head as u64));
    assert_eq!(modelcat::store::audit::prune(&*store, now + 1).await.expect("prune"), None, "the anchor stays");
    // The database still refuses other deletes.
    let head_after = settled(&app).await;
    let refused = raw(&app, &format!("DELETE FROM audit_log WHERE seq = {head_after}")).await;
    assert!(refused.is_err(), "entries past the horizon cannot be deleted");

    let report = verify::verify(&*store, &trusted(&app)).await.expect("verify");
    assert_eq!(report.problem, None, "{report:?}");
    assert_eq!(report.pruned_through, head);
    assert_eq!(report.entries, head_after - head);
    let listed = audit(&app, "?action=audit.prune").await;
    assert_eq!(listed["items"][0]["actor"], "system", "{listed}");
    assert_eq!(listed["items"][0]["detail"], modelcat::store::audit::prune_detail(head, head as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_to_a_signed_checkpoint_and_verify_follows_sqlite() {
    retention_prunes_and_verify_follows(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_to_a_signed_checkpoint_and_verify_follows_postgres() {
    retention_prunes_and_verify_follows(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_catches_entries_removed_without_a_recorded_prune() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("sqlite");
    write_some(&app).await;
    settled(&app).await;
    let dir = tempfile::tempdir().expect("temp dir");
    // Someone who can write the database moves the horizon to a checkpoint and removes what is before it.
    let forged = "INSERT INTO audit_horizon (seq, hash, at) SELECT seq, hash, 0 FROM audit_checkpoint \
                  WHERE seq = (SELECT MAX(seq) FROM audit_checkpoint); \
                  DELETE FROM audit_log WHERE seq <= (SELECT MAX(seq) FROM audit_horizon);";
    let problem = tampered(&app, dir.path(), "forged-prune", forged).await.expect("caught");
    assert!(problem.ends_with("were removed without an audit.prune entry recording it"), "{problem}");
    // Or removes the head of the log with no horizon at all.
    let cut = tampered(&app, dir.path(), "cut", "DELETE FROM audit_log WHERE seq <= 2").await;
    assert_eq!(cut.as_deref(), Some("entry 1 is missing (deleted, or the log was reordered)"));
}
