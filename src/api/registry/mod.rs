//! The Kubeflow Model Registry API, `/api/model_registry/v1alpha3`, on top of [`RegistryStore`].
//!
//! The same routes are also mounted at `/api/model_registry/v1`, where upstream moved them and where
//! `model-registry` 0.3.15 and later send their requests.
//!
//! Every route of upstream's spec is here, wired to a handful of kind-generic handlers (find, list,
//! create, get, update, delete, artifact upsert) parameterized by the entity's [`Kind`]. Additions beyond
//! upstream, none of which changes an existing route: `DELETE` on registered models, versions and
//! artifacts; `NAME` ordering; `NOT`/`IS NULL`/`NOT IN`/`NOT LIKE` in `filterQuery`; a bounded default page
//! size; `ETag` on single-entity responses and `If-Match` on `PATCH` (412 when stale); and, when enabled in
//! the configuration, `POST /testing/reset` that empties the store for test suites.

pub mod openapi;
mod params;
pub mod permits;
pub mod wire;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};

use crate::api::error::ApiError;
use crate::app::AppState;
use crate::filter::{Expr, Literal, Property};
use crate::governance::kubeflow_guard;
use crate::pagination;
use crate::registry::permissions::{Level, Viewer};
use crate::registry::schema::{
    ANY_ARTIFACT, EXPERIMENT, EXPERIMENT_RUN, INFERENCE_SERVICE, Kind, METRIC_HISTORY, MODEL_ARTIFACT, MODEL_VERSION,
    REGISTERED_MODEL, SERVE_MODEL, SERVING_ENVIRONMENT,
};
use crate::registry::{Attach, ListQuery, OrderField, Record};
pub use params::PageLimits;
use params::{Params, equals};
use permits::Caller;
pub use wire::WireVersion;
use wire::{BodySchema, Decoded};

/// The base path of the registry API.
pub const BASE_PATH: &str = "/api/model_registry/v1alpha3";

/// The same API under the path `model-registry` clients use since 0.3.15 (upstream renamed the version).
pub const V1_BASE_PATH: &str = "/api/model_registry/v1";

type ApiResult = Result<Response, ApiError>;

