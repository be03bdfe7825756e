-- Catalog events for webhooks (src/catalog/events.rs): the catalog sources a subscription chose, and per
-- chosen source the model names last announced (its first change after being chosen sets the baseline).

CREATE TABLE webhook_subscription_source (
    subscription_id BIGINT NOT NULL REFERENCES webhook_subscription (id) ON DELETE CASCADE,
    source_id TEXT NOT NULL,
    PRIMARY KEY (subscription_id, source_id)
);
CREATE INDEX webhook_subscription_source_id ON webhook_subscription_source (source_id);

CREATE TABLE catalog_announced_source (
    source_id TEXT PRIMARY KEY,
    since BIGINT NOT NULL
);

CREATE TABLE catalog_announced (
    source_id TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (source_id, name)
);
