//! Entity descriptors: one static table per registry entity kind.
//!
//! Each [`Kind`] names its SQL table and lists its [`Field`]s: the wire (JSON) name, the column, the value
//! type, whether the field is accepted on create and on update, whether it is required, and its default.
//! The same table drives the SQL the store writes, the strict JSON decoding and rendering of the API, and
//! the mapping of `filterQuery` property names to columns, so the three can never disagree.
//!
//! Every kind has its own typed table (`registered_model`, `model_version`, `artifact`, …); the five
//! artifact kinds share the `artifact` table and are told apart by its `artifact_type` column. Fields
//! common to every kind (`name`, `description`, `externalId`) come first in [`Kind::fields`].

/// The value type of a field, on the wire and in its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// JSON string, TEXT column.
    Text,
    /// Decimal id as a JSON string, BIGINT column; references a row of `kind` when set.
    Id(&'static Kind),
    /// Milliseconds since epoch as a JSON string, BIGINT column.
    Millis,
    /// JSON integer, BIGINT column.
    Integer,
    /// JSON number, DOUBLE column.
    Double,
    /// One of a closed set of strings, TEXT column.
    Enum(&'static [&'static str]),
    /// JSON array of strings, stored as a JSON text column.
    TextList,
}

/// One wire field of a kind and the column that stores it.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub wire: &'static str,
    pub column: &'static str,
    pub ty: FieldType,
    /// Accepted in the create body.
    pub on_create: bool,
    /// Accepted in the update (PATCH) body.
    pub on_update: bool,
    /// Missing or empty on create is a 422.
    pub required: bool,
    /// Stored on create when the body leaves the field out.
    pub default: Option<&'static str>,
}

impl Field {
    const fn new(wire: &'static str, column: &'static str, ty: FieldType) -> Self {
        Field { wire, column, ty, on_create: true, on_update: true, required: false, default: None }
    }
    const fn create_only(mut self) -> Self {
        self.on_update = false;
        self
    }
    const fn read_only(mut self) -> Self {
        self.on_create = false;
        self.on_update = false;
        self
    }
    const fn required(mut self) -> Self {
        self.required = true;
        self
    }
    const fn default(mut self, value: &'static str) -> Self {
        self.default = Some(value);
        self
    }
}

/// The parent that scopes a child's name (`parentResourceId` in find endpoints).
#[derive(Debug, Clone, Copy)]
pub struct Parent {
    /// Column holding the parent id.
    pub column: &'static str,
    pub kind: &'static Kind,
}

/// An entity kind of the registry.
#[derive(Debug)]
pub struct Kind {
    /// Human name used in error messages ("registered model").
    pub label: &'static str,
    pub table: &'static str,
    /// `entity_kind` of this kind's rows in the `custom_property` table (one per table).
    pub property_kind: i16,
    /// For artifact kinds: the `artifactType` discriminator value.
    pub artifact_type: Option<&'static str>,
    /// The parent that scopes names, if names are unique per parent rather than per kind.
    pub parent: Option<Parent>,
    /// Whether a missing name is generated (children) rather than rejected (top-level kinds).
    pub generated_name: bool,
    pub fields: &'static [Field],
}

/// Kinds are static singletons: two kinds are equal when they are the same descriptor.
impl PartialEq for Kind {
    fn eq(&self, other: &Kind) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for Kind {}

impl Kind {
    /// Returns the field with this wire name.
    pub fn field(&self, wire: &str) -> Option<&'static Field> {
        self.fields.iter().find(|field| field.wire == wire)
    }

    /// Whether this kind is stored in the shared `artifact` table.
    pub fn is_artifact(&self) -> bool {
        self.table == "artifact"
    }

    /// The value of the `artifact` table's `artifact_type` column for rows of this kind; `None` for
    /// [`ANY_ARTIFACT`] (every type) and for kinds with their own table.
    pub fn stored_artifact_type(&self) -> Option<&'static str> {
        self.artifact_type.filter(|_| self.is_artifact())
    }
}

