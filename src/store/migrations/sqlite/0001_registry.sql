-- modelcat registry schema: one typed table per entity kind, custom properties in one typed table.
-- Ids are INTEGER PRIMARY KEY (rowid). Times are milliseconds since epoch. row_version counts updates (ETag).
-- properties is the entity's custom-property map serialized for reads; custom_property holds the same
-- values typed and indexed for filters. Both are written in the same transaction.

CREATE TABLE registered_model (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    description TEXT,
    external_id TEXT,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    row_version INTEGER NOT NULL DEFAULT 1,
    properties TEXT NOT NULL DEFAULT '{}',
    owner TEXT,
    state TEXT,
    readme TEXT,
    maturity TEXT,
    language TEXT,
    tasks TEXT,
    provider TEXT,
    logo TEXT,
    license TEXT,
    license_link TEXT,
    library_name TEXT
);
CREATE UNIQUE INDEX registered_model_name ON registered_model (name);
CREATE UNIQUE INDEX registered_model_external_id ON registered_model (external_id);
CREATE INDEX registered_model_create_time ON registered_model (create_time, id);
CREATE INDEX registered_model_update_time ON registered_model (update_time, id);

CREATE TABLE model_version (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    registered_model_id INTEGER NOT NULL REFERENCES registered_model (id),
    name TEXT NOT NULL,
    description TEXT,
    external_id TEXT,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    row_version INTEGER NOT NULL DEFAULT 1,
    properties TEXT NOT NULL DEFAULT '{}',
    author TEXT,
    state TEXT
);
CREATE UNIQUE INDEX model_version_name ON model_version (registered_model_id, name);
CREATE UNIQUE INDEX model_version_external_id ON model_version (external_id);
CREATE INDEX model_version_create_time ON model_version (create_time, id);
CREATE INDEX model_version_update_time ON model_version (update_time, id);

CREATE TABLE experiment (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    description TEXT,
    external_id TEXT,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    row_version INTEGER NOT NULL DEFAULT 1,
    properties TEXT NOT NULL DEFAULT '{}',
    owner TEXT,
    state TEXT
);
CREATE UNIQUE INDEX experiment_name ON experiment (name);
CREATE UNIQUE INDEX experiment_external_id ON experiment (external_id);

CREATE TABLE experiment_run (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment_id INTEGER NOT NULL REFERENCES experiment (id),
    name TEXT NOT NULL,
    description TEXT,
    external_id TEXT,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    row_version INTEGER NOT NULL DEFAULT 1,
    properties TEXT NOT NULL DEFAULT '{}',
    start_time INTEGER,
    end_time INTEGER,
    status TEXT,
    state TEXT,
    owner TEXT
);
CREATE UNIQUE INDEX experiment_run_name ON experiment_run (experiment_id, name);
CREATE UNIQUE INDEX experiment_run_external_id ON experiment_run (external_id);

CREATE TABLE artifact (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    artifact_type TEXT NOT NULL,
    model_version_id INTEGER REFERENCES model_version (id),
    experiment_id INTEGER REFERENCES experiment (id),
    experiment_run_id INTEGER REFERENCES experiment_run (id),
    name TEXT NOT NULL,
    description TEXT,
    external_id TEXT,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    row_version INTEGER NOT NULL DEFAULT 1,
    properties TEXT NOT NULL DEFAULT '{}',
    uri TEXT,
    state TEXT,
    model_format_name TEXT,
    model_format_version TEXT,
    storage_key TEXT,
    storage_path TEXT,
    service_account_name TEXT,
    model_source_kind TEXT,
    model_source_class TEXT,
    model_source_group TEXT,
    model_source_id TEXT,
    model_source_name TEXT,
    digest TEXT,
    source_type TEXT,
    source TEXT,
    dataset_schema TEXT,
    profile TEXT,
    metric_value REAL,
    timestamp_ms INTEGER,
    step INTEGER,
    parameter_value TEXT,
    parameter_type TEXT
);
CREATE UNIQUE INDEX artifact_version_name ON artifact (model_version_id, name) WHERE model_version_id IS NOT NULL;
CREATE UNIQUE INDEX artifact_run_name ON artifact (experiment_run_id, name)
    WHERE experiment_run_id IS NOT NULL AND model_version_id IS NULL;
