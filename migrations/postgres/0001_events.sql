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
    body           JSONB       NOT NULL
);

-- Listings are newest first (seq DESC) under each filter; `text_pattern_ops` serves `order.*`.
-- A stream filter walks the primary key backwards: there are only a handful of streams, and an
-- index on them would cost every insert more than it saves.
CREATE INDEX events_type ON events (type text_pattern_ops, seq);
CREATE INDEX events_source ON events (source, seq);
CREATE INDEX events_correlation ON events (correlation_id, seq);
CREATE INDEX events_time ON events (time);

-- The outbox: sequences of events stored but not yet handed to the broker. A narrow table of its
-- own, filled by the statement that stores the events: publishing deletes a small row instead of
-- updating a wide one in every index.
CREATE TABLE outbox (
    seq BIGINT PRIMARY KEY
);

-- Idempotent processing: which events each consumer group has handled, by event id.
CREATE TABLE processed_events (
    consumer_group TEXT        NOT NULL,
    event_id       TEXT        NOT NULL,
    processed_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, event_id)
);
