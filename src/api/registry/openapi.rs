//! The OpenAPI 3.0 document of the registry API as modelcat serves it, generated from [`ROUTES`] and the
//! entity descriptors, so it cannot drift from the router or the wire codec. It follows upstream's schema
//! names (`RegisteredModel`, `RegisteredModelCreate`, …) and documents modelcat's additions (`DELETE`,
//! `NAME` ordering, `ETag`/`If-Match`, the bounded default page size).

use std::sync::LazyLock;

use serde_json::{Map, Value as Json, json};

use super::wire::BodySchema;
use super::{BASE_PATH, ROUTES, Route, Shape, V1_BASE_PATH};
use crate::registry::schema::{ANY_ARTIFACT, ARTIFACT_KINDS, FieldType, KINDS, Kind, METRIC_HISTORY};

/// The document as YAML, rendered once.
pub static YAML: LazyLock<String> = LazyLock::new(|| render(&document()));

/// The same document for the `v1` paths.
pub static YAML_V1: LazyLock<String> = LazyLock::new(|| render(&document_at(V1_BASE_PATH, "v1")));

fn render(document: &Json) -> String {
    serde_norway::to_string(document).unwrap_or_else(|error| format!("# cannot render: {error}\n"))
}

const ID_PATTERN: &str = "^[1-9][0-9]{0,8}$";

/// Upstream's schema name of a kind.
fn schema_name(kind: &Kind) -> String {
    if kind == &ANY_ARTIFACT {
        return "Artifact".into();
    }
    if kind == &METRIC_HISTORY {
        return "Metric".into();
    }
    match kind.artifact_type {
        Some("dataset-artifact") => "DataSet".into(),
        _ => kind.label.split(' ').map(capitalize).collect(),
    }
}

fn capitalize(word: &str) -> String {
    let mut characters = word.chars();
    characters.next().map(|first| first.to_uppercase().chain(characters).collect()).unwrap_or_default()
}

fn reference(name: &str) -> Json {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// Builds the whole document (the alpha paths).
pub fn document() -> Json {
    document_at(BASE_PATH, "v1alpha3")
}

/// Builds the whole document for the routes under `base`.
fn document_at(base: &str, version: &str) -> Json {
    let mut paths = Map::new();
    for route in &ROUTES {
        paths.insert(format!("{base}{}", route.path), path_item(route));
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "modelcat Model Registry REST API",
            "version": version,
            "description": "Kubeflow Model Registry API (v1alpha3) as served by modelcat. The same routes are also \
                served under /api/model_registry/v1, where Metric.step is a string. Additions: DELETE on registered \
                models, versions and artifacts; orderBy=NAME; NOT, IS [NOT] NULL, NOT IN and NOT LIKE in \
                filterQuery; a bounded default page size; ETag on single-entity responses and If-Match on PATCH.",
        },
        "paths": paths,
        "components": {"schemas": schemas(), "parameters": parameters()},
    })
}

