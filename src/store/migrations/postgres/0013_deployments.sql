-- Deployments (src/governance/deployments.rs): each split of a registered model's traffic in a serving
-- environment, newest last. One per (environment, model) is `active`; the one it replaced is
-- `superseded`, or `rolled_back` when a rollback replaced it. `splits` is JSON: each version's weight
-- and the inference service that serves it.

CREATE TABLE deployment (
    id BIGSERIAL PRIMARY KEY,
    serving_environment_id BIGINT NOT NULL REFERENCES serving_environment (id) ON DELETE CASCADE,
    registered_model_id BIGINT NOT NULL REFERENCES registered_model (id) ON DELETE CASCADE,
    splits TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('deploy', 'rollback')),
    status TEXT NOT NULL CHECK (status IN ('active', 'superseded', 'rolled_back')),
    restores BIGINT,
    policy_version TEXT NOT NULL,
    actor TEXT NOT NULL,
    comment TEXT,
    at BIGINT NOT NULL
);
CREATE INDEX deployment_target ON deployment (serving_environment_id, registered_model_id, id);
