//! Governance over HTTP, on both backends: a version's lifecycle from draft to retired with three users
//! (a submitter and two reviewers), the default policies' refusals, reviews, evaluations, signatures,
//! aliases, what the Kubeflow API may no longer do, the audit entries and outbox events every change
//! writes; in `policies`, stored Cedar policy versions and dry runs; and, in `properties`, random
//! sequences of transitions and reviews checked against a reference model.

use std::collections::BTreeMap;

use modelcat::api::registry::BASE_PATH;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use modelcat::governance::signatures::{self, Resource, TrustedKey};

use crate::helpers::{Backend, Reply, TestApp, authorized_client, eventually, reply};

mod deployments;
mod policies;
mod properties;

const GOVERNANCE: &str = "/api/governance/v1";

/// A user: a token's client and its subject.
struct User {
    client: reqwest::Client,
    subject: String,
}

async fn user(app: &TestApp, name: &str, role: &str) -> User {
    let created = app.call(Method::POST, "/api/modelcat/v1/tokens", Some(json!({"name": name, "role": role}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    User { client: authorized_client(created.body["token"].as_str().expect("token")), subject: format!("token:{name}") }
}

async fn send(app: &TestApp, user: &User, method: Method, path: &str, body: Option<Value>) -> Reply {
    let mut request = user.client.request(method, format!("{}{path}", app.address));
    if let Some(body) = body {
        request = request.json(&body);
    }
    reply(request.send().await.expect("sent")).await
}

fn created(reply: Reply) -> String {
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body["id"].as_str().expect("id").to_owned()
}

/// Custom properties that make an artifact complete for submission.
fn complete_properties() -> Value {
    json!({
        "sha256": {"metadataType": "MetadataStringValue", "string_value": "ab".repeat(32)},
        "size": {"metadataType": "MetadataIntValue", "int_value": "1024"},
    })
}

async fn move_to(app: &TestApp, user: &User, version: &str, to: &str) -> Reply {
    let path = format!("{GOVERNANCE}/model_versions/{version}/transitions");
    send(app, user, Method::POST, &path, Some(json!({"to": to, "comment": format!("to {to}")}))).await
}

async fn review(app: &TestApp, user: &User, version: &str, decision: &str) -> Reply {
    let path = format!("{GOVERNANCE}/model_versions/{version}/reviews");
    send(app, user, Method::POST, &path, Some(json!({"decision": decision}))).await
}

fn expect(reply: &Reply, status: StatusCode, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.body);
}

/// Subscribes a catch-all webhook, so every change writes its event (to an address that never
/// resolves: the deliveries stay pending).
pub async fn subscribe_everything(app: &TestApp) {
    let body = json!({"url": "https://hooks.example.invalid/everything"});
    let created = app.call(Method::POST, "/api/modelcat/v1/webhooks", Some(body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
}

/// A trusted signing key and the server settings that trust it.
fn release_key() -> (ring::signature::EcdsaKeyPair, TrustedKey) {
    let (key, pem) = signatures::generate_key();
    (key, TrustedKey::from_pem("release", &pem).expect("a P-256 key"))
}

/// A suite that requires accuracy and toxicity of high-risk models.
async fn quality_suite(app: &TestApp) {
    let suite = json!({"description": "release quality", "metrics": [
        {"name": "accuracy", "category": "task", "direction": "higher_is_better",
         "thresholds": {"medium": 0.8, "high": 0.9}},
        {"name": "toxicity", "category": "safety", "direction": "lower_is_better", "thresholds": {"high": 0.01}},
    ]});
    let stored = app.call(Method::PUT, &format!("{GOVERNANCE}/evaluation_suites/quality"), Some(suite)).await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.body);
}

fn evaluation(accuracy: f64, toxicity: f64) -> Value {
    json!({"suite": "quality", "datasetDigest": format!("sha256:{}", "cd".repeat(32)), "datasetName": "holdout-2026",
           "results": [{"metric": "accuracy", "value": accuracy}, {"metric": "toxicity", "value": toxicity}]})
}

async fn sign(app: &TestApp, user: &User, version: &str, bundle: Vec<u8>) -> Reply {
    let path = format!("{}{GOVERNANCE}/model_versions/{version}/signatures", app.address);
    reply(user.client.post(path).body(bundle).send().await.expect("sent")).await
}

fn rules(reply: &Reply) -> Vec<&str> {
    reply.body["refusals"].as_array().unwrap().iter().map(|refusal| refusal["rule"].as_str().unwrap()).collect()
}

fn details(reply: &Reply, index: usize) -> Vec<&str> {
    let details = reply.body["refusals"][index]["details"].as_array().unwrap();
    details.iter().map(|detail| detail.as_str().unwrap()).collect()
}

async fn lifecycle(backend: Backend) {
    let (key, trusted) = release_key();
    let Some(app) = TestApp::spawn_configured(backend, |settings| settings.trusted_keys = vec![trusted]).await else {
        return;
    };
    subscribe_everything(&app).await;
    quality_suite(&app).await;
    let sam = user(&app, "sam", "editor").await;
    let rita = user(&app, "rita", "editor").await;
    let alex = user(&app, "alex", "editor").await;
    let viewer = user(&app, "vic", "viewer").await;

    // Sam registers a model, a version and an artifact without digest, size or license.
    let registry = |path: &str| format!("{BASE_PATH}{path}");
    let body = json!({"name": "fraud-detector"});
    let model = created(send(&app, &sam, Method::POST, &registry("/registered_models"), Some(body)).await);
    let body = json!({"name": "v1", "registeredModelId": model});
    let version = created(send(&app, &sam, Method::POST, &registry("/model_versions"), Some(body)).await);
    let body = json!({"artifactType": "model-artifact", "name": "weights", "uri": "s3://models/fraud/v1"});
    let artifacts = registry(&format!("/model_versions/{version}/artifacts"));
    let artifact = created(send(&app, &sam, Method::POST, &artifacts, Some(body)).await);
    for reviewer in [&rita, &alex] {
        let path = format!("/api/modelcat/v1/registered_models/{model}/permissions/user:{}", reviewer.subject);
        expect(&send(&app, &sam, Method::PUT, &path, Some(json!({"level": "edit"}))).await, StatusCode::OK, "grant");
    }

    let status = send(&app, &viewer, Method::GET, &format!("{GOVERNANCE}/model_versions/{version}"), None).await;
    expect(&status, StatusCode::OK, "a viewer reads the lifecycle");
    assert_eq!(status.body["state"], "draft");
    assert_eq!(status.body["nextStates"], json!(["submitted", "retired"]));

    // Illegal moves are 409; a policy's refusal is 422 with every reason.
    let skipped = move_to(&app, &sam, &version, "production").await;
    expect(&skipped, StatusCode::CONFLICT, "draft to production");
    assert_eq!(skipped.body["code"], "conflict");
    assert!(skipped.body["message"].as_str().unwrap().contains("may move to submitted or retired only"));
    let refused = move_to(&app, &sam, &version, "submitted").await;
    expect(&refused, StatusCode::UNPROCESSABLE_ENTITY, "incomplete artifacts");
    assert_eq!(rules(&refused), ["artifacts-complete"]);
    let reasons = details(&refused, 0);
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons.iter().all(|reason| reason.contains("\"weights\"")), "{reasons:?}");
    let defaults = refused.body["policyVersion"].as_str().unwrap();
    assert!(defaults.starts_with("builtin-"), "{defaults}");
    let denied = move_to(&app, &viewer, &version, "submitted").await;
    expect(&denied, StatusCode::FORBIDDEN, "a viewer cannot submit");

    // With a digest, a size and the model's license, the version is submitted.
    let body = json!({"customProperties": complete_properties()});
    let patched = send(&app, &sam, Method::PATCH, &registry(&format!("/artifacts/{artifact}")), Some(body)).await;
    expect(&patched, StatusCode::OK, "artifact properties");
    let body = json!({"license": "apache-2.0"});
    let patched = send(&app, &sam, Method::PATCH, &registry(&format!("/registered_models/{model}")), Some(body)).await;
    expect(&patched, StatusCode::OK, "model license");
    let submitted = move_to(&app, &sam, &version, "submitted").await;
    expect(&submitted, StatusCode::OK, "submission");
    assert_eq!(submitted.body["submittedBy"], sam.subject.as_str());
    assert_eq!(submitted.body["review"]["stage"], "staging");

    // From submission on, the Kubeflow API cannot change what is reviewed.
    let body = json!({"uri": "s3://elsewhere"});
    let frozen = send(&app, &sam, Method::PATCH, &registry(&format!("/artifacts/{artifact}")), Some(body)).await;
    expect(&frozen, StatusCode::CONFLICT, "frozen artifact");
    assert!(frozen.body["message"].as_str().unwrap().contains("frozen"), "{}", frozen.body);
    let body = json!({"artifactType": "model-artifact", "name": "extra", "uri": "s3://x"});
    expect(&send(&app, &sam, Method::POST, &artifacts, Some(body)).await, StatusCode::CONFLICT, "new artifact");
    let path = registry(&format!("/model_versions/{version}"));
    expect(&send(&app, &sam, Method::DELETE, &path, None).await, StatusCode::CONFLICT, "version delete");
    let path = registry(&format!("/registered_models/{model}"));
    expect(&send(&app, &sam, Method::DELETE, &path, None).await, StatusCode::CONFLICT, "model delete");
    let governed = send(&app, &sam, Method::PATCH, &path, Some(json!({"riskTier": "low"}))).await;
    expect(&governed, StatusCode::BAD_REQUEST, "a governance field through Kubeflow");
    assert!(governed.body["message"].as_str().unwrap().contains("/api/governance/v1"), "{}", governed.body);

    // Nobody reviews their own submission; high risk needs two approvers; one review per round.
    expect(&review(&app, &sam, &version, "approve").await, StatusCode::FORBIDDEN, "self-approval");
    let tier = send(
        &app,
        &rita,
        Method::PATCH,
        &format!("{GOVERNANCE}/registered_models/{model}"),
        Some(json!({"riskTier": "high"})),
    )
    .await;
    expect(&tier, StatusCode::FORBIDDEN, "fields need manage");
    let body = json!({"riskTier": "high", "owners": ["user:token:sam"], "group": "payments", "tags": ["pii"]});
    let tier = send(&app, &sam, Method::PATCH, &format!("{GOVERNANCE}/registered_models/{model}"), Some(body)).await;
    expect(&tier, StatusCode::OK, "risk tier");
    assert_eq!(tier.body["riskTier"], "high");
    assert_eq!(tier.body["updatedBy"], sam.subject.as_str());
    expect(&review(&app, &rita, &version, "approve").await, StatusCode::OK, "first approval");
    expect(&review(&app, &rita, &version, "approve").await, StatusCode::CONFLICT, "second review in a round");
    let short = move_to(&app, &sam, &version, "approved_staging").await;
    expect(&short, StatusCode::UNPROCESSABLE_ENTITY, "one approval of two");
    assert_eq!(rules(&short), ["high-risk-two-approvers"]);
    let round = send(&app, &sam, Method::GET, &format!("{GOVERNANCE}/model_versions/{version}"), None).await;
    assert_eq!(round.body["review"]["approvalsNeeded"], 2, "the policies need two approvers of a high-risk model");
    expect(&review(&app, &alex, &version, "approve").await, StatusCode::OK, "second approval");
    expect(&move_to(&app, &sam, &version, "approved_staging").await, StatusCode::OK, "approved for staging");
    expect(&move_to(&app, &sam, &version, "staging").await, StatusCode::OK, "staging");

    // A reviewer sends it back; the next round starts with no approvals.
    let back = review(&app, &rita, &version, "request_changes").await;
    expect(&back, StatusCode::OK, "request changes");
    assert_eq!(back.body["state"], "changes_requested");
    let path = registry(&format!("/artifacts/{artifact}"));
    let reopened = send(&app, &sam, Method::PATCH, &path, Some(json!({"description": "retrained"}))).await;
    expect(&reopened, StatusCode::OK, "artifacts reopen");
    expect(&move_to(&app, &sam, &version, "draft").await, StatusCode::OK, "back to draft");
    let resubmitted = move_to(&app, &sam, &version, "submitted").await;
    assert_eq!(resubmitted.body["review"]["approvals"], json!([]), "approvals belong to their round");
    for reviewer in [&rita, &alex] {
        expect(&review(&app, reviewer, &version, "approve").await, StatusCode::OK, "staging approval");
    }
    expect(&move_to(&app, &sam, &version, "approved_staging").await, StatusCode::OK, "approved_staging");
    expect(&move_to(&app, &sam, &version, "staging").await, StatusCode::OK, "staging again");
    for reviewer in [&rita, &alex] {
        expect(&review(&app, reviewer, &version, "approve").await, StatusCode::OK, "production approval");
    }
    expect(&move_to(&app, &sam, &version, "approved_prod").await, StatusCode::OK, "approved_prod");

    // Production needs every evaluation the high tier requires, passing, and a verified signature.
    let refused = move_to(&app, &sam, &version, "production").await;
    expect(&refused, StatusCode::UNPROCESSABLE_ENTITY, "production without evaluations or signature");
    assert_eq!(rules(&refused), ["evaluations-passing", "signature-verified"]);
    assert_eq!(details(&refused, 0), ["no result for quality/accuracy", "no result for quality/toxicity"]);
    assert_eq!(details(&refused, 1), ["the version has no signature bundle"]);
    let evaluations = format!("{GOVERNANCE}/model_versions/{version}/evaluations");
    let mut claimed = evaluation(0.95, 0.0);
    claimed["results"][0]["passed"] = json!(true);
    let claimed = send(&app, &sam, Method::POST, &evaluations, Some(claimed)).await;
    expect(&claimed, StatusCode::BAD_REQUEST, "a client's own verdict");
    let recorded = send(&app, &sam, Method::POST, &evaluations, Some(evaluation(0.95, 0.05))).await;
    expect(&recorded, StatusCode::CREATED, "evaluation");
    let verdicts: Vec<_> =
        recorded.body["items"].as_array().unwrap().iter().map(|item| item["passed"].clone()).collect();
    assert_eq!(verdicts, [json!(true), json!(false)], "computed against the high tier's thresholds");
    assert_eq!(recorded.body["items"][1]["threshold"], 0.01);
    let (stranger, _) = signatures::generate_key();
    let weights = || vec![Resource { name: "weights.bin".to_owned(), digest: "ab".repeat(32) }];
    let untrusted = sign(&app, &sam, &version, signatures::sign(&stranger, &weights())).await;
    expect(&untrusted, StatusCode::CREATED, "an untrusted signature is recorded");
    assert_eq!(untrusted.body["status"], "failed");
    assert!(untrusted.body["reason"].as_str().unwrap().contains("trusted key"), "{}", untrusted.body);
    let other = vec![Resource { name: "other.bin".to_owned(), digest: "ef".repeat(32) }];
    let elsewhere = sign(&app, &sam, &version, signatures::sign(&key, &other)).await;
    assert_eq!(elsewhere.body["status"], "verified", "{}", elsewhere.body);
    let garbage = sign(&app, &sam, &version, b"{\"mediaType\": \"x\"}".to_vec()).await;
    expect(&garbage, StatusCode::BAD_REQUEST, "not a bundle");
    let dry = send(
        &app,
        &viewer,
        Method::POST,
        &format!("{GOVERNANCE}/model_versions/{version}/policy_check"),
        Some(json!({"to": "production"})),
    )
    .await;
    expect(&dry, StatusCode::OK, "a dry run");
    assert_eq!((dry.body["legal"].clone(), dry.body["allowed"].clone()), (json!(true), json!(false)));
    assert_eq!(dry.body["facts"]["context"]["failed_evaluations"], 1);
    assert_eq!(
        details(&dry, 0),
        ["quality/toxicity is 0.05, above the maximum 0.01 for a high-risk model"],
        "{}",
        dry.body
    );
    let signature_problems = details(&dry, 1);
    assert!(signature_problems[0].contains("failed verification"), "{signature_problems:?}");
    assert!(signature_problems[1].contains("does not sign the digest of model artifact \"weights\""));
    let fixed = send(&app, &sam, Method::POST, &evaluations, Some(evaluation(0.95, 0.004))).await;
    expect(&fixed, StatusCode::CREATED, "fixed evaluation");
    let signed = sign(&app, &sam, &version, signatures::sign(&key, &weights())).await;
    assert_eq!((signed.body["status"].as_str(), signed.body["keyId"].as_str()), (Some("verified"), Some("release")));
    let report = send(&app, &viewer, Method::GET, &evaluations, None).await;
    assert_eq!((report.body["required"].clone(), report.body["failed"].clone()), (json!(2), json!([])));
    assert_eq!(report.body["results"].as_array().unwrap().len(), 4, "every result is kept");
    expect(&move_to(&app, &sam, &version, "production").await, StatusCode::OK, "production");

    // The evidence bundle: deterministic, signed by the server, verified offline with its public key.
    let evidence = || async {
        let url = format!("{}{GOVERNANCE}/model_versions/{version}/evidence", app.address);
        let response = viewer.client.get(url).send().await.expect("evidence");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "application/x-tar");
        response.bytes().await.expect("bundle").to_vec()
    };
    let bundle = evidence().await;
    assert_eq!(bundle, evidence().await, "the same record exports the same bytes");
    let key = send(&app, &viewer, Method::GET, &format!("{GOVERNANCE}/evidence_key"), None).await;
    let public = modelcat::hex::decode(key.body["publicKey"].as_str().unwrap()).unwrap();
    let verified = modelcat::governance::evidence::verify(&bundle, &[public]).expect("a valid bundle");
    let names: Vec<&str> = verified.manifest.files.iter().map(|file| file.name.as_str()).collect();
    let policy_file = format!("policies/{defaults}.cedar");
    let expected = [
        "artifacts.json",
        "audit.json",
        "deployments.json",
        "evaluations.json",
        "model-card.json",
        policy_file.as_str(),
        "policy-decisions.json",
        "reviews.json",
        "signatures.json",
        "transitions.json",
    ];
    assert_eq!(names, expected);

    // Aliases point at versions; each change is recorded; a retiring version may not hold one.
    let body = json!({"name": "v2", "registeredModelId": model});
    let second = created(send(&app, &sam, Method::POST, &registry("/model_versions"), Some(body)).await);
    let alias = |name: &str| format!("{GOVERNANCE}/registered_models/{model}/aliases/{name}");
    for (name, target) in [("champion", &version), ("champion", &version), ("challenger", &second)] {
        let set = send(&app, &sam, Method::PUT, &alias(name), Some(json!({"modelVersionId": target}))).await;
        expect(&set, StatusCode::OK, "alias");
    }
    let bad = send(&app, &sam, Method::PUT, &alias("Champion!"), Some(json!({"modelVersionId": version}))).await;
    expect(&bad, StatusCode::BAD_REQUEST, "alias name");
    let listed =
        send(&app, &viewer, Method::GET, &format!("{GOVERNANCE}/registered_models/{model}/aliases"), None).await;
    assert_eq!(listed.body["aliases"].as_array().unwrap().len(), 2);
    assert_eq!(listed.body["history"].as_array().unwrap().len(), 2, "setting an alias again records nothing");
    expect(&move_to(&app, &sam, &version, "deprecated").await, StatusCode::OK, "deprecated");
    let held = move_to(&app, &sam, &version, "retired").await;
    expect(&held, StatusCode::CONFLICT, "retiring the champion");
    assert!(held.body["message"].as_str().unwrap().contains("\"champion\""), "{}", held.body);
    let moved = send(&app, &sam, Method::PUT, &alias("champion"), Some(json!({"modelVersionId": second}))).await;
    assert_eq!(moved.body["history"][2]["previousVersionId"], version.as_str());
    let retired = move_to(&app, &sam, &version, "retired").await;
    expect(&retired, StatusCode::OK, "retired");
    assert_eq!(retired.body["nextStates"], json!([]));

    // Retiring archives the version for Kubeflow, for good.
    let path = registry(&format!("/model_versions/{version}"));
    assert_eq!(send(&app, &sam, Method::GET, &path, None).await.body["state"], "ARCHIVED");
    let revived = send(&app, &sam, Method::PATCH, &path, Some(json!({"state": "LIVE"}))).await;
    expect(&revived, StatusCode::CONFLICT, "un-archiving a retired version");

    // The history, the reviews, one audit entry per change.
    let history =
        send(&app, &viewer, Method::GET, &format!("{GOVERNANCE}/model_versions/{version}/transitions"), None).await;
    let moves: Vec<String> = history.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| format!("{}>{}", item["from"].as_str().unwrap(), item["to"].as_str().unwrap()))
        .collect();
    let expected = "draft>submitted submitted>approved_staging approved_staging>staging staging>changes_requested \
                    changes_requested>draft draft>submitted submitted>approved_staging approved_staging>staging \
                    staging>approved_prod approved_prod>production production>deprecated deprecated>retired";
    assert_eq!(moves.join(" "), expected);
    let reviews =
        send(&app, &viewer, Method::GET, &format!("{GOVERNANCE}/model_versions/{version}/reviews"), None).await;
    assert_eq!(reviews.body["items"].as_array().unwrap().len(), 7);
    let entity = format!("model_version/{version}");
    let audited = eventually(std::time::Duration::from_secs(10), || async {
        let query = [("entity", entity.as_str()), ("pageSize", "1000")];
        let page = app.client.get(format!("{}/api/modelcat/v1/audit", app.address)).query(&query).send().await.ok()?;
        let body: Value = page.json().await.ok()?;
        let items = body["items"].as_array()?.clone();
        let governance =
            items.iter().filter(|item| item["action"].as_str().unwrap_or("").starts_with("lifecycle.")).count();
        (governance == 18).then_some(items)
    })
    .await
    .expect("18 lifecycle entries in the audit log");
    let transitions = audited.iter().filter(|item| item["action"] == "lifecycle.transition").count();
    assert_eq!(transitions, 11, "one entry per transition (the 12th came with a review)");
    let count = |action: &str| audited.iter().filter(|item| item["action"] == action).count();
    assert_eq!((count("evaluation.record"), count("signature.record")), (2, 3));
    let production = &history.body["items"].as_array().unwrap()[9];
    assert_eq!((production["to"].as_str(), production["policyVersion"].as_str()), (Some("production"), Some(defaults)));
    let events = outbox_counts(&app).await;
    let expected: BTreeMap<String, i64> = [
        ("model_version.transitioned", 11),
        ("model_version.approved", 6),
        ("model_version.denied", 1),
        ("registered_model.governance_updated", 1),
        ("registered_model.alias_changed", 3),
        ("registered_model.created", 1),
        ("registered_model.updated", 1),
        ("model_version.created", 2),
        ("model_version.evaluation_failed", 1),
        ("model_version.evaluation_recorded", 1),
        ("model_version.signature_failed", 1),
        ("model_version.signature_verified", 2),
    ]
    .into_iter()
    .map(|(event_type, count)| (event_type.to_owned(), count))
    .collect();
    assert_eq!(events, expected, "one event per change (setting an alias again changes nothing)");
}