fn path_item(route: &Route) -> Json {
    let kind = route.kind;
    let name = schema_name(kind);
    let list_name = format!("{name}List");
    let mut item = Map::new();
    let id_parameter = json!({"$ref": "#/components/parameters/id"});
    match route.shape {
        Shape::Find => {
            let mut parameters = vec![param_ref("name"), param_ref("externalId")];
            if kind.parent.is_some() {
                parameters.push(param_ref("parentResourceId"));
            }
            item.insert(
                "get".into(),
                operation(
                    &format!("find{name}"),
                    parameters,
                    None,
                    &[("200", Some(&name)), ("400", None), ("404", None)],
                ),
            );
        }
        Shape::Collection => {
            let mut parameters = list_parameters();
            if kind.is_artifact() && kind.artifact_type.is_none() {
                parameters.push(param_ref("artifactType"));
            }
            item.insert(
                "get".into(),
                operation(&format!("get{name}s"), parameters, None, &[("200", Some(&list_name)), ("400", None)]),
            );
            let create = format!("{name}Create");
            item.insert(
                "post".into(),
                operation(&format!("create{name}"), vec![], Some(&create), &created_responses(&name)),
            );
        }
        Shape::Item { deletable } => {
            item.insert("parameters".into(), json!([id_parameter]));
            item.insert(
                "get".into(),
                operation(&format!("get{name}"), vec![], None, &[("200", Some(&name)), ("404", None)]),
            );
            let update = format!("{name}Update");
            let if_match = json!({"name": "If-Match", "in": "header", "required": false, "schema": {"type": "string"},
                "description": "modelcat: the ETag of the version being updated; a stale one is refused with 412."});
            item.insert(
                "patch".into(),
                operation(
                    &format!("update{name}"),
                    vec![if_match],
                    Some(&update),
                    &[("200", Some(&name)), ("400", None), ("404", None), ("409", None), ("412", None)],
                ),
            );
            if deletable {
                item.insert(
                    "delete".into(),
                    operation(&format!("delete{name}"), vec![], None, &[("204", None), ("404", None), ("409", None)]),
                );
            }
        }
        Shape::Children { parent, body } => {
            item.insert("parameters".into(), json!([id_parameter]));
            let mut parameters = list_parameters();
            parameters.extend([param_ref("name"), param_ref("externalId")]);
            let parent_name = schema_name(parent);
            item.insert(
                "get".into(),
                operation(
                    &format!("get{parent_name}{name}s"),
                    parameters,
                    None,
                    &[("200", Some(&list_name)), ("404", None)],
                ),
            );
            let body_name = if body == BodySchema::Full { name.clone() } else { format!("{name}Create") };
            item.insert(
                "post".into(),
                operation(&format!("create{parent_name}{name}"), vec![], Some(&body_name), &created_responses(&name)),
            );
        }
        Shape::Artifacts { owner } => {
            item.insert("parameters".into(), json!([id_parameter]));
            let mut parameters = list_parameters();
            parameters.extend([param_ref("name"), param_ref("externalId"), param_ref("artifactType")]);
            let owner_name = schema_name(owner);
            item.insert(
                "get".into(),
                operation(
                    &format!("get{owner_name}Artifacts"),
                    parameters,
                    None,
                    &[("200", Some("ArtifactList")), ("404", None)],
                ),
            );
            item.insert(
                "post".into(),
                operation(
                    &format!("upsert{owner_name}Artifact"),
                    vec![],
                    Some("Artifact"),
                    &[
                        ("200", Some("Artifact")),
                        ("201", Some("Artifact")),
                        ("400", None),
                        ("404", None),
                        ("409", None),
                    ],
                ),
            );
        }
        Shape::ServiceModel | Shape::ServiceVersion => {
            item.insert("parameters".into(), json!([id_parameter]));
            let operation_id = if matches!(route.shape, Shape::ServiceModel) {
                "getInferenceServiceModel"
            } else {
                "getInferenceServiceVersion"
            };
            item.insert("get".into(), operation(operation_id, vec![], None, &[("200", Some(&name)), ("404", None)]));
        }
        Shape::RunHistory | Shape::History => {
            let mut parameters = list_parameters();
            parameters.extend([param_ref("name"), param_ref("stepIds")]);
            let operation_id = if matches!(route.shape, Shape::RunHistory) {
                item.insert("parameters".into(), json!([id_parameter]));
                "getExperimentRunMetricHistory"
            } else {
                "getExperimentRunsMetricHistory"
            };
            item.insert(
                "get".into(),
                operation(operation_id, parameters, None, &[("200", Some("MetricList")), ("400", None), ("404", None)]),
            );
        }
    }
    Json::Object(item)
}

