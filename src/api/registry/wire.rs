//! Kubeflow registry wire format: strict decoding of request bodies and rendering of [`Record`]s.
//!
//! Decoding follows upstream's Go decoder: an unknown key is `400 json: unknown field "x"`, a missing or
//! empty required field on create is `422 required field 'name' is zero value.`, ids and int64 times are
//! decimal strings, `null` means "not given", and a NUL byte anywhere is a 400. Rendering emits ids, times
//! and `int_value` as strings, omits unset optional fields, always carries `customProperties`, and adds
//! `artifactType` to every artifact.

use std::collections::BTreeMap;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value as Json};

use crate::api::error::ApiError;
use crate::governance::kubeflow_guard::GOVERNANCE_KEYS;
use crate::registry::schema::{ARTIFACT_KINDS, Field, FieldType, Kind, MODEL_ARTIFACT, artifact_kind};
use crate::registry::{Draft, MetaValue, Properties, Record, Scalar};

/// The API version a route is mounted under; they differ only in how int64 counters are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireVersion {
    /// `/api/model_registry/v1alpha3`: `Metric.step` is a JSON integer, as the spec says.
    V1Alpha3,
    /// `/api/model_registry/v1`: every int64 is a JSON string, including `Metric.step`.
    V1,
}

/// Which request schema a body is decoded against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodySchema {
    /// `XCreate`: create fields only.
    Create,
    /// `XUpdate`: updatable fields only.
    Update,
    /// The full `X` schema (version and artifact-union POSTs): read-only fields are accepted and ignored,
    /// and `id` selects an update.
    Full,
}

impl BodySchema {
    /// Whether a body of this schema may carry `field`.
    pub fn accepts(self, field: &Field) -> bool {
        match self {
            BodySchema::Create => field.on_create,
            BodySchema::Update => field.on_update,
            BodySchema::Full => true,
        }
    }
}

/// A decoded body.
#[derive(Debug)]
pub struct Decoded {
    pub draft: Draft,
    /// The `id` of a full-schema body (an upsert of an existing entity).
    pub id: Option<i64>,
}

const READ_ONLY_KEYS: [&str; 2] = ["createTimeSinceEpoch", "lastUpdateTimeSinceEpoch"];

/// Parses a JSON object body.
pub fn parse_object(body: &[u8]) -> Result<Map<String, Json>, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request("request body is empty; expected a JSON object"));
    }
    let json: Json =
        serde_json::from_slice(body).map_err(|error| ApiError::bad_request(format!("invalid JSON body: {error}")))?;
    if contains_nul(&json) {
        return Err(ApiError::bad_request("invalid request: NUL byte in body"));
    }
    match json {
        Json::Object(object) => Ok(object),
        _ => Err(ApiError::bad_request("request body must be a JSON object")),
    }
}

fn contains_nul(value: &Json) -> bool {
    match value {
        Json::String(text) => text.contains('\0'),
        Json::Array(items) => items.iter().any(contains_nul),
        Json::Object(object) => object.iter().any(|(key, item)| key.contains('\0') || contains_nul(item)),
        _ => false,
    }
}

/// Returns the artifact kind an artifact-union body names (`model-artifact` when it names none).
pub fn artifact_kind_of(object: &Map<String, Json>) -> Result<&'static Kind, ApiError> {
    match object.get("artifactType") {
        None | Some(Json::Null) => Ok(&MODEL_ARTIFACT),
        Some(Json::String(artifact_type)) => parse_artifact_type(artifact_type),
        Some(_) => Err(ApiError::bad_request("artifactType must be a string")),
    }
}

/// Parses an `artifactType` value, in a body or a query parameter.
pub fn parse_artifact_type(artifact_type: &str) -> Result<&'static Kind, ApiError> {
    artifact_kind(artifact_type).ok_or_else(|| {
        let known: Vec<&str> = ARTIFACT_KINDS.iter().filter_map(|kind| kind.artifact_type).collect();
        ApiError::bad_request(format!("invalid artifactType \"{artifact_type}\": expected one of {}", known.join(", ")))
    })
}

