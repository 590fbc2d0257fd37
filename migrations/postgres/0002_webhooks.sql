-- Webhook subscriptions. `event_types` is a JSON array of patterns (`order.created`, `order.*`,
-- `*`); `secret` signs deliveries and is never returned by the API.
CREATE TABLE subscriptions (
    id              TEXT        PRIMARY KEY,
    name            TEXT        NOT NULL,
    event_types     TEXT        NOT NULL,
    webhook_url     TEXT        NOT NULL,
    secret          TEXT        NOT NULL,
    enabled         BOOLEAN     NOT NULL,
    disabled_reason TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

-- One delivery job per (event, subscription): `id` is the webhook-id every attempt carries.
-- A pending job is due at `next_attempt_at`; while one process sends it, that time is pushed
-- ahead by a lease, so a job whose process died comes due again by itself.
CREATE TABLE deliveries (
    id              TEXT        PRIMARY KEY,
    event_id        TEXT        NOT NULL,
    subscription_id TEXT        NOT NULL,
    status          TEXT        NOT NULL,
    attempts        INTEGER     NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (event_id, subscription_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_subscription ON deliveries (subscription_id);

-- Every attempt, for the delivery log of each subscription.
CREATE TABLE delivery_attempts (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id     TEXT        NOT NULL,
    subscription_id TEXT        NOT NULL,
    event_id        TEXT        NOT NULL,
    attempt         INTEGER     NOT NULL,
    status_code     INTEGER,
    latency_us      BIGINT      NOT NULL,
    error           TEXT,
    attempted_at    TIMESTAMPTZ NOT NULL,
    next_attempt_at TIMESTAMPTZ
);
CREATE INDEX delivery_attempts_subscription ON delivery_attempts (subscription_id, seq);

-- The dead-letter queue: webhook deliveries that used up their attempts, and events whose
-- processing failed for good. `payload` is the event as JSON.
CREATE TABLE dead_letters (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              TEXT        NOT NULL UNIQUE,
    kind            TEXT        NOT NULL,
    event_id        TEXT        NOT NULL,
    event_type      TEXT        NOT NULL,
    stream          TEXT        NOT NULL,
    subscription_id TEXT,
    delivery_id     TEXT,
    handler         TEXT,
    error           TEXT        NOT NULL,
    status_code     INTEGER,
    response_body   TEXT,
    attempts        INTEGER     NOT NULL,
    failed_at       TIMESTAMPTZ NOT NULL,
    payload         TEXT        NOT NULL
);
CREATE INDEX dead_letters_subscription ON dead_letters (subscription_id, seq);