/// The responses of a create: the entity, or why it was refused.
fn created_responses(name: &str) -> [(&'static str, Option<&str>); 5] {
    [("201", Some(name)), ("400", None), ("404", None), ("409", None), ("422", None)]
}

fn param_ref(name: &str) -> Json {
    json!({"$ref": format!("#/components/parameters/{name}")})
}

fn list_parameters() -> Vec<Json> {
    ["filterQuery", "pageSize", "orderBy", "sortOrder", "nextPageToken"].into_iter().map(param_ref).collect()
}

fn operation(
    operation_id: &str,
    parameters: Vec<Json>,
    body: Option<&str>,
    responses: &[(&str, Option<&str>)],
) -> Json {
    let mut operation = json!({"operationId": operation_id, "tags": ["ModelRegistryService"]});
    if !parameters.is_empty() {
        operation["parameters"] = Json::Array(parameters);
    }
    if let Some(body) = body {
        operation["requestBody"] =
            json!({"required": true, "content": {"application/json": {"schema": reference(body)}}});
    }
    let mut rendered = Map::new();
    // Every operation may refuse its parameters or body (400), its caller (401 without or with invalid
    // credentials, 403 for a role or a model permission that does not allow it).
    let common = [("400", None), ("401", None), ("403", None)];
    for (status, schema) in responses.iter().chain(common.iter()) {
        if rendered.contains_key(*status) {
            continue;
        }
        let response = match schema {
            Some(schema) => {
                json!({"description": "OK", "content": {"application/json": {"schema": reference(schema)}}})
            }
            None if *status == "204" => json!({"description": "Deleted"}),
            None => json!({"description": "Error", "content": {"application/json": {"schema": reference("Error")}}}),
        };
        rendered.insert((*status).to_owned(), response);
    }
    operation["responses"] = Json::Object(rendered);
    operation
}

fn parameters() -> Json {
    let text = |name: &str, description: &str| {
        json!({"name": name, "in": "query", "required": false,
        "schema": {"type": "string", "pattern": "^[\\x20-\\x7E]+$"}, "description": description})
    };
    json!({
        "id": {"name": "id", "in": "path", "required": true, "schema": {"type": "string", "pattern": ID_PATTERN}},
        "name": text("name", "Exact name."),
        "externalId": text("externalId", "Exact external id."),
        "parentResourceId": {"name": "parentResourceId", "in": "query", "required": false, "schema": {"type": "string", "pattern": ID_PATTERN}},
        "filterQuery": {"name": "filterQuery", "in": "query", "required": false, "schema": {"type": "string"},
            "description": "Kubeflow filter grammar; modelcat adds NOT, IS [NOT] NULL, NOT IN and NOT LIKE."},
        "pageSize": {"name": "pageSize", "in": "query", "required": false, "schema": {"type": "string", "pattern": ID_PATTERN},
            "description": "Items per page; modelcat defaults to 100 and caps at 1000 (both configurable)."},
        "orderBy": {"name": "orderBy", "in": "query", "required": false,
            "schema": {"type": "string", "enum": ["CREATE_TIME", "LAST_UPDATE_TIME", "ID", "NAME"]},
            "description": "NAME is a modelcat addition; unknown values fall back to ID."},
        "sortOrder": {"name": "sortOrder", "in": "query", "required": false, "schema": {"type": "string", "enum": ["ASC", "DESC"]}},
        "nextPageToken": {"name": "nextPageToken", "in": "query", "required": false, "schema": {"type": "string"}},
        "artifactType": {"name": "artifactType", "in": "query", "required": false,
            "schema": {"type": "string", "enum": ARTIFACT_KINDS.iter().filter_map(|kind| kind.artifact_type).collect::<Vec<_>>()}},
        "stepIds": {"name": "stepIds", "in": "query", "required": false, "schema": {"type": "string", "pattern": "^[0-9]{1,9}(,[0-9]{1,9})*$"}},
    })
}

fn schemas() -> Json {
    let mut schemas = Map::new();
    // Metric history entries are rendered as `Metric`, which the metric kind already defines.
    for kind in KINDS.into_iter().filter(|kind| *kind != &METRIC_HISTORY) {
        let name = schema_name(kind);
        schemas.insert(name.clone(), object_schema(kind, BodySchema::Full));
        schemas.insert(format!("{name}Create"), object_schema(kind, BodySchema::Create));
        schemas.insert(format!("{name}Update"), object_schema(kind, BodySchema::Update));
        schemas.insert(format!("{name}List"), list_schema(&name));
    }
    for (suffix, one_of) in [("", ""), ("Create", "Create"), ("Update", "Update")] {
        let variants: Vec<Json> =
            ARTIFACT_KINDS.iter().map(|kind| reference(&format!("{}{one_of}", schema_name(kind)))).collect();
        let mapping: Map<String, Json> = ARTIFACT_KINDS
            .iter()
            .map(|kind| {
                let target = format!("#/components/schemas/{}{one_of}", schema_name(kind));
                (kind.artifact_type.unwrap_or_default().to_owned(), Json::String(target))
            })
            .collect();
        schemas.insert(
            format!("Artifact{suffix}"),
            json!({"oneOf": variants, "discriminator": {"propertyName": "artifactType", "mapping": mapping}}),
        );
    }
    schemas.insert("ArtifactList".into(), list_schema("Artifact"));
    let metadata = [
        ("MetadataStringValue", json!({"string_value": {"type": "string"}})),
        ("MetadataIntValue", json!({"int_value": {"type": "string", "format": "int64"}})),
        ("MetadataDoubleValue", json!({"double_value": {"type": "number", "format": "double"}})),
        ("MetadataBoolValue", json!({"bool_value": {"type": "boolean"}})),
        ("MetadataStructValue", json!({"struct_value": {"type": "string", "format": "byte"}})),
        (
            "MetadataProtoValue",
            json!({"type": {"type": "string"}, "proto_value": {"type": "string", "format": "byte"}}),
        ),
    ];
    for (name, value_properties) in &metadata {
        let mut properties = value_properties.as_object().cloned().unwrap_or_default();
        properties.insert("metadataType".into(), json!({"type": "string", "enum": [name]}));
        let required: Vec<&String> = properties.keys().collect();
        schemas.insert(
            (*name).to_owned(),
            json!({"type": "object", "additionalProperties": false, "required": required, "properties": properties}),
        );
    }
    schemas.insert(
        "MetadataValue".into(),
        json!({"oneOf": metadata.iter().map(|(name, _)| reference(name)).collect::<Vec<_>>(),
               "discriminator": {"propertyName": "metadataType"}}),
    );
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "required": ["code", "message"],
               "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}),
    );
    Json::Object(schemas)
}