/// Decodes a body of `kind` against `schema`; `preset` fields (parent ids from the path) are applied
/// before the required-field check.
pub fn decode(
    kind: &'static Kind,
    object: Map<String, Json>,
    schema: BodySchema,
    preset: &[(&'static str, i64)],
) -> Result<Decoded, ApiError> {
    let mut values = BTreeMap::new();
    let mut properties = None;
    let mut id = None;
    for (key, value) in object {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "customProperties" => properties = Some(decode_properties(value)?),
            "artifactType" if kind.artifact_type.is_some() => {
                if value.as_str() != kind.artifact_type {
                    return Err(ApiError::bad_request(format!(
                        "artifactType cannot be changed from \"{}\"",
                        kind.artifact_type.unwrap_or_default()
                    )));
                }
            }
            "id" if schema == BodySchema::Full => id = Some(parse_id("id", &value)?),
            read_only if schema == BodySchema::Full && READ_ONLY_KEYS.contains(&read_only) => {}
            _ => {
                let field = kind.field(&key).filter(|field| schema.accepts(field));
                let Some(field) = field else {
                    return Err(ApiError::bad_request(unknown_field(&key)));
                };
                if !field.on_create && !field.on_update {
                    continue;
                }
                values.insert(field.wire, decode_value(field.wire, field.ty, value)?);
            }
        }
    }
    for (wire, preset_id) in preset {
        values.insert(*wire, Scalar::Int(*preset_id));
    }
    if schema != BodySchema::Update && id.is_none() {
        for field in kind.fields.iter().filter(|field| field.required) {
            match values.get(field.wire) {
                None => return Err(ApiError::required(field.wire)),
                Some(Scalar::Text(text)) if text.is_empty() => return Err(ApiError::required(field.wire)),
                _ => {}
            }
        }
    }
    Ok(Decoded { draft: Draft { values, properties }, id })
}

fn type_error(field: &str, expected: &str) -> ApiError {
    ApiError::bad_request(format!("json: invalid value for field \"{field}\": expected {expected}"))
}

/// Parses an id given as a decimal string (or a JSON integer).
pub fn parse_id(field: &str, value: &Json) -> Result<i64, ApiError> {
    let text = match value {
        Json::String(text) => text.clone(),
        Json::Number(number) => number.to_string(),
        _ => return Err(type_error(field, "an id string")),
    };
    parse_id_text(&text)
        .ok_or_else(|| ApiError::bad_request(format!("invalid {field} \"{text}\": expected a positive integer id")))
}

/// Parses an id matching `^[1-9][0-9]{0,8}$`.
pub fn parse_id_text(text: &str) -> Option<i64> {
    let valid =
        !text.is_empty() && text.len() <= 9 && text.bytes().all(|byte| byte.is_ascii_digit()) && !text.starts_with('0');
    valid.then(|| text.parse().ok()).flatten()
}

fn decode_value(field: &str, field_type: FieldType, value: Json) -> Result<Scalar, ApiError> {
    match field_type {
        FieldType::Text => match value {
            Json::String(text) => Ok(Scalar::Text(text)),
            _ => Err(type_error(field, "a string")),
        },
        FieldType::Enum(allowed) => match value {
            Json::String(text) if allowed.contains(&text.as_str()) => Ok(Scalar::Text(text)),
            Json::String(text) => Err(ApiError::bad_request(format!(
                "invalid value \"{text}\" for field \"{field}\": expected one of {}",
                allowed.join(", ")
            ))),
            _ => Err(type_error(field, "a string")),
        },
        FieldType::Id(_) => parse_id(field, &value).map(Scalar::Int),
        FieldType::Millis | FieldType::Integer => {
            let parsed = match &value {
                Json::String(text) => text.parse::<i64>().ok(),
                Json::Number(number) => number.as_i64(),
                _ => None,
            };
            parsed.map(Scalar::Int).ok_or_else(|| type_error(field, "an integer"))
        }
        FieldType::Double => value.as_f64().map(Scalar::Double).ok_or_else(|| type_error(field, "a number")),
        FieldType::TextList => match value {
            Json::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    Json::String(text) => Ok(text),
                    _ => Err(type_error(field, "an array of strings")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Scalar::List),
            _ => Err(type_error(field, "an array of strings")),
        },
    }
}

fn decode_properties(value: Json) -> Result<Properties, ApiError> {
    let Json::Object(object) = value else {
        return Err(type_error("customProperties", "an object"));
    };
    object.into_iter().map(|(name, value)| Ok((name.clone(), decode_metadata(&name, value)?))).collect()
}

/// Decodes one `MetadataValue` (`additionalProperties: false`, both keys required).
fn decode_metadata(name: &str, value: Json) -> Result<MetaValue, ApiError> {
    let invalid = |detail: &str| ApiError::bad_request(format!("invalid customProperties.{name}: {detail}"));
    let Json::Object(mut object) = value else {
        return Err(invalid("expected an object with metadataType"));
    };
    let metadata_type = match object.remove("metadataType") {
        Some(Json::String(metadata_type)) => metadata_type,
        _ => return Err(invalid("metadataType is required")),
    };
    let (value_key, decoded) = match metadata_type.as_str() {
        "MetadataStringValue" => (
            "string_value",
            object.remove("string_value").and_then(|v| v.as_str().map(|text| MetaValue::String(text.to_owned()))),
        ),
        "MetadataIntValue" => (
            "int_value",
            object
                .remove("int_value")
                .and_then(|v| match v {
                    Json::String(text) => text.parse::<i64>().ok(),
                    Json::Number(number) => number.as_i64(),
                    _ => None,
                })
                .map(MetaValue::Int),
        ),
        "MetadataDoubleValue" => {
            ("double_value", object.remove("double_value").and_then(|v| v.as_f64()).map(MetaValue::Double))
        }
        "MetadataBoolValue" => {
            ("bool_value", object.remove("bool_value").and_then(|v| v.as_bool()).map(MetaValue::Bool))
        }
        "MetadataStructValue" => (
            "struct_value",
            object.remove("struct_value").and_then(|v| v.as_str().map(|text| MetaValue::Struct(text.to_owned()))),
        ),
        "MetadataProtoValue" => {
            let type_url = object.remove("type").and_then(|v| v.as_str().map(str::to_owned));
            let encoded = object.remove("proto_value").and_then(|v| v.as_str().map(str::to_owned));
            (
                "type and proto_value",
                type_url.zip(encoded).map(|(type_url, value)| MetaValue::Proto { type_url, value }),
            )
        }
        other => return Err(invalid(&format!("unknown metadataType \"{other}\""))),
    };
    if let Some(extra) = object.keys().next() {
        return Err(invalid(&format!("unknown field \"{extra}\" for {metadata_type}")));
    }
    decoded.ok_or_else(|| invalid(&format!("{metadata_type} needs a valid {value_key}")))
}

/// A record rendered as Kubeflow JSON of one API version, serialized straight into the response.
pub struct Wire<'a> {
    pub record: &'a Record,
    pub version: WireVersion,
}

