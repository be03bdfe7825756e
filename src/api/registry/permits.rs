//! Per-model permission checks of the registry API (the rules are [`crate::registry::permissions`]').
//!
//! [`Caller`] is the request's identity as permissions see it (an extractor; the auth guard put the
//! identity there). Handlers ask it for the list filter ([`Caller::visible`]), and to [`Caller::require`] a
//! level on the model an entity belongs to: a registered model itself, a version's model, an artifact's
//! version's model. An entity of no model (experiments, serving, unattached artifacts) needs no level,
//! except that a token restricted to named models may not change it.
//!
//! A caller who may not read a model gets the 404 a missing one would, so ids do not reveal private
//! models; one who may read but not change it gets a 403.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;

use crate::api::error::ApiError;
use crate::app::AppState;
use crate::auth::{Identity, Role};
use crate::registry::permissions::{Level, ModelPermissions, Viewer};
use crate::registry::schema::{INFERENCE_SERVICE, Kind, MODEL_VERSION, REGISTERED_MODEL};
use crate::registry::{Draft, Record, Scalar};

/// Who is asking; see the module docs.
#[derive(Debug, Clone)]
pub struct Caller {
    viewer: Viewer,
    subject: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Caller, Self::Rejection> {
        Ok(Caller::of(parts.extensions.get::<Identity>()))
    }
}

impl Caller {
    /// The caller for an identity (`None`: anonymous, who sees what everyone may read).
    pub fn of(identity: Option<&Identity>) -> Caller {
        let Some(identity) = identity else {
            return Caller { viewer: Viewer::default(), subject: "anonymous".to_owned() };
        };
        let user = std::iter::once(format!("user:{}", identity.subject));
        let viewer = Viewer {
            principals: user.chain(identity.groups.iter().map(|group| format!("group:{group}"))).collect(),
            models: identity.models.clone(),
            admin: identity.role == Role::Admin,
        };
        Caller { viewer, subject: identity.subject.clone() }
    }

    /// The filter for lists; `None` when the caller sees every row.
    pub fn visible(&self) -> Option<Viewer> {
        (!self.viewer.sees_everything()).then(|| self.viewer.clone())
    }

    /// Requires `level` on the model `record` belongs to (see the module docs).
    pub async fn require(&self, state: &AppState, record: &Record, level: Level) -> Result<(), ApiError> {
        match model_of(state, record).await? {
            Some(model) => {
                let missing = || ApiError::not_found(format!("{} {} not found", record.kind.label, record.id));
                self.require_model(state, model, level, missing).await.map(drop)
            }
            None => self.require_unscoped(level),
        }
    }

    /// Requires `level` on registered model `model`; `missing` is the error for a caller who may not read
    /// it. Returns the model's permissions.
    pub async fn require_model(
        &self,
        state: &AppState,
        model: i64,
        level: Level,
        missing: impl FnOnce() -> ApiError,
    ) -> Result<ModelPermissions, ApiError> {
        let permissions = state.registry.permissions(model).await?;
        let held = permissions.level_for(&self.viewer);
        if held < Level::Read {
            return Err(missing());
        }
        if held < level {
            let message = format!(
                "{} may not {} registered model {model} (their permission on it is {})",
                self.subject,
                if level == Level::Manage { "manage" } else { "change" },
                held.as_str()
            );
            return Err(ApiError::new(StatusCode::FORBIDDEN, message));
        }
        Ok(permissions)
    }

    /// Entities of no model: a token restricted to named models reads them but changes none.
    fn require_unscoped(&self, level: Level) -> Result<(), ApiError> {
        match &self.viewer.models {
            Some(models) if level > Level::Read => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("{} is restricted to the registered models {models:?}", self.subject),
            )),
            _ => Ok(()),
        }
    }

    /// Checks, before the body is read, that the caller may create entities of `kind` at all: a token
    /// restricted to named models creates only registered models and versions.
    pub fn may_create_kind(&self, kind: &Kind) -> Result<(), ApiError> {
        if kind == &REGISTERED_MODEL || kind == &MODEL_VERSION { Ok(()) } else { self.require_unscoped(Level::Edit) }
    }

    /// Checks a create of `kind`: a registered model's name against a token's restriction, edit on the
    /// model a version is registered under, read on the model an inference service serves.
    pub async fn may_create(&self, state: &AppState, kind: &Kind, draft: &Draft) -> Result<(), ApiError> {
        let model = |wire: &str| match draft.values.get(wire) {
            Some(Scalar::Int(id)) => Some(*id),
            _ => None,
        };
        if kind == &REGISTERED_MODEL {
            return self.may_name(draft);
        }
        if kind == &MODEL_VERSION
            && let Some(model) = model("registeredModelId")
        {
            let missing = || ApiError::not_found(format!("registered model {model} not found"));
            return self.require_model(state, model, Level::Edit, missing).await.map(drop);
        }
        self.require_unscoped(Level::Edit)?;
        if kind == &INFERENCE_SERVICE
            && let Some(model) = model("registeredModelId")
        {
            let missing = || ApiError::not_found(format!("registered model {model} not found"));
            self.require_model(state, model, Level::Read, missing).await?;
        }
        Ok(())
    }

    /// A restricted token may create a registered model only under one of its models' names (names
    /// cannot change afterwards).
    fn may_name(&self, draft: &Draft) -> Result<(), ApiError> {
        let (Some(models), Some(Scalar::Text(name))) = (&self.viewer.models, draft.values.get("name")) else {
            return Ok(());
        };
        if models.contains(name) {
            return Ok(());
        }
        let message = format!("{} is restricted to the registered models {models:?}, not {name:?}", self.subject);
        Err(ApiError::new(StatusCode::FORBIDDEN, message))
    }
}

/// The registered model an entity belongs to, if any.
async fn model_of(state: &AppState, record: &Record) -> Result<Option<i64>, ApiError> {
    if record.kind == &REGISTERED_MODEL {
        return Ok(Some(record.id));
    }
    if record.kind == &MODEL_VERSION {
        return Ok(record.parent);
    }
    match record.parent {
        Some(version) if record.kind.is_artifact() => Ok(state.registry.get(&MODEL_VERSION, version).await?.parent),
        _ => Ok(None),
    }
}