const NAME: Field = Field::new("name", "name", FieldType::Text).create_only();
const DESCRIPTION: Field = Field::new("description", "description", FieldType::Text);
const EXTERNAL_ID: Field = Field::new("externalId", "external_id", FieldType::Text);

const MODEL_STATES: &[&str] = &["LIVE", "ARCHIVED"];
const ARTIFACT_STATES: &[&str] =
    &["UNKNOWN", "PENDING", "LIVE", "MARKED_FOR_DELETION", "DELETED", "ABANDONED", "REFERENCE"];
const EXECUTION_STATES: &[&str] = &["UNKNOWN", "NEW", "RUNNING", "COMPLETE", "FAILED", "CACHED", "CANCELED"];
const RUN_STATUSES: &[&str] = &["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"];
const PARAMETER_TYPES: &[&str] = &["string", "number", "boolean", "object"];
const DESIRED_STATES: &[&str] = &["DEPLOYED", "UNDEPLOYED"];

pub static REGISTERED_MODEL: Kind = Kind {
    label: "registered model",
    table: "registered_model",
    property_kind: 1,
    artifact_type: None,
    parent: None,
    generated_name: false,
    fields: &[
        NAME.required(),
        DESCRIPTION,
        EXTERNAL_ID,
        Field::new("owner", "owner", FieldType::Text),
        Field::new("state", "state", FieldType::Enum(MODEL_STATES)).default("LIVE"),
        Field::new("readme", "readme", FieldType::Text),
        Field::new("maturity", "maturity", FieldType::Text),
        Field::new("language", "language", FieldType::TextList),
        Field::new("tasks", "tasks", FieldType::TextList),
        Field::new("provider", "provider", FieldType::Text),
        Field::new("logo", "logo", FieldType::Text),
        Field::new("license", "license", FieldType::Text),
        Field::new("licenseLink", "license_link", FieldType::Text),
        Field::new("libraryName", "library_name", FieldType::Text),
    ],
};

pub static MODEL_VERSION: Kind = Kind {
    label: "model version",
    table: "model_version",
    property_kind: 2,
    artifact_type: None,
    parent: Some(Parent { column: "registered_model_id", kind: &REGISTERED_MODEL }),
    generated_name: false,
    fields: &[
        NAME.required(),
        DESCRIPTION,
        EXTERNAL_ID,
        Field::new("registeredModelId", "registered_model_id", FieldType::Id(&REGISTERED_MODEL))
            .create_only()
            .required(),
        Field::new("author", "author", FieldType::Text),
        Field::new("state", "state", FieldType::Enum(MODEL_STATES)).default("LIVE"),
    ],
};

/// Builds an artifact kind: the common fields, the experiment links, then the kind's own fields.
macro_rules! artifact_kind {
    ($label:literal, $artifact_type:literal, [$($field:expr),* $(,)?]) => {
        Kind {
            label: $label,
            table: "artifact",
            property_kind: 3,
            artifact_type: Some($artifact_type),
            parent: Some(Parent { column: "model_version_id", kind: &MODEL_VERSION }),
            generated_name: true,
            fields: &[
                NAME,
                DESCRIPTION,
                EXTERNAL_ID,
                Field::new("experimentId", "experiment_id", FieldType::Id(&EXPERIMENT)).read_only(),
                Field::new("experimentRunId", "experiment_run_id", FieldType::Id(&EXPERIMENT_RUN)).read_only(),
                $($field,)*
            ],
        }
    };
}

const URI: Field = Field::new("uri", "uri", FieldType::Text);
const ARTIFACT_STATE: Field = Field::new("state", "state", FieldType::Enum(ARTIFACT_STATES)).default("UNKNOWN");

pub static MODEL_ARTIFACT: Kind = artifact_kind!(
    "model artifact",
    "model-artifact",
    [
        URI,
        ARTIFACT_STATE,
        Field::new("modelFormatName", "model_format_name", FieldType::Text),
        Field::new("modelFormatVersion", "model_format_version", FieldType::Text),
        Field::new("storageKey", "storage_key", FieldType::Text),
        Field::new("storagePath", "storage_path", FieldType::Text),
        Field::new("serviceAccountName", "service_account_name", FieldType::Text),
        Field::new("modelSourceKind", "model_source_kind", FieldType::Text),
        Field::new("modelSourceClass", "model_source_class", FieldType::Text),
        Field::new("modelSourceGroup", "model_source_group", FieldType::Text),
        Field::new("modelSourceId", "model_source_id", FieldType::Text),
        Field::new("modelSourceName", "model_source_name", FieldType::Text),
    ]
);