impl Serialize for Wire<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let record = self.record;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", &record.id.to_string())?;
        if let Some(artifact_type) = record.kind.artifact_type {
            map.serialize_entry("artifactType", artifact_type)?;
        }
        for field in record.kind.fields {
            let Some(scalar) = record.values.get(field.wire) else { continue };
            match (field.ty, scalar) {
                (FieldType::Id(_) | FieldType::Millis, Scalar::Int(number)) => {
                    map.serialize_entry(field.wire, &number.to_string())?;
                }
                (FieldType::Integer, Scalar::Int(number)) if self.version == WireVersion::V1 => {
                    map.serialize_entry(field.wire, &number.to_string())?;
                }
                (_, Scalar::Int(number)) => map.serialize_entry(field.wire, number)?,
                (_, Scalar::Double(number)) => map.serialize_entry(field.wire, number)?,
                (_, Scalar::Text(text)) => map.serialize_entry(field.wire, text)?,
                (_, Scalar::List(items)) => map.serialize_entry(field.wire, items)?,
            }
        }
        map.serialize_entry("createTimeSinceEpoch", &record.create_time.to_string())?;
        map.serialize_entry("lastUpdateTimeSinceEpoch", &record.update_time.to_string())?;
        map.serialize_entry("customProperties", &WireProperties(&record.properties))?;
        map.end()
    }
}

struct WireProperties<'a>(&'a Properties);

impl Serialize for WireProperties<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, &WireMetadata(value))?;
        }
        map.end()
    }
}

struct WireMetadata<'a>(&'a MetaValue);