/// What a route does. The router and the OpenAPI document are both built from [`ROUTES`].
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// `GET`: one entity by `name`/`externalId` (and `parentResourceId` for children).
    Find,
    /// `GET` a page, `POST` a create body.
    Collection,
    /// `GET` and `PATCH` one entity, and `DELETE` where supported.
    Item { deletable: bool },
    /// `GET` the children of `parent` and `POST` one under it.
    Children { parent: &'static Kind, body: BodySchema },
    /// `GET` the artifacts of a model version or experiment run and `POST` (upsert) one.
    Artifacts { owner: &'static Kind },
    /// `GET` the registered model an inference service serves.
    ServiceModel,
    /// `GET` the model version an inference service serves.
    ServiceVersion,
    /// `GET` the metric history of one experiment run.
    RunHistory,
    /// `GET` the metric history of every run.
    History,
}

/// One registry route: a path relative to [`BASE_PATH`], the entity kind it serves, and its shape.
#[derive(Debug)]
pub struct Route {
    pub path: &'static str,
    pub kind: &'static Kind,
    pub shape: Shape,
}

const fn route(path: &'static str, kind: &'static Kind, shape: Shape) -> Route {
    Route { path, kind, shape }
}

/// Every registry route.
pub static ROUTES: [Route; 34] = [
    route("/registered_model", &REGISTERED_MODEL, Shape::Find),
    route("/registered_models", &REGISTERED_MODEL, Shape::Collection),
    route("/registered_models/{id}", &REGISTERED_MODEL, Shape::Item { deletable: true }),
    route(
        "/registered_models/{id}/versions",
        &MODEL_VERSION,
        Shape::Children { parent: &REGISTERED_MODEL, body: BodySchema::Full },
    ),
    route("/model_version", &MODEL_VERSION, Shape::Find),
    route("/model_versions", &MODEL_VERSION, Shape::Collection),
    route("/model_versions/{id}", &MODEL_VERSION, Shape::Item { deletable: true }),
    route("/model_versions/{id}/artifacts", &ANY_ARTIFACT, Shape::Artifacts { owner: &MODEL_VERSION }),
    route("/model_artifact", &MODEL_ARTIFACT, Shape::Find),
    route("/model_artifacts", &MODEL_ARTIFACT, Shape::Collection),
    route("/model_artifacts/{id}", &MODEL_ARTIFACT, Shape::Item { deletable: true }),
    route("/artifact", &ANY_ARTIFACT, Shape::Find),
    route("/artifacts", &ANY_ARTIFACT, Shape::Collection),
    route("/artifacts/{id}", &ANY_ARTIFACT, Shape::Item { deletable: true }),
    route("/serving_environment", &SERVING_ENVIRONMENT, Shape::Find),
    route("/serving_environments", &SERVING_ENVIRONMENT, Shape::Collection),
    route("/serving_environments/{id}", &SERVING_ENVIRONMENT, Shape::Item { deletable: false }),
    route(
        "/serving_environments/{id}/inference_services",
        &INFERENCE_SERVICE,
        Shape::Children { parent: &SERVING_ENVIRONMENT, body: BodySchema::Create },
    ),
    route("/inference_service", &INFERENCE_SERVICE, Shape::Find),
    route("/inference_services", &INFERENCE_SERVICE, Shape::Collection),
    route("/inference_services/{id}", &INFERENCE_SERVICE, Shape::Item { deletable: false }),
    route("/inference_services/{id}/model", &REGISTERED_MODEL, Shape::ServiceModel),
    route("/inference_services/{id}/version", &MODEL_VERSION, Shape::ServiceVersion),
    route(
        "/inference_services/{id}/serves",
        &SERVE_MODEL,
        Shape::Children { parent: &INFERENCE_SERVICE, body: BodySchema::Create },
    ),
    route("/experiment", &EXPERIMENT, Shape::Find),
    route("/experiments", &EXPERIMENT, Shape::Collection),
    route("/experiments/{id}", &EXPERIMENT, Shape::Item { deletable: false }),
    route(
        "/experiments/{id}/experiment_runs",
        &EXPERIMENT_RUN,
        Shape::Children { parent: &EXPERIMENT, body: BodySchema::Full },
    ),
    route("/experiment_run", &EXPERIMENT_RUN, Shape::Find),
    route("/experiment_runs", &EXPERIMENT_RUN, Shape::Collection),
    route("/experiment_runs/metric_history", &METRIC_HISTORY, Shape::History),
    route("/experiment_runs/{id}", &EXPERIMENT_RUN, Shape::Item { deletable: false }),
    route("/experiment_runs/{id}/artifacts", &ANY_ARTIFACT, Shape::Artifacts { owner: &EXPERIMENT_RUN }),
    route("/experiment_runs/{id}/metric_history", &METRIC_HISTORY, Shape::RunHistory),
];

/// Returns the registry routes, relative to [`BASE_PATH`].
pub fn router(version: WireVersion, reset_endpoint: bool) -> Router<AppState> {
    let mut router = Router::new();
    for route in &ROUTES {
        router = router.route(route.path, method_router(version, route));
    }
    if reset_endpoint { router.route("/testing/reset", post(reset)) } else { router }
}

fn method_router(version: WireVersion, route: &Route) -> MethodRouter<AppState> {
    let kind = route.kind;
    match route.shape {
        Shape::Find => find(version, kind),
        Shape::Collection => collection(version, kind),
        Shape::Item { deletable: true } => item(version, kind).delete(delete_handler(kind)),
        Shape::Item { deletable: false } => item(version, kind),
        Shape::Children { parent, body } => children(version, kind, parent, body),
        Shape::Artifacts { owner } => attached_artifacts(version, owner),
        Shape::ServiceModel => get(move |state, caller, id| inference_service_model(state, caller, id, version)),
        Shape::ServiceVersion => get(move |state, caller, id| inference_service_version(state, caller, id, version)),
        Shape::RunHistory => get(move |state, id, params| run_metric_history(state, id, params, version)),
        Shape::History => get(move |state, params| metric_history(state, params, version)),
    }
}

fn find(version: WireVersion, kind: &'static Kind) -> MethodRouter<AppState> {
    get(move |State(state): State<AppState>, caller: Caller, params: Params| async move {
        find_one(&state, kind, &params, version, &caller).await
    })
}

fn collection(version: WireVersion, kind: &'static Kind) -> MethodRouter<AppState> {
    get(move |State(state): State<AppState>, caller: Caller, params: Params| async move {
        let extra = list_extras(kind, &params)?;
        list(&state, kind, &params, None, extra, version, caller.visible()).await
    })
    .post(move |State(state): State<AppState>, caller: Caller, body: Bytes| async move {
        caller.may_create_kind(kind)?;
        let object = wire::parse_object(&body)?;
        let kind = if kind == &ANY_ARTIFACT { wire::artifact_kind_of(&object)? } else { kind };
        let decoded = wire::decode(kind, object, BodySchema::Create, &[])?;
        caller.may_create(&state, kind, &decoded.draft).await?;
        let record = state.registry.create(kind, decoded.draft, Attach::Nothing).await?;
        Ok::<_, ApiError>(respond(StatusCode::CREATED, &record, version))
    })
}

fn item(version: WireVersion, kind: &'static Kind) -> MethodRouter<AppState> {
    get(move |State(state): State<AppState>, caller: Caller, Path(id): Path<String>| async move {
        let record = get_record(&state, kind, &id).await?;
        caller.require(&state, &record, Level::Read).await?;
        Ok::<_, ApiError>(respond(StatusCode::OK, &record, version))
    })
    .patch(
        move |State(state): State<AppState>,
              caller: Caller,
              Path(id): Path<String>,
              headers: HeaderMap,
              body: Bytes| async move { update(&state, &caller, kind, &id, &headers, &body, version).await },
    )
}

fn delete_handler(kind: &'static Kind) -> MethodRouter<AppState> {
    axum::routing::delete(move |State(state): State<AppState>, caller: Caller, Path(id): Path<String>| async move {
        let record = get_record(&state, kind, &id).await?;
        // Deleting a registered model takes manage; deleting a version or an artifact, edit.
        let level = if kind == &REGISTERED_MODEL { Level::Manage } else { Level::Edit };
        caller.require(&state, &record, level).await?;
        kubeflow_guard::check_delete(&state.governance, &record).await?;
        state.registry.delete(kind, record.id).await?;
        Ok::<_, ApiError>(StatusCode::NO_CONTENT.into_response())
    })
}

/// List and create children whose parent id is one of their fields (`registeredModelId`, …).
fn children(
    version: WireVersion,
    kind: &'static Kind,
    parent: &'static Kind,
    schema: BodySchema,
) -> MethodRouter<AppState> {
    let scope = kind.parent.expect("a child route's kind has a parent");
    // The parent id is a body field of some children (a version's `registeredModelId`) and a column of
    // others only (a serve's inference service).
    let parent_wire = kind.fields.iter().find(|field| field.column == scope.column).map(|field| field.wire);
    get(move |State(state): State<AppState>, caller: Caller, Path(id): Path<String>, params: Params| async move {
        let parent_id = path_id(&id)?;
        let parent_record = state.registry.get(parent, parent_id).await?;
        caller.require(&state, &parent_record, Level::Read).await?;
        let extra = list_extras(kind, &params)?;
        list(&state, kind, &params, Some((scope.column, parent_id)), extra, version, caller.visible()).await
    })
    .post(move |State(state): State<AppState>, caller: Caller, Path(id): Path<String>, body: Bytes| async move {
        let parent_id = path_id(&id)?;
        caller.may_create_kind(kind)?;
        let object = wire::parse_object(&body)?;
        let (preset, attach) = match parent_wire {
            Some(wire) => (vec![(wire, parent_id)], Attach::Nothing),
            None => (Vec::new(), Attach::Parent(parent_id)),
        };
        let decoded = wire::decode(kind, object, schema, &preset)?;
        caller.may_create(&state, kind, &decoded.draft).await?;
        let record = state.registry.create(kind, decoded.draft, attach).await?;
        Ok::<_, ApiError>(respond(StatusCode::CREATED, &record, version))
    })
}

/// List and upsert the artifacts of a model version or an experiment run.
fn attached_artifacts(version: WireVersion, owner: &'static Kind) -> MethodRouter<AppState> {
    get(move |State(state): State<AppState>, caller: Caller, Path(id): Path<String>, params: Params| async move {
        let owner_id = path_id(&id)?;
        let owner_record = state.registry.get(owner, owner_id).await?;
        caller.require(&state, &owner_record, Level::Read).await?;
        let column = if owner == &MODEL_VERSION { "model_version_id" } else { "experiment_run_id" };
        let extra = list_extras(&ANY_ARTIFACT, &params)?;
        list(&state, &ANY_ARTIFACT, &params, Some((column, owner_id)), extra, version, caller.visible()).await
    })
    .post(move |State(state): State<AppState>, caller: Caller, Path(id): Path<String>, body: Bytes| async move {
        let owner_id = path_id(&id)?;
        let object = wire::parse_object(&body)?;
        let kind = wire::artifact_kind_of(&object)?;
        let Decoded { draft, id } = wire::decode(kind, object, BodySchema::Full, &[])?;
        caller.require(&state, &state.registry.get(owner, owner_id).await?, Level::Edit).await?;
        if owner == &MODEL_VERSION {
            kubeflow_guard::check_artifacts_open(&state.governance, owner_id).await?;
        }
        if let Some(artifact_id) = id {
            caller.require(&state, &state.registry.get(kind, artifact_id).await?, Level::Edit).await?;
            let record = state.registry.update(kind, artifact_id, draft, None).await?;
            return Ok(respond(StatusCode::OK, &record, version));
        }
        let attach = if owner == &MODEL_VERSION { Attach::Parent(owner_id) } else { Attach::ExperimentRun(owner_id) };
        let record = state.registry.create(kind, draft, attach).await?;
        let status = if record.version > 1 { StatusCode::OK } else { StatusCode::CREATED };
        Ok::<_, ApiError>(respond(status, &record, version))
    })
}

/// Renders one record with its ETag.
fn respond(status: StatusCode, record: &Record, version: WireVersion) -> Response {
    let mut response = (status, axum::Json(wire::Wire { record, version })).into_response();
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", record.version)) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

/// A positive integer id from a path segment, or a 400 naming it.
pub(crate) fn path_id(text: &str) -> Result<i64, ApiError> {
    wire::parse_id_text(text)
        .ok_or_else(|| ApiError::bad_request(format!("invalid id \"{text}\": expected a positive integer id")))
}

/// Gets a record of `kind` by a path id (on a typed artifact route, only an artifact of that type).
async fn get_record(state: &AppState, kind: &'static Kind, id: &str) -> Result<Record, ApiError> {
    Ok(state.registry.get(kind, path_id(id)?).await?)
}

async fn update(
    state: &AppState,
    caller: &Caller,
    kind: &'static Kind,
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
    version: WireVersion,
) -> ApiResult {
    let id = path_id(id)?;
    let object = wire::parse_object(body)?;
    let expected_version = match headers.get(header::IF_MATCH) {
        None => None,
        Some(value) => parse_if_match(value)?,
    };
    let stored = state.registry.get(kind, id).await?;
    caller.require(state, &stored, Level::Edit).await?;
    // On `/artifacts/{id}` the stored type decides which fields the body may carry.
    let kind = stored.kind;
    let decoded = wire::decode(kind, object, BodySchema::Update, &[])?;
    kubeflow_guard::check_update(&state.governance, &stored, &decoded.draft).await?;
    let record = state.registry.update(kind, id, decoded.draft, expected_version).await?;
    Ok(respond(StatusCode::OK, &record, version))
}

/// Parses `If-Match`: `*` matches any version, otherwise one (possibly weak) ETag.
fn parse_if_match(value: &HeaderValue) -> Result<Option<i64>, ApiError> {
    let text = value.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Ok(None);
    }
    let tag = text.trim_start_matches("W/").trim_matches('"');
    tag.parse::<i64>()
        .map(Some)
        .map_err(|_| ApiError::bad_request(format!("invalid If-Match header {text:?}: expected an ETag of this API")))
}

/// Filters from the `name`, `externalId` and `artifactType` parameters of list routes.
fn list_extras(kind: &Kind, params: &Params) -> Result<Vec<Expr>, ApiError> {
    let mut extra = Vec::new();
    if let Some(name) = params.text("name")? {
        extra.push(equals("name", Literal::String(name.to_owned())));
    }
    if let Some(external_id) = params.text("externalId")? {
        extra.push(equals("externalId", Literal::String(external_id.to_owned())));
    }
    if kind.is_artifact()
        && let Some(artifact_type) = params.text("artifactType")?
    {
        wire::parse_artifact_type(artifact_type)?;
        extra.push(equals("artifactType", Literal::String(artifact_type.to_owned())));
    }
    Ok(extra)
}

async fn list(
    state: &AppState,
    kind: &'static Kind,
    params: &Params,
    parent: Option<(&'static str, i64)>,
    extra: Vec<Expr>,
    version: WireVersion,
    visible_to: Option<Viewer>,
) -> ApiResult {
    let (mut query, hash) = params.list_query(kind, parent, extra, state.page_limits)?;
    query.visible_to = visible_to;
    let page = state.registry.list(kind, &query).await?;
    let next_page_token = page.next.as_ref().map(|cursor| pagination::encode(cursor, &hash)).unwrap_or_default();
    let body = wire::ListBody {
        items: page.items.iter().map(|record| wire::Wire { record, version }).collect(),
        next_page_token,
        page_size: query.page_size,
        size: page.items.len(),
    };
    Ok(axum::Json(body).into_response())
}

/// Upstream's find rules: top-level kinds by `name` or `externalId`; children by `name` and
/// `parentResourceId`, or by `externalId`. Zero or several hits are a 404.
async fn find_one(
    state: &AppState,
    kind: &'static Kind,
    params: &Params,
    version: WireVersion,
    caller: &Caller,
) -> ApiResult {
    let name = params.text("name")?;
    let external_id = params.text("externalId")?;
    let parent_id = params.id("parentResourceId")?;
    let mut conditions = Vec::new();
    if let Some(external_id) = external_id {
        conditions.push(equals("externalId", Literal::String(external_id.to_owned())));
    }
    if let Some(name) = name {
        conditions.push(equals("name", Literal::String(name.to_owned())));
    }
    let scoped = kind.parent.is_some() && parent_id.is_some() && name.is_some();
    let valid = external_id.is_some() || (name.is_some() && (kind.parent.is_none() || scoped));
    if !valid {
        let needed =
            if kind.parent.is_some() { "name and parentResourceId, or externalId" } else { "name or externalId" };
        return Err(ApiError::bad_request(format!("invalid parameters: finding a {} needs {needed}", kind.label)));
    }
    let filter = Some(Expr::And(conditions));
    let mut scopes: Vec<Option<(&'static str, i64)>> = Vec::new();
    match (kind.parent, parent_id.filter(|_| scoped)) {
        (Some(parent), Some(parent_id)) => {
            scopes.push(Some((parent.column, parent_id)));
            if kind.is_artifact() {
                scopes.push(Some(("experiment_run_id", parent_id)));
            }
        }
        _ => scopes.push(None),
    }
    for parent in scopes {
        let query = ListQuery { filter: filter.clone(), parent, visible_to: caller.visible(), ..ListQuery::all(2) };
        let page = state.registry.list(kind, &query).await?;
        if let [record] = page.items.as_slice() {
            return Ok(respond(StatusCode::OK, record, version));
        }
    }
    let by = [name.map(|name| format!("name '{name}'")), external_id.map(|id| format!("externalId '{id}'"))]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" and ");
    Err(ApiError::not_found(format!("no single {} found with {by}", kind.label)))
}

async fn inference_service_model(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    version: WireVersion,
) -> ApiResult {
    let service = get_record(&state, &INFERENCE_SERVICE, &id).await?;
    let model_id = service.int("registeredModelId").unwrap_or_default();
    let model = state.registry.get(&REGISTERED_MODEL, model_id).await?;
    caller.require(&state, &model, Level::Read).await?;
    Ok(respond(StatusCode::OK, &model, version))
}

/// The version an inference service serves: its `modelVersionId`, else the model's latest version.
async fn inference_service_version(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    version: WireVersion,
) -> ApiResult {
    let service = get_record(&state, &INFERENCE_SERVICE, &id).await?;
    if let Some(version_id) = service.int("modelVersionId") {
        let model_version = state.registry.get(&MODEL_VERSION, version_id).await?;
        caller.require(&state, &model_version, Level::Read).await?;
        return Ok(respond(StatusCode::OK, &model_version, version));
    }
    let model_id = service.int("registeredModelId").unwrap_or_default();
    let query = ListQuery {
        parent: Some(("registered_model_id", model_id)),
        order: OrderField::CreateTime,
        descending: true,
        ..ListQuery::all(1)
    };
    let page = state.registry.list(&MODEL_VERSION, &query).await?;
    let latest = page
        .items
        .first()
        .ok_or_else(|| ApiError::not_found(format!("registered model {model_id} has no versions")))?;
    caller.require(&state, latest, Level::Read).await?;
    Ok(respond(StatusCode::OK, latest, version))
}

async fn run_metric_history(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
    version: WireVersion,
) -> ApiResult {
    let run_id = path_id(&id)?;
    state.registry.get(&EXPERIMENT_RUN, run_id).await?;
    let extra = history_extras(&params)?;
    list(&state, &METRIC_HISTORY, &params, Some(("experiment_run_id", run_id)), extra, version, None).await
}

async fn metric_history(State(state): State<AppState>, params: Params, version: WireVersion) -> ApiResult {
    let extra = history_extras(&params)?;
    list(&state, &METRIC_HISTORY, &params, None, extra, version, None).await
}

/// Filters from the `name` and `stepIds` (`1,2,3`) parameters of metric history routes.
fn history_extras(params: &Params) -> Result<Vec<Expr>, ApiError> {
    let mut extra = list_extras(&METRIC_HISTORY, params)?;
    if let Some(step_ids) = params.get("stepIds").filter(|text| !text.is_empty()) {
        let steps = step_ids
            .split(',')
            .map(|step| {
                let valid = !step.is_empty() && step.len() <= 9 && step.bytes().all(|byte| byte.is_ascii_digit());
                step.parse::<i64>().ok().filter(|_| valid).map(Literal::Int)
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ApiError::bad_request(format!("invalid stepIds \"{step_ids}\": expected e.g. 1,2,3")))?;
        let step = Property { path: vec!["step".to_owned()], suffix: None };
        extra.push(Expr::In { property: step, values: steps, negated: false });
    }
    Ok(extra)
}

async fn reset(State(state): State<AppState>) -> ApiResult {
    state.registry.reset().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
