-- API tokens. Only each token's SHA-256 (hex) is stored; the plaintext is shown once at creation.
-- Times are milliseconds since the epoch; a revoked token keeps its row, so lists show what happened.
CREATE TABLE api_token (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    digest TEXT NOT NULL UNIQUE,
    display_prefix TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    last_used_at BIGINT,
    revoked_at BIGINT
);