impl Serialize for WireMetadata<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        match self.0 {
            MetaValue::String(text) => {
                map.serialize_entry("metadataType", "MetadataStringValue")?;
                map.serialize_entry("string_value", text)?;
            }
            MetaValue::Int(number) => {
                map.serialize_entry("metadataType", "MetadataIntValue")?;
                map.serialize_entry("int_value", &number.to_string())?;
            }
            MetaValue::Double(number) => {
                map.serialize_entry("metadataType", "MetadataDoubleValue")?;
                map.serialize_entry("double_value", number)?;
            }
            MetaValue::Bool(flag) => {
                map.serialize_entry("metadataType", "MetadataBoolValue")?;
                map.serialize_entry("bool_value", flag)?;
            }
            MetaValue::Struct(encoded) => {
                map.serialize_entry("metadataType", "MetadataStructValue")?;
                map.serialize_entry("struct_value", encoded)?;
            }
            MetaValue::Proto { type_url, value } => {
                map.serialize_entry("metadataType", "MetadataProtoValue")?;
                map.serialize_entry("type", type_url)?;
                map.serialize_entry("proto_value", value)?;
            }
        }
        map.end()
    }
}

/// A list body: `items` plus the three `BaseResourceList` fields, all always present.
#[derive(serde::Serialize)]
pub struct ListBody<'a> {
    pub items: Vec<Wire<'a>>,
    #[serde(rename = "nextPageToken")]
    pub next_page_token: String,
    #[serde(rename = "pageSize")]
    pub page_size: u32,
    pub size: usize,
}

/// Upstream's message for an unknown key, with a pointer to the governance API for its fields.
fn unknown_field(key: &str) -> String {
    if GOVERNANCE_KEYS.contains(&key) {
        return format!(
            "json: unknown field \"{key}\" ({key} is governed: change it through {})",
            crate::api::governance::BASE_PATH
        );
    }
    format!("json: unknown field \"{key}\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::schema::{MODEL_VERSION, REGISTERED_MODEL};

    fn object(text: &str) -> Map<String, Json> {
        parse_object(text.as_bytes()).expect("object")
    }

    #[test]
    fn unknown_and_required_fields() {
        let error =
            decode(&REGISTERED_MODEL, object(r#"{"name":"m","ext_id":"x"}"#), BodySchema::Create, &[]).unwrap_err();
        assert_eq!(error.message, "json: unknown field \"ext_id\"");
        let error = decode(&REGISTERED_MODEL, object(r#"{"description":"d"}"#), BodySchema::Create, &[]).unwrap_err();
        assert_eq!(error.status, 422);
        assert_eq!(error.message, "required field 'name' is zero value.");
        let error = decode(&REGISTERED_MODEL, object(r#"{"name":"renamed"}"#), BodySchema::Update, &[]).unwrap_err();
        assert_eq!(error.message, "json: unknown field \"name\"");
    }

    #[test]
    fn typed_values_and_properties() {
        let body = r#"{"name":"v1","registeredModelId":"5","customProperties":{
            "a":{"metadataType":"MetadataIntValue","int_value":"42"},
            "b":{"metadataType":"MetadataBoolValue","bool_value":true}}}"#;
        let decoded = decode(&MODEL_VERSION, object(body), BodySchema::Create, &[]).expect("decodes");
        assert_eq!(decoded.draft.values["registeredModelId"], Scalar::Int(5));
        let properties = decoded.draft.properties.expect("properties");
        assert_eq!(properties["a"], MetaValue::Int(42));
        let bad = r#"{"name":"m","customProperties":{"a":{"metadataType":"MetadataIntValue","int_value":"4","x":1}}}"#;
        assert!(decode(&REGISTERED_MODEL, object(bad), BodySchema::Create, &[]).is_err());
        assert!(parse_object(b"{\"name\":\"a\\u0000b\"}").is_err());
    }

    #[test]
    fn ids_follow_the_wire_pattern() {
        assert_eq!(parse_id_text("17"), Some(17));
        assert_eq!(parse_id_text("0"), None);
        assert_eq!(parse_id_text("017"), None);
        assert_eq!(parse_id_text("1234567890"), None);
        assert_eq!(parse_id_text("-1"), None);
    }
}
