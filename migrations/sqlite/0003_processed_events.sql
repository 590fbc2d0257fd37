-- Idempotent processing: which events each consumer group has handled, by event id.
CREATE TABLE processed_events (
    consumer_group TEXT    NOT NULL,
    event_id       TEXT    NOT NULL,
    processed_us   INTEGER NOT NULL,
    PRIMARY KEY (consumer_group, event_id)
) WITHOUT ROWID;