pub static DOC_ARTIFACT: Kind = artifact_kind!("doc artifact", "doc-artifact", [URI, ARTIFACT_STATE]);

pub static DATASET_ARTIFACT: Kind = artifact_kind!(
    "dataset artifact",
    "dataset-artifact",
    [
        URI,
        ARTIFACT_STATE,
        Field::new("digest", "digest", FieldType::Text),
        Field::new("sourceType", "source_type", FieldType::Text),
        Field::new("source", "source", FieldType::Text),
        Field::new("schema", "dataset_schema", FieldType::Text),
        Field::new("profile", "profile", FieldType::Text),
    ]
);

const METRIC_VALUE: Field = Field::new("value", "metric_value", FieldType::Double);
const METRIC_TIMESTAMP: Field = Field::new("timestamp", "timestamp_ms", FieldType::Millis);
const METRIC_STEP: Field = Field::new("step", "step", FieldType::Integer);

pub static METRIC: Kind =
    artifact_kind!("metric", "metric", [ARTIFACT_STATE, METRIC_VALUE, METRIC_TIMESTAMP, METRIC_STEP]);

pub static PARAMETER: Kind = artifact_kind!(
    "parameter",
    "parameter",
    [
        ARTIFACT_STATE,
        Field::new("value", "parameter_value", FieldType::Text),
        Field::new("parameterType", "parameter_type", FieldType::Enum(PARAMETER_TYPES)).default("string"),
    ]
);

/// The artifact kinds, in the order of the `artifactType` enum.
pub static ARTIFACT_KINDS: [&Kind; 5] = [&MODEL_ARTIFACT, &DOC_ARTIFACT, &DATASET_ARTIFACT, &METRIC, &PARAMETER];

/// Returns the artifact kind with this `artifactType` value.
pub fn artifact_kind(artifact_type: &str) -> Option<&'static Kind> {
    ARTIFACT_KINDS.iter().copied().find(|kind| kind.artifact_type == Some(artifact_type))
}

/// The `artifact` table as a whole: gets and lists of every artifact type at once. Filters on it resolve
/// field names against every artifact kind.
pub static ANY_ARTIFACT: Kind = Kind {
    label: "artifact",
    table: "artifact",
    property_kind: 3,
    artifact_type: None,
    parent: Some(Parent { column: "model_version_id", kind: &MODEL_VERSION }),
    generated_name: true,
    fields: &[NAME, DESCRIPTION, EXTERNAL_ID],
};

/// One logged value of a metric of an experiment run; rendered as a `Metric`.
pub static METRIC_HISTORY: Kind = Kind {
    label: "metric history entry",
    table: "metric_history",
    property_kind: 4,
    artifact_type: Some("metric"),
    parent: Some(Parent { column: "experiment_run_id", kind: &EXPERIMENT_RUN }),
    generated_name: false,
    fields: &[
        NAME,
        DESCRIPTION,
        EXTERNAL_ID,
        Field::new("experimentId", "experiment_id", FieldType::Id(&EXPERIMENT)).read_only(),
        Field::new("experimentRunId", "experiment_run_id", FieldType::Id(&EXPERIMENT_RUN)).read_only(),
        ARTIFACT_STATE,
        METRIC_VALUE,
        METRIC_TIMESTAMP,
        METRIC_STEP,
    ],
};

pub static SERVING_ENVIRONMENT: Kind = Kind {
    label: "serving environment",
    table: "serving_environment",
    property_kind: 5,
    artifact_type: None,
    parent: None,
    generated_name: false,
    fields: &[NAME.required(), DESCRIPTION, EXTERNAL_ID],
};

