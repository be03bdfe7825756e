-- Per registered-model permissions. `principal` is `user:<subject>`, `group:<name>` or `everyone`;
-- `level` is 0 none, 1 read, 2 edit, 3 manage. A model without an `everyone` row is readable by every
-- caller who may read the registry. Rows go with their model (the store deletes them in the model's
-- delete), and are read by model, and by the list filter per model and principal.
CREATE TABLE model_permission (
    registered_model_id BIGINT NOT NULL REFERENCES registered_model (id),
    principal TEXT NOT NULL,
    level BIGINT NOT NULL CHECK (level BETWEEN 0 AND 3),
    granted_by TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (registered_model_id, principal)
);

-- Models registered before permissions existed had no owner and any editor could change them: they keep
-- that (`everyone` may edit) until an admin changes that. New models belong to their
-- creator.
INSERT INTO model_permission (registered_model_id, principal, level, granted_by, granted_at)
SELECT id, 'everyone', 2, 'upgrade', CAST(EXTRACT(EPOCH FROM now()) * 1000 AS BIGINT) FROM registered_model;

-- A token may be restricted to named registered models and to catalog sources: JSON arrays of names
-- and source ids, or NULL for none.
ALTER TABLE api_token ADD COLUMN models TEXT;
ALTER TABLE api_token ADD COLUMN sources TEXT;