/// The number of events in the outbox by type, read from the server's store.
pub async fn outbox_counts(app: &TestApp) -> BTreeMap<String, i64> {
    use modelcat::store::sql::{Col, Sql};
    let backend = modelcat::store::connect(&app.database_url).await.expect("store");
    let mut sql = Sql::new(backend.dialect());
    sql.push("SELECT event_type, COUNT(*) FROM event_outbox GROUP BY event_type");
    let rows = backend.read(&sql, &[Col::Text, Col::Int]).await.expect("outbox");
    rows.into_iter()
        .map(|row| {
            let mut values = row.into_iter();
            (
                values.next().and_then(|value| value.into_text()).unwrap_or_default(),
                values.next().and_then(|value| value.as_int()).unwrap_or(0),
            )
        })
        .collect()
}

#[tokio::test]
async fn lifecycle_on_sqlite() {
    lifecycle(Backend::Sqlite).await;
}

#[tokio::test]
async fn lifecycle_on_postgres() {
    lifecycle(Backend::Postgres).await;
}

#[tokio::test]
async fn bad_requests_get_precise_errors() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    subscribe_everything(&app).await;
    let model = app.create("/registered_models", json!({"name": "m"})).await;
    let version = app.create("/model_versions", json!({"name": "v", "registeredModelId": model})).await;
    let call = |method: Method, path: String, body: Option<Value>| {
        let app = &app;
        async move { app.call(method, &format!("{GOVERNANCE}{path}"), body).await }
    };
    let cases = [
        (
            Method::POST,
            format!("/model_versions/{version}/transitions"),
            Some(json!({"to": "live"})),
            StatusCode::BAD_REQUEST,
            "unknown lifecycle state",
        ),
        (
            Method::POST,
            format!("/model_versions/{version}/transitions"),
            Some(json!({"state": "submitted"})),
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        (
            Method::POST,
            format!("/model_versions/{version}/transitions"),
            Some(json!({"to": "submitted", "comment": "x".repeat(5000)})),
            StatusCode::BAD_REQUEST,
            "at most 4096",
        ),
        (
            Method::POST,
            format!("/model_versions/{version}/reviews"),
            Some(json!({"decision": "approve"})),
            StatusCode::CONFLICT,
            "only submitted or staging",
        ),
        (
            Method::POST,
            format!("/model_versions/{version}/reviews"),
            Some(json!({"decision": "maybe"})),
            StatusCode::BAD_REQUEST,
            "unknown variant",
        ),
        (
            Method::POST,
            "/model_versions/999/transitions".to_owned(),
            Some(json!({"to": "submitted"})),
            StatusCode::NOT_FOUND,
            "model version 999 not found",
        ),
        (Method::GET, "/model_versions/abc".to_owned(), None, StatusCode::BAD_REQUEST, "invalid id"),
        (
            Method::GET,
            "/registered_models/999".to_owned(),
            None,
            StatusCode::NOT_FOUND,
            "registered model 999 not found",
        ),
        (
            Method::PATCH,
            format!("/registered_models/{model}"),
            Some(json!({"riskTier": "extreme"})),
            StatusCode::BAD_REQUEST,
            "unknown variant",
        ),
        (
            Method::PATCH,
            format!("/registered_models/{model}"),
            Some(json!({"tags": [""]})),
            StatusCode::BAD_REQUEST,
            "tags: at most 64",
        ),
        (
            Method::PUT,
            format!("/registered_models/{model}/aliases/champion"),
            Some(json!({"modelVersionId": "999"})),
            StatusCode::NOT_FOUND,
            "model version 999",
        ),
        (
            Method::DELETE,
            format!("/registered_models/{model}/aliases/champion"),
            None,
            StatusCode::NOT_FOUND,
            "has no alias",
        ),
        (Method::GET, "/nothing/here".to_owned(), None, StatusCode::NOT_FOUND, "no route"),
    ];
    for (method, path, body, status, message) in cases {
        let answer = call(method.clone(), path.clone(), body).await;
        assert_eq!(answer.status, status, "{method} {path}: {}", answer.body);
        assert!(answer.body["message"].as_str().unwrap_or("").contains(message), "{method} {path}: {}", answer.body);
    }
    let anonymous =
        reply(app.anonymous.get(format!("{}{GOVERNANCE}/model_versions/{version}", app.address)).send().await.unwrap())
            .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{}", anonymous.body);
    assert_eq!(anonymous.body["code"], "unauthorized", "the modelcat envelope: {}", anonymous.body);
    let events = outbox_counts(&app).await;
    assert_eq!(
        events.keys().collect::<Vec<_>>(),
        ["model_version.created", "registered_model.created"],
        "refused requests write no event"
    );
}
