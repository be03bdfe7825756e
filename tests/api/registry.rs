//! The registry conformance suite: every endpoint family, errors, pagination and filters, run unchanged
//! against SQLite and PostgreSQL (see `conformance_suite!`).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{BASE, TestApp};

crate::conformance_suite!(
    registered_models_crud,
    strict_bodies_and_error_envelopes,
    versions_are_scoped_to_their_model,
    artifact_union_and_upserts,
    pagination_across_pages,
    filter_query_operators,
    delete_rules,
    optimistic_concurrency,
    serving_environments_and_inference_services,
    experiments_runs_and_metric_history,
    concurrent_writes_succeed_or_fail_independently,
);

fn string_property(value: &str) -> Value {
    json!({"metadataType": "MetadataStringValue", "string_value": value})
}

fn names(reply: &Value) -> Vec<String> {
    reply["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn registered_models_crud(app: &TestApp) {
    let created = app
        .post(
            "/registered_models",
            json!({
                "name": "fraud-detector",
                "description": "flags fraud",
                "externalId": "ext-1",
                "owner": "risk",
                "language": ["en", "de"],
                "tasks": ["classification"],
                "customProperties": {
                    "team": string_property("risk"),
                    "layers": {"metadataType": "MetadataIntValue", "int_value": "12"},
                    "auc": {"metadataType": "MetadataDoubleValue", "double_value": 0.93},
                    "prod": {"metadataType": "MetadataBoolValue", "bool_value": true},
                    "blob": {"metadataType": "MetadataStructValue", "struct_value": "eyJhIjoxfQ=="},
                    "validated": string_property(""),
                },
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let model = created.body;
    let id = model["id"].as_str().expect("id is a string");
    assert!(model["createTimeSinceEpoch"].as_str().expect("time is a string").parse::<i64>().is_ok());
    assert_eq!(model["state"], "LIVE");
    assert_eq!(model["language"], json!(["en", "de"]));
    assert_eq!(model["customProperties"]["layers"], json!({"metadataType": "MetadataIntValue", "int_value": "12"}));
    assert_eq!(model["customProperties"]["prod"]["bool_value"], true);
    assert!(model.get("readme").is_none(), "unset fields are omitted");

    let fetched = app.get(&format!("/registered_models/{id}")).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.body, model);

    let by_name = app.get_query("/registered_model", &[("name", "fraud-detector")]).await;
    assert_eq!(by_name.body["id"], id);
    let by_external_id = app.get_query("/registered_model", &[("externalId", "ext-1")]).await;
    assert_eq!(by_external_id.body["id"], id);
    assert_eq!(app.get_query("/registered_model", &[("name", "nope")]).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/registered_model").await.status, StatusCode::BAD_REQUEST);

    // PATCH is partial; customProperties, when given, replace the whole map.
    let patched = app
        .patch(
            &format!("/registered_models/{id}"),
            json!({"description": "v2", "customProperties": {"team": string_property("fraud")}}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["description"], "v2");
    assert_eq!(patched.body["owner"], "risk");
    assert_eq!(patched.body["customProperties"], json!({"team": string_property("fraud")}));
    let kept = app.patch(&format!("/registered_models/{id}"), json!({"state": "ARCHIVED"})).await;
    assert_eq!(kept.body["customProperties"], json!({"team": string_property("fraud")}));
    assert_eq!(kept.body["state"], "ARCHIVED");

    let duplicate = app.post("/registered_models", json!({"name": "fraud-detector"})).await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert_eq!(duplicate.body["code"], "Conflict");
    let duplicate_external = app.post("/registered_models", json!({"name": "other", "externalId": "ext-1"})).await;
    assert_eq!(duplicate_external.status, StatusCode::CONFLICT);
    assert_eq!(app.get("/registered_models/999999").await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/registered_models/abc").await.status, StatusCode::BAD_REQUEST);
}

async fn strict_bodies_and_error_envelopes(app: &TestApp) {
    let unknown = app.post("/registered_models", json!({"name": "m", "ext_id": "x"})).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.body, json!({"code": "Bad Request", "message": "json: unknown field \"ext_id\""}));

    let missing = app.post("/registered_models", json!({"description": "no name"})).await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(missing.body, json!({"code": "Bad Request", "message": "required field 'name' is zero value."}));
    let empty = app.post("/model_versions", json!({"name": "", "registeredModelId": "1"})).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);

    let id = app.create("/registered_models", json!({"name": "strict"})).await;
    let rename = app.patch(&format!("/registered_models/{id}"), json!({"name": "renamed"})).await;
    assert_eq!(rename.status, StatusCode::BAD_REQUEST, "name is immutable");
    let bad_enum = app.patch(&format!("/registered_models/{id}"), json!({"state": "GONE"})).await;
    assert_eq!(bad_enum.status, StatusCode::BAD_REQUEST);
    let bad_property = app
        .post("/registered_models", json!({"name": "p", "customProperties": {"x": {"metadataType": "MetadataIntValue", "int_value": "1", "extra": 1}}}))
        .await;
    assert_eq!(bad_property.status, StatusCode::BAD_REQUEST);
    let not_json =
        app.client.post(format!("{}{BASE}/registered_models", app.address)).body("{").send().await.expect("sent");
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);

    let nul_body = app.post("/registered_models", json!({"name": "a\u{0}b"})).await;
    assert_eq!(nul_body.status, StatusCode::BAD_REQUEST);
    let nul_query = app.get_query("/registered_model", &[("name", "a\u{0}b")]).await;
    assert_eq!(nul_query.status, StatusCode::BAD_REQUEST);
    let parent_missing = app.post("/model_versions", json!({"name": "v1", "registeredModelId": "424242"})).await;
    assert_eq!(parent_missing.status, StatusCode::NOT_FOUND);
    assert_eq!(parent_missing.body["code"], "Not Found");
}

async fn versions_are_scoped_to_their_model(app: &TestApp) {
    let first = app.create("/registered_models", json!({"name": "first"})).await;
    let second = app.create("/registered_models", json!({"name": "second"})).await;
    let v1 = app.create(&format!("/registered_models/{first}/versions"), json!({"name": "v1", "author": "ana"})).await;
    app.create("/model_versions", json!({"name": "v1", "registeredModelId": second})).await;
    let duplicate = app.post("/model_versions", json!({"name": "v1", "registeredModelId": first})).await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);

    let found = app.get_query("/model_version", &[("name", "v1"), ("parentResourceId", &first)]).await;
    assert_eq!(found.status, StatusCode::OK);
    assert_eq!(found.body["id"], v1.as_str());
    assert_eq!(found.body["registeredModelId"], first.as_str());
    assert_eq!(app.get_query("/model_version", &[("name", "v1")]).await.status, StatusCode::BAD_REQUEST);

    let listed = app.get(&format!("/registered_models/{first}/versions")).await;
    assert_eq!(names(&listed.body), ["v1"]);
    let filtered = app.get_query(&format!("/registered_models/{second}/versions"), &[("name", "v1")]).await;
    assert_eq!(filtered.body["size"], 1);
    assert_eq!(app.get("/registered_models/999999/versions").await.status, StatusCode::NOT_FOUND);
    let orphan = app.post("/registered_models/999999/versions", json!({"name": "v1"})).await;
    assert_eq!(orphan.status, StatusCode::NOT_FOUND);
    assert_eq!(orphan.body["message"], "registered model 999999 not found");
    let orphan_serve = app.post("/inference_services/999999/serves", json!({"modelVersionId": v1})).await;
    assert_eq!(orphan_serve.body["message"], "inference service 999999 not found");
    let patched = app.patch(&format!("/model_versions/{v1}"), json!({"state": "ARCHIVED", "author": "bo"})).await;
    assert_eq!(patched.body["author"], "bo");
    let moved = app.patch(&format!("/model_versions/{v1}"), json!({"registeredModelId": second})).await;
    assert_eq!(moved.status, StatusCode::BAD_REQUEST, "the parent is immutable");

    // Names upstream cannot store are refused as upstream does: 255 characters, and a child's name shares
    // them with its parent's id (`<parent id>:<name>`).
    let longest = "m".repeat(255);
    app.create("/registered_models", json!({"name": longest})).await;
    let too_long = app.post("/registered_models", json!({"name": "m".repeat(256)})).await;
    assert_eq!(too_long.status, StatusCode::BAD_REQUEST);
    assert!(too_long.body["message"].as_str().is_some_and(|text| text.contains("too long")), "{}", too_long.body);
    let room = 255 - first.len() - 1;
    let fits = json!({"name": "v".repeat(room), "registeredModelId": first});
    app.create("/model_versions", fits).await;
    for path in [format!("/registered_models/{first}/versions"), "/model_versions".to_owned()] {
        let over = app.post(&path, json!({"name": "w".repeat(room + 1), "registeredModelId": first})).await;
        assert_eq!(over.status, StatusCode::BAD_REQUEST, "{path}: {}", over.body);
    }
}

async fn artifact_union_and_upserts(app: &TestApp) {
    let model = app.create("/registered_models", json!({"name": "arts"})).await;
    let version = app.create("/model_versions", json!({"name": "v1", "registeredModelId": model})).await;
    let path = format!("/model_versions/{version}/artifacts");

    let created =
        app.post(&path, json!({"artifactType": "model-artifact", "name": "weights", "uri": "s3://b/w"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let artifact_id = created.body["id"].as_str().expect("id").to_owned();
    assert_eq!(created.body["state"], "UNKNOWN");
    let updated =
        app.post(&path, json!({"artifactType": "model-artifact", "id": artifact_id, "uri": "s3://b/w2"})).await;
    assert_eq!(updated.status, StatusCode::OK);
    assert_eq!(updated.body["uri"], "s3://b/w2");
    let unnamed = app.post(&path, json!({"artifactType": "doc-artifact", "uri": "https://docs"})).await;
    assert_eq!(unnamed.status, StatusCode::CREATED);
    assert!(!unnamed.body["name"].as_str().unwrap_or_default().is_empty(), "a child without a name gets one");
    let doc_id = unnamed.body["id"].as_str().expect("id").to_owned();

    let all = app.get(&path).await;
    assert_eq!(all.body["size"], 2);
    let only_docs = app.get_query(&path, &[("artifactType", "doc-artifact")]).await;
    assert_eq!(only_docs.body["items"][0]["artifactType"], "doc-artifact");
    assert_eq!(only_docs.body["size"], 1);
    assert_eq!(app.get_query(&path, &[("artifactType", "weird")]).await.status, StatusCode::BAD_REQUEST);

    let found = app.get_query("/model_artifact", &[("name", "weights"), ("parentResourceId", &version)]).await;
    assert_eq!(found.body["id"], artifact_id.as_str());
    assert_eq!(
        app.get(&format!("/model_artifacts/{doc_id}")).await.status,
        StatusCode::NOT_FOUND,
        "typed routes see their type only"
    );
    assert_eq!(app.get(&format!("/artifacts/{doc_id}")).await.body["artifactType"], "doc-artifact");
    let retype = app.patch(&format!("/artifacts/{doc_id}"), json!({"artifactType": "model-artifact"})).await;
    assert_eq!(retype.status, StatusCode::BAD_REQUEST);
    let doc_patch =
        app.patch(&format!("/artifacts/{doc_id}"), json!({"artifactType": "doc-artifact", "state": "LIVE"})).await;
    assert_eq!(doc_patch.body["state"], "LIVE");

    for body in [
        json!({"artifactType": "dataset-artifact", "name": "train", "digest": "sha256:1", "schema": "{}", "uri": "s3://d"}),
        json!({"artifactType": "metric", "name": "acc", "value": 0.9, "step": 2, "timestamp": "1700000000000"}),
        json!({"artifactType": "parameter", "name": "lr", "value": "0.001"}),
    ] {
        let standalone = app.post("/artifacts", body.clone()).await;
        assert_eq!(standalone.status, StatusCode::CREATED, "{}", standalone.body);
        assert_eq!(standalone.body["artifactType"], body["artifactType"]);
    }
    let parameters = app.get_query("/artifacts", &[("artifactType", "parameter")]).await;
    assert_eq!(parameters.body["items"][0]["parameterType"], "string", "defaults are always emitted");
    let metrics = app.get_query("/artifacts", &[("artifactType", "metric")]).await;
    assert_eq!(metrics.body["items"][0]["step"], 2);
    assert_eq!(metrics.body["items"][0]["timestamp"], "1700000000000");
    let model_artifact =
        app.post("/model_artifacts", json!({"name": "loose", "uri": "s3://l", "modelFormatName": "onnx"})).await;
    assert_eq!(model_artifact.status, StatusCode::CREATED);
    assert_eq!(app.get_query("/model_artifacts", &[("pageSize", "100")]).await.body["size"], 2);
}

async fn pagination_across_pages(app: &TestApp) {
    for index in 0..25 {
        let name = format!("model-{:02}", (index * 7) % 25);
        app.create("/registered_models", json!({"name": name})).await;
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = app
            .get_query("/registered_models", &[("pageSize", "10"), ("orderBy", "NAME"), ("nextPageToken", &token)])
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert_eq!(page.body["pageSize"], 10);
        assert_eq!(page.body["size"].as_u64(), page.body["items"].as_array().map(|items| items.len() as u64));
        seen.extend(names(&page.body));
        pages += 1;
        token = page.body["nextPageToken"].as_str().expect("token is always present").to_owned();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..25).map(|index| format!("model-{index:02}")).collect();
    assert_eq!(seen, expected);

    let descending =
        app.get_query("/registered_models", &[("pageSize", "5"), ("orderBy", "ID"), ("sortOrder", "DESC")]).await;
    let ids: Vec<i64> = descending.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|pair| pair[0] > pair[1]), "{ids:?}");
    let next = descending.body["nextPageToken"].as_str().expect("token");
    let second = app
        .get_query(
            "/registered_models",
            &[("pageSize", "5"), ("orderBy", "ID"), ("sortOrder", "DESC"), ("nextPageToken", next)],
        )
        .await;
    let first_of_second: i64 = second.body["items"][0]["id"].as_str().unwrap().parse().unwrap();
    assert!(first_of_second < *ids.last().unwrap());

    let by_time = app.get_query("/registered_models", &[("pageSize", "25"), ("orderBy", "CREATE_TIME")]).await;
    assert_eq!(by_time.body["size"], 25);
    assert_eq!(by_time.body["nextPageToken"], "");
    let reused =
        app.get_query("/registered_models", &[("pageSize", "5"), ("orderBy", "NAME"), ("nextPageToken", next)]).await;
    assert_eq!(reused.status, StatusCode::BAD_REQUEST, "a token is bound to its query");
    assert_eq!(
        app.get_query("/registered_models", &[("nextPageToken", "garbage!")]).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(app.get_query("/registered_models", &[("pageSize", "0")]).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.get_query("/registered_models", &[("sortOrder", "UP")]).await.status, StatusCode::BAD_REQUEST);
    let unknown_order = app.get_query("/registered_models", &[("orderBy", "SIZE"), ("pageSize", "1")]).await;
    assert_eq!(unknown_order.body["items"][0]["name"], "model-00", "unknown orderBy falls back to ID");
}

async fn filter_query_operators(app: &TestApp) {
    let models = [
        ("bert-base", "nlp", 12, 0.91, true, Some("alice")),
        ("bert-large", "nlp", 24, 0.95, false, Some("bob")),
        ("resnet-50", "vision", 50, 0.76, true, None),
        ("ViT-Huge", "vision", 32, 0.88, false, Some("carol")),
    ];
    for (name, team, layers, accuracy, prod, owner) in models {
        let mut body = json!({
            "name": name,
            "customProperties": {
                "team": string_property(team),
                "layers": {"metadataType": "MetadataIntValue", "int_value": layers.to_string()},
                "accuracy": {"metadataType": "MetadataDoubleValue", "double_value": accuracy},
                "prod": {"metadataType": "MetadataBoolValue", "bool_value": prod},
                "mlflow.source.type": string_property(if prod { "notebook" } else { "job" }),
            },
        });
        if let Some(owner) = owner {
            body["owner"] = json!(owner);
        }
        app.create("/registered_models", body).await;
    }
    let cases: &[(&str, &[&str])] = &[
        ("name = 'bert-base'", &["bert-base"]),
        ("name != \"bert-base\"", &["bert-large", "resnet-50", "ViT-Huge"]),
        ("name <> 'bert-base' AND team = 'nlp'", &["bert-large"]),
        ("(name = 'bert-base' OR name = 'resnet-50') AND prod = true", &["bert-base", "resnet-50"]),
        ("team = 'nlp' OR team = 'vision' AND layers > 40", &["bert-base", "bert-large", "resnet-50"]),
        ("team.string_value = 'vision'", &["resnet-50", "ViT-Huge"]),
        ("layers > 24", &["resnet-50", "ViT-Huge"]),
        ("layers >= 24", &["bert-large", "resnet-50", "ViT-Huge"]),
        ("layers < 24", &["bert-base"]),
        ("layers <= 24", &["bert-base", "bert-large"]),
        ("layers.int_value = 50", &["resnet-50"]),
        ("accuracy > 0.9", &["bert-base", "bert-large"]),
        ("accuracy.double_value <= 0.76", &["resnet-50"]),
        ("prod = false", &["bert-large", "ViT-Huge"]),
        ("prod.bool_value = true", &["bert-base", "resnet-50"]),
        ("name LIKE 'bert-%'", &["bert-base", "bert-large"]),
        ("name LIKE 'vit%'", &[]),
        ("name ILIKE 'vit%'", &["ViT-Huge"]),
        ("name IN ('resnet-50', 'ViT-Huge', 'absent')", &["resnet-50", "ViT-Huge"]),
        ("`mlflow.source.type` = \"notebook\"", &["bert-base", "resnet-50"]),
        ("owner = 'alice'", &["bert-base"]),
        ("id = 1", &["bert-base"]),
        ("state = 'LIVE' AND NOT team = 'nlp'", &["resnet-50", "ViT-Huge"]),
        ("name NOT IN ('bert-base', 'bert-large')", &["resnet-50", "ViT-Huge"]),
        ("name NOT LIKE 'bert%'", &["resnet-50", "ViT-Huge"]),
        ("owner IS NULL", &["resnet-50"]),
        ("owner IS NOT NULL AND layers > 20", &["bert-large", "ViT-Huge"]),
        ("NOT owner = 'bob'", &["bert-base", "resnet-50", "ViT-Huge"]),
        ("missing IS NULL", &["bert-base", "bert-large", "resnet-50", "ViT-Huge"]),
        ("team IS NOT NULL AND accuracy IS NULL", &[]),
        ("name = \"'; DROP TABLE registered_model; --\"", &[]),
    ];
    for (filter, expected) in cases {
        let reply = app.get_query("/registered_models", &[("filterQuery", filter), ("orderBy", "ID")]).await;
        assert_eq!(reply.status, StatusCode::OK, "{filter}: {}", reply.body);
        assert_eq!(names(&reply.body), *expected, "{filter}");
    }
    for bad in [
        "name = ",
        "name == 'x'",
        "(name = 'x'",
        "layers.int_value > 'many'",
        "name LIKE 5 AND",
        "1 = name",
        "name = 'x'; DROP TABLE x",
    ] {
        let reply = app.get_query("/registered_models", &[("filterQuery", bad)]).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}: {}", reply.body);
        assert_eq!(reply.body["code"], "Bad Request");
    }
    let positioned = app.get_query("/registered_models", &[("filterQuery", "name = ")]).await;
    assert!(positioned.body["message"].as_str().unwrap_or_default().contains("position 7"), "{}", positioned.body);
    assert_eq!(
        app.get_query("/registered_models", &[("pageSize", "1")]).await.status,
        StatusCode::OK,
        "the table survived"
    );
}

async fn delete_rules(app: &TestApp) {
    let model = app.create("/registered_models", json!({"name": "doomed"})).await;
    let version = app.create(&format!("/registered_models/{model}/versions"), json!({"name": "v1"})).await;
    let artifact = app
        .create(
            &format!("/model_versions/{version}/artifacts"),
            json!({"artifactType": "model-artifact", "uri": "s3://x"}),
        )
        .await;
    let environment = app.create("/serving_environments", json!({"name": "prod"})).await;
    let service = app
        .create("/inference_services", json!({"name": "svc", "registeredModelId": model, "servingEnvironmentId": environment, "modelVersionId": version}))
        .await;

    let refused = app.delete(&format!("/registered_models/{model}")).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(refused.body["message"].as_str().unwrap_or_default().contains("inference service"), "{}", refused.body);
    assert_eq!(app.delete(&format!("/model_versions/{version}")).await.status, StatusCode::CONFLICT);
    assert_eq!(
        app.get(&format!("/model_versions/{version}")).await.status,
        StatusCode::OK,
        "a refused delete changes nothing"
    );

    // Point the service elsewhere: the model is still referenced, the version no longer is.
    let other = app.create("/registered_models", json!({"name": "keeper"})).await;
    let other_version = app.create(&format!("/registered_models/{other}/versions"), json!({"name": "v1"})).await;
    let repointed =
        app.patch(&format!("/inference_services/{service}"), json!({"modelVersionId": other_version})).await;
    assert_eq!(repointed.status, StatusCode::OK, "{}", repointed.body);
    assert_eq!(app.delete(&format!("/model_versions/{version}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/artifacts/{artifact}")).await.status,
        StatusCode::NOT_FOUND,
        "versions own their artifacts"
    );

    let second_version = app.create(&format!("/registered_models/{model}/versions"), json!({"name": "v2"})).await;
    let lone_artifact = app.create("/model_artifacts", json!({"uri": "s3://lone"})).await;
    assert_eq!(app.delete(&format!("/model_artifacts/{lone_artifact}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.delete(&format!("/model_artifacts/{lone_artifact}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.delete(&format!("/registered_models/{other}")).await.status, StatusCode::CONFLICT);
    let freed = app.create("/registered_models", json!({"name": "free"})).await;
    app.create(
        &format!("/registered_models/{freed}/versions"),
        json!({"name": "v1", "customProperties": {"k": string_property("v")}}),
    )
    .await;
    assert_eq!(app.delete(&format!("/registered_models/{freed}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/registered_models/{freed}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get_query("/model_versions", &[("filterQuery", &format!("registeredModelId = {freed}"))]).await.body["size"],
        0
    );
    let recreated = app.post("/registered_models", json!({"name": "free"})).await;
    assert_eq!(recreated.status, StatusCode::CREATED, "a deleted name can be reused");
    assert_eq!(app.get(&format!("/model_versions/{second_version}")).await.status, StatusCode::OK);
}

async fn optimistic_concurrency(app: &TestApp) {
    let id = app.create("/registered_models", json!({"name": "etag"})).await;
    let fetched = app.get(&format!("/registered_models/{id}")).await;
    let etag = fetched.headers["etag"].to_str().expect("etag").to_owned();
    let path = format!("{}{BASE}/registered_models/{id}", app.address);
    let first = app
        .client
        .patch(&path)
        .header("If-Match", &etag)
        .json(&json!({"description": "one"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(first.status(), StatusCode::OK);
    let new_etag = first.headers()["etag"].to_str().expect("etag").to_owned();
    assert_ne!(new_etag, etag);
    let stale = app
        .client
        .patch(&path)
        .header("If-Match", &etag)
        .json(&json!({"description": "two"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let stale_body: Value = stale.json().await.expect("json");
    assert_eq!(stale_body["code"], "Precondition Failed");
    assert_eq!(
        app.get(&format!("/registered_models/{id}")).await.body["description"],
        "one",
        "the stale write was not applied"
    );
    let unconditional = app.patch(&format!("/registered_models/{id}"), json!({"description": "three"})).await;
    assert_eq!(unconditional.status, StatusCode::OK);
    let bad = app.client.patch(&path).header("If-Match", "nonsense").json(&json!({})).send().await.expect("sent");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

async fn serving_environments_and_inference_services(app: &TestApp) {
    let model = app.create("/registered_models", json!({"name": "served"})).await;
    let v1 = app.create(&format!("/registered_models/{model}/versions"), json!({"name": "v1"})).await;
    let v2 = app.create(&format!("/registered_models/{model}/versions"), json!({"name": "v2"})).await;
    let environment = app.create("/serving_environments", json!({"name": "staging"})).await;
    assert_eq!(app.get_query("/serving_environment", &[("name", "staging")]).await.body["id"], environment.as_str());
    assert_eq!(app.post("/serving_environments", json!({"name": "staging"})).await.status, StatusCode::CONFLICT);

    let service = app
        .create(
            &format!("/serving_environments/{environment}/inference_services"),
            json!({"name": "svc", "registeredModelId": model, "runtime": "vllm"}),
        )
        .await;
    let fetched = app.get(&format!("/inference_services/{service}")).await.body;
    assert_eq!(fetched["servingEnvironmentId"], environment.as_str());
    assert_eq!(fetched["desiredState"], "DEPLOYED");
    assert_eq!(app.get(&format!("/inference_services/{service}/model")).await.body["id"], model.as_str());
    assert_eq!(
        app.get(&format!("/inference_services/{service}/version")).await.body["id"],
        v2.as_str(),
        "latest version by default"
    );
    app.patch(&format!("/inference_services/{service}"), json!({"modelVersionId": v1, "desiredState": "UNDEPLOYED"}))
        .await;
    assert_eq!(app.get(&format!("/inference_services/{service}/version")).await.body["id"], v1.as_str());
    let found = app.get_query("/inference_service", &[("name", "svc"), ("parentResourceId", &environment)]).await;
    assert_eq!(found.body["id"], service.as_str());
    let missing_model = app
        .post("/inference_services", json!({"registeredModelId": "999999", "servingEnvironmentId": environment}))
        .await;
    assert_eq!(missing_model.status, StatusCode::NOT_FOUND);
    let missing_field = app.post("/inference_services", json!({"registeredModelId": model})).await;
    assert_eq!(missing_field.status, StatusCode::UNPROCESSABLE_ENTITY);

    let serve = app
        .create(
            &format!("/inference_services/{service}/serves"),
            json!({"modelVersionId": v1, "lastKnownState": "RUNNING"}),
        )
        .await;
    let serves = app.get(&format!("/inference_services/{service}/serves")).await.body;
    assert_eq!(serves["items"][0]["id"], serve.as_str());
    assert_eq!(serves["items"][0]["lastKnownState"], "RUNNING");
    let listed = app.get(&format!("/serving_environments/{environment}/inference_services")).await.body;
    assert_eq!(listed["size"], 1);
    assert_eq!(app.get("/inference_services").await.body["size"], 1);
}

async fn experiments_runs_and_metric_history(app: &TestApp) {
    let experiment = app.create("/experiments", json!({"name": "tuning", "owner": "ana"})).await;
    assert_eq!(app.get_query("/experiment", &[("name", "tuning")]).await.body["id"], experiment.as_str());
    let run = app.create(&format!("/experiments/{experiment}/experiment_runs"), json!({"name": "run-a"})).await;
    let other_run = app.create("/experiment_runs", json!({"experimentId": experiment, "name": "run-b"})).await;
    assert_eq!(
        app.post("/experiment_runs", json!({"experimentId": experiment, "name": "run-a"})).await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(app.post("/experiment_runs", json!({"name": "orphan"})).await.status, StatusCode::UNPROCESSABLE_ENTITY);

    for (step, value) in [(1, 0.5), (2, 0.6), (3, 0.8)] {
        let logged = app
            .post(
                &format!("/experiment_runs/{run}/artifacts"),
                json!({"artifactType": "metric", "name": "loss", "value": value, "step": step}),
            )
            .await;
        assert!(logged.status.is_success(), "{}", logged.body);
        assert_eq!(logged.body["experimentRunId"], run.as_str());
        assert_eq!(logged.body["experimentId"], experiment.as_str());
    }
    app.post(
        &format!("/experiment_runs/{other_run}/artifacts"),
        json!({"artifactType": "metric", "name": "loss", "value": 0.1, "step": 1}),
    )
    .await;
    app.post(
        &format!("/experiment_runs/{run}/artifacts"),
        json!({"artifactType": "parameter", "name": "lr", "value": "0.01"}),
    )
    .await;

    let artifacts = app.get(&format!("/experiment_runs/{run}/artifacts")).await.body;
    assert_eq!(artifacts["size"], 2, "a metric logged again updates the one artifact");
    let history = app.get_query(&format!("/experiment_runs/{run}/metric_history"), &[("name", "loss")]).await.body;
    let values: Vec<f64> =
        history["items"].as_array().expect("items").iter().map(|item| item["value"].as_f64().unwrap()).collect();
    assert_eq!(values, [0.5, 0.6, 0.8]);
    assert_eq!(history["items"][0]["artifactType"], "metric");
    let stepped = app.get_query(&format!("/experiment_runs/{run}/metric_history"), &[("stepIds", "1,3")]).await.body;
    assert_eq!(stepped["size"], 2);
    assert_eq!(
        app.get_query(&format!("/experiment_runs/{run}/metric_history"), &[("stepIds", "1,x")]).await.status,
        StatusCode::BAD_REQUEST
    );
    let across = app.get_query("/experiment_runs/metric_history", &[("name", "loss")]).await.body;
    assert_eq!(across["size"], 4);

    let finished = app
        .patch(&format!("/experiment_runs/{run}"), json!({"status": "FINISHED", "endTimeSinceEpoch": "1700000000000"}))
        .await;
    assert_eq!(finished.body["status"], "FINISHED");
    assert_eq!(finished.body["endTimeSinceEpoch"], "1700000000000");
    let runs = app.get(&format!("/experiments/{experiment}/experiment_runs")).await.body;
    assert_eq!(names(&runs), ["run-a", "run-b"]);
    let found = app.get_query("/experiment_run", &[("name", "run-b"), ("parentResourceId", &experiment)]).await;
    assert_eq!(found.body["id"], other_run.as_str());
    let found_artifact = app.get_query("/artifact", &[("name", "lr"), ("parentResourceId", &run)]).await;
    assert_eq!(found_artifact.status, StatusCode::OK, "{}", found_artifact.body);
    let reset = app.call(Method::POST, &format!("{BASE}/testing/reset"), None).await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/experiments").await.body["size"], 0);
}

/// Concurrent writes share commits on SQLite (group commit): a failing one must not undo or block the
/// others in its batch, and every acknowledged write must be readable afterwards.
async fn concurrent_writes_succeed_or_fail_independently(app: &TestApp) {
    let taken = app.create("/registered_models", json!({"name": "taken"})).await;
    let requests = (0..40).map(|index| {
        let name = if index % 2 == 0 { format!("fresh-{index}") } else { "taken".to_owned() };
        let properties = json!({"index": {"metadataType": "MetadataIntValue", "int_value": index.to_string()}});
        app.post("/registered_models", json!({"name": name, "customProperties": properties}))
    });
    let replies = futures_util::future::join_all(requests).await;
    let created = replies.iter().filter(|reply| reply.status == StatusCode::CREATED).count();
    let conflicts = replies.iter().filter(|reply| reply.status == StatusCode::CONFLICT).count();
    assert_eq!((created, conflicts), (20, 20));
    let listed = app.get_query("/registered_models", &[("pageSize", "100")]).await.body;
    assert_eq!(listed["size"], 21);
    for reply in replies.iter().filter(|reply| reply.status == StatusCode::CREATED) {
        let id = reply.body["id"].as_str().expect("id");
        let fetched = app.get(&format!("/registered_models/{id}")).await;
        assert_eq!(fetched.body["customProperties"], reply.body["customProperties"], "acknowledged writes persist");
    }
    assert_eq!(app.get(&format!("/registered_models/{taken}")).await.status, StatusCode::OK);
}
