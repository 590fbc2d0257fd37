-- The event store. `seq` is the store order; `body` is the event's JSON without its sequence.
CREATE TABLE events (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT    NOT NULL UNIQUE,
    source         TEXT    NOT NULL,
    type           TEXT    NOT NULL,
    subject        TEXT,
    stream         TEXT    NOT NULL,
    time_us        INTEGER NOT NULL,
    correlation_id TEXT    NOT NULL,
    partition_key  TEXT,
    published      INTEGER NOT NULL DEFAULT 0,
    body           TEXT    NOT NULL
);

-- Each index also orders by seq (the rowid), which serves newest-first listings.
CREATE INDEX events_type ON events (type);
CREATE INDEX events_time ON events (time_us);
CREATE INDEX events_correlation ON events (correlation_id);
-- The outbox: events stored but not yet handed to the broker.
CREATE INDEX events_unpublished ON events (seq) WHERE published = 0;
