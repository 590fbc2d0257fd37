-- The event store. `seq` is the store order; `body` is the event as JSON, without its sequence.
CREATE TABLE events (
    seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id             TEXT        NOT NULL UNIQUE,
    source         TEXT        NOT NULL,
    type           TEXT        NOT NULL,
    subject        TEXT,
    stream         TEXT        NOT NULL,
    time           TIMESTAMPTZ NOT NULL,
    correlation_id TEXT        NOT NULL,
    partition_key  TEXT,
    published      BOOLEAN     NOT NULL DEFAULT false,
    body           JSONB       NOT NULL
);

-- Listings are newest first (seq DESC) under each filter; `text_pattern_ops` serves `order.*`.
CREATE INDEX events_type ON events (type text_pattern_ops, seq);
CREATE INDEX events_source ON events (source, seq);
CREATE INDEX events_stream ON events (stream, seq);
CREATE INDEX events_correlation ON events (correlation_id, seq);
CREATE INDEX events_time ON events (time);
-- The outbox: events stored but not yet handed to the broker.
CREATE INDEX events_unpublished ON events (seq) WHERE NOT published;

-- Idempotent processing: which events each consumer group has handled, by event id.
CREATE TABLE processed_events (
    consumer_group TEXT        NOT NULL,
    event_id       TEXT        NOT NULL,
    processed_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, event_id)
);
