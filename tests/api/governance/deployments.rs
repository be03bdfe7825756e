//! Deployments over HTTP, on both backends: splits decided by the default deploy policies, projected onto
//! Kubeflow inference services, rolled back to the last good split, with their history and events; a
//! version that takes traffic cannot be retired.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{GOVERNANCE, complete_properties, expect, move_to, outbox_counts, rules, send, subscribe_everything, user};
use crate::helpers::{Backend, TestApp};

/// The default deploy policies, with lifecycle moves allowed without reviews (to reach production fast).
fn policies() -> String {
    let deploy = modelcat::governance::policy::DEFAULT_POLICIES;
    let deploy = &deploy[deploy.find("@id(\"allow-deployments\")").expect("the default deploy policies")..];
    format!("@id(\"allow-lifecycle\") permit (principal, action == Action::\"transition\", resource);\n{deploy}")
}

async fn deployments(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    subscribe_everything(&app).await;
    let stored = app.call(Method::PUT, &format!("{GOVERNANCE}/policies"), Some(json!({"policies": policies()}))).await;
    expect(&stored, StatusCode::OK, "policies");
    let sam = user(&app, "sam", "editor").await;
    let viewer = user(&app, "vic", "viewer").await;
    let model = app.create("/registered_models", json!({"name": "ranker", "license": "mit"})).await;
    let grant = format!("/api/modelcat/v1/registered_models/{model}/permissions/user:{}", sam.subject);
    expect(&app.call(Method::PUT, &grant, Some(json!({"level": "edit"}))).await, StatusCode::OK, "grant");
    let mut versions = Vec::new();
    for (name, state) in [("v1", "production"), ("v2", "staging")] {
        let version = app.create("/model_versions", json!({"name": name, "registeredModelId": model})).await;
        let artifact = json!({"artifactType": "model-artifact", "name": "weights", "uri": format!("s3://r/{name}"),
                              "customProperties": complete_properties()});
        app.create(&format!("/model_versions/{version}/artifacts"), artifact).await;
        for to in ["submitted", "approved_staging", "staging", "approved_prod", "production"] {
            expect(&move_to(&app, &sam, &version, to).await, StatusCode::OK, to);
            if to == state {
                break;
            }
        }
        versions.push(version);
    }
    let (v1, v2) = (versions[0].as_str(), versions[1].as_str());
    let environment = app.create("/serving_environments", json!({"name": "prod-eu"})).await;
    let path = format!("{GOVERNANCE}/serving_environments/{environment}/deployments");
    let split = |splits: Value| json!({"registeredModelId": model, "splits": splits, "comment": "rollout"});

    let first =
        send(&app, &sam, Method::POST, &path, Some(split(json!([{"modelVersionId": v1, "weight": 100}])))).await;
    expect(&first, StatusCode::CREATED, "v1 takes everything");
    assert_eq!((first.body["kind"].as_str(), first.body["status"].as_str()), (Some("deploy"), Some("active")));
    let canary = json!([{"modelVersionId": v1, "weight": 90}, {"modelVersionId": v2, "weight": 10}]);
    let canary = send(&app, &sam, Method::POST, &path, Some(split(canary))).await;
    expect(&canary, StatusCode::CREATED, "a 90/10 canary of a staging version");
    let service = canary.body["splits"][1]["inferenceServiceId"].as_str().unwrap().to_owned();
    let projected = app.call(Method::GET, &format!("/api/model_registry/v1/inference_services/{service}"), None).await;
    assert_eq!(projected.body["name"], format!("modelcat-{model}-{v2}"));
    assert_eq!(projected.body["desiredState"], "DEPLOYED");
    assert_eq!(projected.body["modelVersionId"], v2);
    assert_eq!(projected.body["customProperties"]["traffic_weight"]["int_value"], "10");

    // The policies refuse a staging version more than a canary's share; the splits are checked.
    let greedy = json!([{"modelVersionId": v1, "weight": 70}, {"modelVersionId": v2, "weight": 30}]);
    let greedy = send(&app, &sam, Method::POST, &path, Some(split(greedy))).await;
    expect(&greedy, StatusCode::UNPROCESSABLE_ENTITY, "30% for a staging version");
    assert_eq!(rules(&greedy), ["serve-released-versions"]);
    assert_eq!(
        greedy.body["refusals"][0]["details"],
        json!([format!("model version {v2}: the version is staging and would take 30% of prod-eu")])
    );
    assert_eq!(greedy.body["policyVersion"], "v1");
    let over = json!([{"modelVersionId": v1, "weight": 90}, {"modelVersionId": v2, "weight": 20}]);
    let over = send(&app, &sam, Method::POST, &path, Some(split(over))).await;
    expect(&over, StatusCode::BAD_REQUEST, "weights over 100");
    assert!(over.body["message"].as_str().unwrap().contains("sum to 110, not 100"), "{}", over.body);
    let other = app.create("/registered_models", json!({"name": "other"})).await;
    let stranger = app.create("/model_versions", json!({"name": "x", "registeredModelId": other})).await;
    let foreign =
        send(&app, &sam, Method::POST, &path, Some(split(json!([{"modelVersionId": stranger, "weight": 100}]))));
    expect(&foreign.await, StatusCode::BAD_REQUEST, "a version of another model");
    let nowhere = format!("{GOVERNANCE}/serving_environments/999999/deployments");
    let nowhere = send(&app, &sam, Method::POST, &nowhere, Some(split(json!([{"modelVersionId": v1, "weight": 100}]))));
    expect(&nowhere.await, StatusCode::NOT_FOUND, "an unknown environment");
    let by_viewer =
        send(&app, &viewer, Method::POST, &path, Some(split(json!([{"modelVersionId": v1, "weight": 100}]))));
    expect(&by_viewer.await, StatusCode::FORBIDDEN, "a viewer deploys nothing");

    // A version that takes traffic cannot be retired.
    expect(&move_to(&app, &sam, v1, "deprecated").await, StatusCode::OK, "deprecated while serving");
    let retired = move_to(&app, &sam, v1, "retired").await;
    expect(&retired, StatusCode::CONFLICT, "retiring a serving version");
    assert!(retired.body["message"].as_str().unwrap().contains("90%"), "{}", retired.body);

    // A rollback returns to the last good split; a second one has nowhere to go.
    let rollback = format!("{GOVERNANCE}/serving_environments/{environment}/rollback");
    let back = send(&app, &sam, Method::POST, &rollback, Some(json!({"registeredModelId": model}))).await;
    expect(&back, StatusCode::CREATED, "rollback");
    assert_eq!(
        (back.body["kind"].as_str(), back.body["restores"].as_str()),
        (Some("rollback"), first.body["id"].as_str())
    );
    assert_eq!(
        back.body["splits"],
        json!([{"modelVersionId": v1, "weight": 100, "inferenceServiceId": first.body["splits"][0]["inferenceServiceId"]}])
    );
    let drained = app.call(Method::GET, &format!("/api/model_registry/v1/inference_services/{service}"), None).await;
    assert_eq!(drained.body["desiredState"], "UNDEPLOYED", "the version that left the split drains");
    assert_eq!(drained.body["customProperties"]["traffic_weight"]["int_value"], "0");
    let again = send(&app, &sam, Method::POST, &rollback, Some(json!({"registeredModelId": model}))).await;
    expect(&again, StatusCode::CONFLICT, "nothing earlier to roll back to");

    let history = send(&app, &viewer, Method::GET, &format!("{path}?registeredModelId={model}"), None).await;
    expect(&history, StatusCode::OK, "history");
    let statuses: Vec<_> =
        history.body["items"].as_array().unwrap().iter().map(|item| item["status"].clone()).collect();
    assert_eq!(statuses, [json!("active"), json!("rolled_back"), json!("superseded")]);
    let everything = send(&app, &viewer, Method::GET, &path, None).await;
    assert_eq!(everything.body["items"].as_array().unwrap().len(), 3);
    let bad = send(&app, &viewer, Method::GET, &format!("{path}?model=1"), None).await;
    expect(&bad, StatusCode::BAD_REQUEST, "an unknown query parameter");
    let events = outbox_counts(&app).await;
    assert_eq!((events.get("deployment.changed"), events.get("deployment.rolled_back")), (Some(&2), Some(&1)));
}

#[tokio::test]
async fn deployments_on_sqlite() {
    deployments(Backend::Sqlite).await;
}

#[tokio::test]
async fn deployments_on_postgres() {
    deployments(Backend::Postgres).await;
}
