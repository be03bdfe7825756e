//! Stored Cedar policies over HTTP: validated before they are accepted, versioned, in force at once on
//! every transition (which records the version that allowed it), tried on a version without effect, and
//! changed only by admins, with an audit entry.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{GOVERNANCE, complete_properties, expect, move_to, review, rules, user};
use crate::helpers::{Backend, TestApp, eventually};

/// The defaults, plus: models of the `finance` group need three approvers.
const FINANCE: &str = r#"
@id("allow-lifecycle")
permit (principal, action == Action::"transition", resource);

@id("finance-three-approvers")
@reason("finance models need three distinct approvers")
@explain("distinct_approvals")
forbid (principal, action == Action::"transition", resource)
when {
  resource.group == "finance" &&
  (context.to == "approved_staging" || context.to == "approved_prod") && context.distinct_approvals < 3
};
"#;

#[tokio::test]
async fn policies_are_validated_versioned_and_tried_without_effect() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    let sam = user(&app, "sam", "editor").await;
    let rita = user(&app, "rita", "editor").await;
    let policies = format!("{GOVERNANCE}/policies");

    let builtin = app.call(Method::GET, &policies, None).await;
    expect(&builtin, StatusCode::OK, "the defaults");
    let defaults = builtin.body["version"].as_str().unwrap().to_owned();
    assert!(defaults.starts_with("builtin-"), "{defaults}");
    assert!(builtin.body["policies"].as_str().unwrap().contains("@id(\"four-eyes\")"));
    let schema = app.call(Method::GET, &format!("{policies}/schema"), None).await;
    assert!(schema.body["schema"].as_str().unwrap().contains("distinct_approvals"));

    // Every problem of a bad set is listed; nothing is stored.
    let bad = r#"@id("x") forbid (principal, action, resource) when { context.approvals > 1 };"#;
    let refused = app.call(Method::PUT, &policies, Some(json!({"policies": bad}))).await;
    expect(&refused, StatusCode::BAD_REQUEST, "an invalid policy set");
    let problems = refused.body["problems"].as_array().unwrap();
    assert!(problems.iter().any(|problem| problem.as_str().unwrap().contains("@reason")), "{problems:?}");
    assert!(problems.iter().any(|problem| problem.as_str().unwrap().contains("approvals")), "{problems:?}");
    let versions = app.call(Method::GET, &format!("{policies}/versions"), None).await;
    assert_eq!(versions.body["items"], json!([]));
    let body = json!({"policies": FINANCE});
    let by_editor = super::send(&app, &sam, Method::PUT, &policies, Some(body)).await;
    expect(&by_editor, StatusCode::FORBIDDEN, "an editor changes no policy");

    // A model of the finance group, submitted under the defaults.
    let model = app.create("/registered_models", json!({"name": "ledger", "license": "mit"})).await;
    let path = format!("/api/modelcat/v1/registered_models/{model}/permissions/user:{}", sam.subject);
    expect(&app.call(Method::PUT, &path, Some(json!({"level": "manage"}))).await, StatusCode::OK, "grant sam");
    let path = format!("/api/modelcat/v1/registered_models/{model}/permissions/user:{}", rita.subject);
    expect(&app.call(Method::PUT, &path, Some(json!({"level": "edit"}))).await, StatusCode::OK, "grant rita");
    let fields = format!("{GOVERNANCE}/registered_models/{model}");
    let grouped = super::send(&app, &sam, Method::PATCH, &fields, Some(json!({"group": "finance"}))).await;
    expect(&grouped, StatusCode::OK, "group");
    let version = app.create("/model_versions", json!({"name": "v1", "registeredModelId": model})).await;
    let artifact = json!({"artifactType": "model-artifact", "name": "weights", "uri": "s3://ledger/v1",
                          "customProperties": complete_properties()});
    app.create(&format!("/model_versions/{version}/artifacts"), artifact).await;
    expect(&move_to(&app, &sam, &version, "submitted").await, StatusCode::OK, "submitted");
    expect(&review(&app, &rita, &version, "approve").await, StatusCode::OK, "one approval");

    // A draft set is tried on the version without effect.
    let check = format!("{GOVERNANCE}/model_versions/{version}/policy_check");
    let tried = app.call(Method::POST, &check, Some(json!({"to": "approved_staging", "policies": FINANCE}))).await;
    expect(&tried, StatusCode::OK, "a dry run of a draft");
    assert_eq!((tried.body["allowed"].clone(), tried.body["policyVersion"].clone()), (json!(false), json!("draft")));
    assert_eq!(tried.body["refusals"][0]["rule"], "finance-three-approvers");
    let in_force = app.call(Method::POST, &check, Some(json!({"to": "approved_staging"}))).await;
    assert_eq!(
        (in_force.body["allowed"].clone(), in_force.body["policyVersion"].clone()),
        (json!(true), json!(defaults))
    );
    let broken = app.call(Method::POST, &check, Some(json!({"to": "approved_staging", "policies": "permit ("}))).await;
    expect(&broken, StatusCode::BAD_REQUEST, "a draft that does not parse");
    let deep = format!(
        "@id(\"x\") permit (principal, action, resource) when {{ {}true{} }};",
        "(".repeat(5000),
        ")".repeat(5000)
    );
    let deep = app.call(Method::POST, &check, Some(json!({"to": "approved_staging", "policies": deep}))).await;
    expect(&deep, StatusCode::BAD_REQUEST, "a draft nested too deep for the parser");

    // Stored, it is in force at once.
    let stored = app.call(Method::PUT, &policies, Some(json!({"policies": FINANCE, "comment": "finance rule"}))).await;
    expect(&stored, StatusCode::OK, "store v1");
    assert_eq!(stored.body["version"], "v1");
    assert!(stored.body["createdBy"].is_string() && stored.body["createdAt"].is_string(), "{}", stored.body);
    let short = move_to(&app, &sam, &version, "approved_staging").await;
    expect(&short, StatusCode::UNPROCESSABLE_ENTITY, "two approvals short");
    assert_eq!((rules(&short), short.body["policyVersion"].as_str()), (vec!["finance-three-approvers"], Some("v1")));
    let status = app.call(Method::GET, &format!("{GOVERNANCE}/model_versions/{version}"), None).await;
    assert_eq!(status.body["review"]["approvalsNeeded"], 3);

    // A second version replaces it; both stay readable.
    let lenient = "@id(\"allow-all\") permit (principal, action, resource);";
    let second = app.call(Method::PUT, &policies, Some(json!({"policies": lenient}))).await;
    assert_eq!(second.body["version"], "v2");
    let listed = app.call(Method::GET, &format!("{policies}/versions"), None).await;
    let listed: Vec<_> = listed.body["items"].as_array().unwrap().iter().map(|item| item["version"].clone()).collect();
    assert_eq!(listed, [json!("v2"), json!("v1")]);
    let first = app.call(Method::GET, &format!("{policies}/versions/v1"), None).await;
    assert_eq!(first.body["policies"], FINANCE);
    expect(&app.call(Method::GET, &format!("{policies}/versions/v9"), None).await, StatusCode::NOT_FOUND, "v9");
    expect(&app.call(Method::GET, &format!("{policies}/versions/x"), None).await, StatusCode::BAD_REQUEST, "x");
    let moved = move_to(&app, &sam, &version, "approved_staging").await;
    expect(&moved, StatusCode::OK, "allowed under v2");
    let history = app.call(Method::GET, &format!("{GOVERNANCE}/model_versions/{version}/transitions"), None).await;
    let versions: Vec<_> =
        history.body["items"].as_array().unwrap().iter().map(|item| item["policyVersion"].clone()).collect();
    assert_eq!(versions, [json!(defaults), json!("v2")], "each transition names the policies that allowed it");

    let audited = eventually(std::time::Duration::from_secs(10), || async {
        let audit = app.call(Method::GET, "/api/modelcat/v1/audit?entity=governance/policies", None).await;
        let items = audit.body["items"].as_array()?.clone();
        (items.len() == 2).then_some(items)
    })
    .await
    .expect("two policy changes in the audit log");
    let details: Vec<_> = audited.iter().map(|item| item["detail"].as_str().unwrap_or_default()).collect();
    assert!(details.contains(&"v1") && details.contains(&"v2"), "{details:?}");
}
