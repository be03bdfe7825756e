-- Governance (src/governance): a registered model's owners, group, risk tier and tags; each version's
-- lifecycle state, its transitions and reviews; named aliases and their history; and the outbox of
-- events, written in the same transaction as the change they announce. Rows go with their model or
-- version (ON DELETE CASCADE); the audit log keeps the record of what happened.

CREATE TABLE model_governance (
    registered_model_id BIGINT PRIMARY KEY REFERENCES registered_model (id) ON DELETE CASCADE,
    owners TEXT NOT NULL DEFAULT '[]',
    model_group TEXT,
    risk_tier TEXT NOT NULL DEFAULT 'medium' CHECK (risk_tier IN ('low', 'medium', 'high')),
    tags TEXT NOT NULL DEFAULT '[]',
    updated_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- A version without a row is a draft. `round` is the transition that entered the current state: reviews
-- count toward the round they were given in.
CREATE TABLE version_lifecycle (
    model_version_id BIGINT PRIMARY KEY REFERENCES model_version (id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    submitted_by TEXT,
    round BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE version_transition (
    id BIGSERIAL PRIMARY KEY,
    model_version_id BIGINT NOT NULL REFERENCES model_version (id) ON DELETE CASCADE,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    actor TEXT NOT NULL,
    comment TEXT,
    at BIGINT NOT NULL
);
CREATE INDEX version_transition_version ON version_transition (model_version_id, id);

CREATE TABLE version_review (
    id BIGSERIAL PRIMARY KEY,
    model_version_id BIGINT NOT NULL REFERENCES model_version (id) ON DELETE CASCADE,
    round BIGINT NOT NULL,
    stage TEXT NOT NULL CHECK (stage IN ('staging', 'production')),
    reviewer TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('approve', 'request_changes')),
    comment TEXT,
    at BIGINT NOT NULL
);
CREATE UNIQUE INDEX version_review_once ON version_review (model_version_id, round, reviewer);

CREATE TABLE model_alias (
    registered_model_id BIGINT NOT NULL REFERENCES registered_model (id) ON DELETE CASCADE,
    alias TEXT NOT NULL,
    model_version_id BIGINT NOT NULL REFERENCES model_version (id) ON DELETE CASCADE,
    set_by TEXT NOT NULL,
    set_at BIGINT NOT NULL,
    PRIMARY KEY (registered_model_id, alias)
);

CREATE TABLE model_alias_history (
    id BIGSERIAL PRIMARY KEY,
    registered_model_id BIGINT NOT NULL REFERENCES registered_model (id) ON DELETE CASCADE,
    alias TEXT NOT NULL,
    previous_version_id BIGINT,
    model_version_id BIGINT,
    actor TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX model_alias_history_model ON model_alias_history (registered_model_id, id);

-- Events to deliver (webhooks), one per change, written with it.
CREATE TABLE event_outbox (
    id BIGSERIAL PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
