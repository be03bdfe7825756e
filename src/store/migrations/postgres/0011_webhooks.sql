-- Webhooks (src/webhooks): subscriptions, and one delivery row per event and subscription, written in
-- the transaction that writes the event (src/store/outbox.rs), so no event is lost between the commit
-- and its delivery.

-- `secret` signs deliveries; during a rotation window `previous_secret` signs them too. `disabled_at` is
-- set when the endpoint answered 410 or an admin paused it.
CREATE TABLE webhook_subscription (
    id BIGSERIAL PRIMARY KEY,
    url TEXT NOT NULL,
    description TEXT,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_until BIGINT,
    disabled_at BIGINT,
    disabled_reason TEXT,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- The event types a subscription receives; none means every type.
CREATE TABLE webhook_subscription_event (
    subscription_id BIGINT NOT NULL REFERENCES webhook_subscription (id) ON DELETE CASCADE,
    event_type TEXT NOT NULL,
    PRIMARY KEY (subscription_id, event_type)
);

-- `state`: pending (due at next_attempt_at), delivered, failed (retries exhausted), gone (410).
-- `claimed_until` keeps two replicas from sending one delivery at once.
CREATE TABLE webhook_delivery (
    id BIGSERIAL PRIMARY KEY,
    subscription_id BIGINT NOT NULL REFERENCES webhook_subscription (id) ON DELETE CASCADE,
    event_row BIGINT NOT NULL REFERENCES event_outbox (id),
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_until BIGINT,
    last_status BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX webhook_delivery_due ON webhook_delivery (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_delivery_subscription ON webhook_delivery (subscription_id, id);

-- Every attempt, for the delivery log.
CREATE TABLE webhook_attempt (
    id BIGSERIAL PRIMARY KEY,
    delivery_id BIGINT NOT NULL REFERENCES webhook_delivery (id) ON DELETE CASCADE,
    at BIGINT NOT NULL,
    status BIGINT,
    error TEXT,
    duration_ms BIGINT NOT NULL
);
CREATE INDEX webhook_attempt_delivery ON webhook_attempt (delivery_id, id);