fn field_schema(field_type: FieldType) -> Json {
    match field_type {
        FieldType::Text => json!({"type": "string"}),
        FieldType::Id(_) => json!({"type": "string", "format": "int64", "pattern": ID_PATTERN}),
        FieldType::Millis => json!({"type": "string", "format": "int64"}),
        FieldType::Integer => json!({"type": "integer", "format": "int64"}),
        FieldType::Double => json!({"type": "number", "format": "double"}),
        FieldType::Enum(values) => json!({"type": "string", "enum": values}),
        FieldType::TextList => json!({"type": "array", "items": {"type": "string"}}),
    }
}

fn object_schema(kind: &Kind, schema: BodySchema) -> Json {
    let mut properties = Map::new();
    let mut required = Vec::new();
    if schema == BodySchema::Full {
        properties.insert("id".into(), json!({"type": "string", "format": "int64", "readOnly": true}));
        properties
            .insert("createTimeSinceEpoch".into(), json!({"type": "string", "format": "int64", "readOnly": true}));
        properties
            .insert("lastUpdateTimeSinceEpoch".into(), json!({"type": "string", "format": "int64", "readOnly": true}));
    }
    if let Some(artifact_type) = kind.artifact_type {
        properties.insert("artifactType".into(), json!({"type": "string", "enum": [artifact_type]}));
        // The server reads the type first, so the `Artifact` variants are told apart by it.
        if schema != BodySchema::Update {
            required.push("artifactType");
        }
    }
    for field in kind.fields {
        if !schema.accepts(field) {
            continue;
        }
        let mut rendered = field_schema(field.ty);
        if let Some(default) = field.default {
            rendered["default"] = json!(default);
        }
        if !field.on_create && !field.on_update {
            rendered["readOnly"] = json!(true);
        }
        if field.required && schema == BodySchema::Create {
            required.push(field.wire);
        }
        properties.insert(field.wire.into(), rendered);
    }
    properties.insert(
        "customProperties".into(),
        json!({"type": "object", "additionalProperties": reference("MetadataValue")}),
    );
    let mut rendered = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        rendered["required"] = json!(required);
    }
    rendered
}

fn list_schema(item: &str) -> Json {
    json!({
        "type": "object",
        "required": ["items", "nextPageToken", "pageSize", "size"],
        "properties": {
            "items": {"type": "array", "items": reference(item)},
            "nextPageToken": {"type": "string", "description": "Empty on the last page."},
            "pageSize": {"type": "integer", "format": "int32"},
            "size": {"type": "integer", "format": "int32", "description": "Items in this page."},
        },
    })
}