CREATE UNIQUE INDEX artifact_external_id ON artifact (external_id);
CREATE INDEX artifact_create_time ON artifact (create_time, id);

CREATE TABLE metric_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment_id INTEGER REFERENCES experiment (id),
    experiment_run_id INTEGER NOT NULL REFERENCES experiment_run (id),
    name TEXT NOT NULL,
    description TEXT,
    external_id TEXT,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    row_version INTEGER NOT NULL DEFAULT 1,
    properties TEXT NOT NULL DEFAULT '{}',
    state TEXT,
    metric_value REAL,
    timestamp_ms INTEGER,
    step INTEGER
);
CREATE INDEX metric_history_run ON metric_history (experiment_run_id, name, step);

CREATE TABLE serving_environment (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    description TEXT,
    external_id TEXT,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    row_version INTEGER NOT NULL DEFAULT 1,
    properties TEXT NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX serving_environment_name ON serving_environment (name);
CREATE UNIQUE INDEX serving_environment_external_id ON serving_environment (external_id);

CREATE TABLE inference_service (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    serving_environment_id INTEGER NOT NULL REFERENCES serving_environment (id),
    registered_model_id INTEGER NOT NULL REFERENCES registered_model (id),
    model_version_id INTEGER REFERENCES model_version (id),
    name TEXT NOT NULL,
    description TEXT,
    external_id TEXT,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    row_version INTEGER NOT NULL DEFAULT 1,
    properties TEXT NOT NULL DEFAULT '{}',
    runtime TEXT,
    desired_state TEXT
);
CREATE UNIQUE INDEX inference_service_name ON inference_service (serving_environment_id, name);
CREATE UNIQUE INDEX inference_service_external_id ON inference_service (external_id);
CREATE INDEX inference_service_model ON inference_service (registered_model_id);
CREATE INDEX inference_service_version ON inference_service (model_version_id);

CREATE TABLE serve_model (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    inference_service_id INTEGER NOT NULL REFERENCES inference_service (id),
    model_version_id INTEGER NOT NULL REFERENCES model_version (id),
    name TEXT NOT NULL,
    description TEXT,
    external_id TEXT,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    row_version INTEGER NOT NULL DEFAULT 1,
    properties TEXT NOT NULL DEFAULT '{}',
    last_known_state TEXT
);
CREATE UNIQUE INDEX serve_model_name ON serve_model (inference_service_id, name);
CREATE UNIQUE INDEX serve_model_external_id ON serve_model (external_id);
CREATE INDEX serve_model_version ON serve_model (model_version_id);

-- Typed custom properties of every entity; entity_kind is Kind::property_kind. Clustered on the primary
-- key (WITHOUT ROWID) so that a filter probe or a property fetch is one b-tree seek.
-- value_type: string | int | double | bool | struct | proto (struct/proto keep base64 in string_value).
-- The value indexes end in entity_id, so an equality filter on a property yields entities in id order
-- and an id-ordered page stops after pageSize matches (see SqlStore::list).
CREATE TABLE custom_property (
    entity_kind SMALLINT NOT NULL,
    entity_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    value_type TEXT NOT NULL,
    string_value TEXT,
    int_value INTEGER,
    double_value REAL,
    bool_value BOOLEAN,
    proto_type TEXT,
    PRIMARY KEY (entity_kind, entity_id, name)
) WITHOUT ROWID;
CREATE INDEX custom_property_string ON custom_property (entity_kind, name, value_type, string_value, entity_id);
CREATE INDEX custom_property_int ON custom_property (entity_kind, name, value_type, int_value, entity_id);
CREATE INDEX custom_property_double ON custom_property (entity_kind, name, value_type, double_value, entity_id);
