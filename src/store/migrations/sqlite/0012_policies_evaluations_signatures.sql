-- Governance, second part (src/governance): the Cedar policy sets, each a new version; the policy version
-- and facts behind each transition; evaluation suites and their results per version; and the model
-- signature bundles recorded for a version, verified or failed.

-- The latest version is in force; none stored means the built-in defaults.
CREATE TABLE governance_policy (
    version INTEGER PRIMARY KEY,
    policies TEXT NOT NULL,
    comment TEXT,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- The policy version that allowed each transition, and the facts it was given (JSON).
ALTER TABLE version_transition ADD COLUMN policy_version TEXT;
ALTER TABLE version_transition ADD COLUMN policy_facts TEXT;

CREATE TABLE evaluation_suite (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

-- One row per metric result. `threshold` and `passed` are as judged when recorded, for the model's risk
-- tier then (NULL when the tier did not require the metric); gates judge again with today's suites.
CREATE TABLE evaluation_result (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model_version_id INTEGER NOT NULL REFERENCES model_version (id) ON DELETE CASCADE,
    suite TEXT NOT NULL,
    metric TEXT NOT NULL,
    category TEXT NOT NULL,
    direction TEXT NOT NULL,
    value REAL NOT NULL,
    dataset_name TEXT,
    dataset_digest TEXT NOT NULL,
    risk_tier TEXT NOT NULL,
    threshold REAL,
    passed INTEGER,
    recorded_by TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX evaluation_result_version ON evaluation_result (model_version_id, suite, metric, id);

-- `signed` holds what a verified bundle signs (key, subject and resource digests, JSON); `reason` why a
-- failed one failed.
CREATE TABLE version_signature (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model_version_id INTEGER NOT NULL REFERENCES model_version (id) ON DELETE CASCADE,
    status TEXT NOT NULL CHECK (status IN ('verified', 'failed')),
    reason TEXT,
    signed TEXT,
    bundle TEXT NOT NULL,
    bundle_sha256 TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX version_signature_version ON version_signature (model_version_id, id);