pub static INFERENCE_SERVICE: Kind = Kind {
    label: "inference service",
    table: "inference_service",
    property_kind: 6,
    artifact_type: None,
    parent: Some(Parent { column: "serving_environment_id", kind: &SERVING_ENVIRONMENT }),
    generated_name: true,
    fields: &[
        NAME,
        DESCRIPTION,
        EXTERNAL_ID,
        Field::new("registeredModelId", "registered_model_id", FieldType::Id(&REGISTERED_MODEL))
            .create_only()
            .required(),
        Field::new("servingEnvironmentId", "serving_environment_id", FieldType::Id(&SERVING_ENVIRONMENT))
            .create_only()
            .required(),
        Field::new("modelVersionId", "model_version_id", FieldType::Id(&MODEL_VERSION)),
        Field::new("runtime", "runtime", FieldType::Text),
        Field::new("desiredState", "desired_state", FieldType::Enum(DESIRED_STATES)).default("DEPLOYED"),
    ],
};

pub static SERVE_MODEL: Kind = Kind {
    label: "serve model",
    table: "serve_model",
    property_kind: 7,
    artifact_type: None,
    parent: Some(Parent { column: "inference_service_id", kind: &INFERENCE_SERVICE }),
    generated_name: true,
    fields: &[
        NAME,
        DESCRIPTION,
        EXTERNAL_ID,
        Field::new("modelVersionId", "model_version_id", FieldType::Id(&MODEL_VERSION)).create_only().required(),
        Field::new("lastKnownState", "last_known_state", FieldType::Enum(EXECUTION_STATES)).default("UNKNOWN"),
    ],
};

pub static EXPERIMENT: Kind = Kind {
    label: "experiment",
    table: "experiment",
    property_kind: 8,
    artifact_type: None,
    parent: None,
    generated_name: false,
    fields: &[
        NAME.required(),
        DESCRIPTION,
        EXTERNAL_ID,
        Field::new("owner", "owner", FieldType::Text),
        Field::new("state", "state", FieldType::Enum(MODEL_STATES)).default("LIVE"),
    ],
};

pub static EXPERIMENT_RUN: Kind = Kind {
    label: "experiment run",
    table: "experiment_run",
    property_kind: 9,
    artifact_type: None,
    parent: Some(Parent { column: "experiment_id", kind: &EXPERIMENT }),
    generated_name: true,
    fields: &[
        NAME,
        DESCRIPTION,
        EXTERNAL_ID,
        Field::new("experimentId", "experiment_id", FieldType::Id(&EXPERIMENT)).create_only().required(),
        Field::new("startTimeSinceEpoch", "start_time", FieldType::Millis),
        Field::new("endTimeSinceEpoch", "end_time", FieldType::Millis),
        Field::new("status", "status", FieldType::Enum(RUN_STATUSES)).default("RUNNING"),
        Field::new("state", "state", FieldType::Enum(MODEL_STATES)).default("LIVE"),
        Field::new("owner", "owner", FieldType::Text),
    ],
};

/// Every concrete kind (each artifact type, not [`ANY_ARTIFACT`]).
pub static KINDS: [&Kind; 13] = [
    &REGISTERED_MODEL,
    &MODEL_VERSION,
    &MODEL_ARTIFACT,
    &DOC_ARTIFACT,
    &DATASET_ARTIFACT,
    &METRIC,
    &PARAMETER,
    &METRIC_HISTORY,
    &SERVING_ENVIRONMENT,
    &INFERENCE_SERVICE,
    &SERVE_MODEL,
    &EXPERIMENT,
    &EXPERIMENT_RUN,
];

/// One kind per table, children before parents: the order in which tables can be emptied.
pub static TABLES_CHILDREN_FIRST: [&Kind; 9] = [
    &SERVE_MODEL,
    &INFERENCE_SERVICE,
    &SERVING_ENVIRONMENT,
    &METRIC_HISTORY,
    &MODEL_ARTIFACT,
    &EXPERIMENT_RUN,
    &EXPERIMENT,
    &MODEL_VERSION,
    &REGISTERED_MODEL,
];
