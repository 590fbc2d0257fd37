-- The embedded broker: Redis Streams semantics (entries, consumer groups, pending entries).
CREATE TABLE stream_entries (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    stream        TEXT NOT NULL,
    event_id      TEXT NOT NULL,
    partition_key TEXT,
    sequence      INTEGER,
    payload       TEXT NOT NULL
);
CREATE INDEX stream_entries_by_stream ON stream_entries (stream);

CREATE TABLE stream_groups (
    stream         TEXT    NOT NULL,
    group_name     TEXT    NOT NULL,
    last_delivered INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (stream, group_name)
);

-- Entries delivered to a consumer and not yet acknowledged (the pending entries list).
CREATE TABLE stream_pending (
    group_name     TEXT    NOT NULL,
    entry_id       INTEGER NOT NULL,
    stream         TEXT    NOT NULL,
    consumer       TEXT    NOT NULL,
    delivery_count INTEGER NOT NULL,
    delivered_ms   INTEGER NOT NULL,
    PRIMARY KEY (group_name, entry_id)
);
CREATE INDEX stream_pending_by_idle ON stream_pending (group_name, stream, delivered_ms);

-- A first delivery advances its group past the entry, in the statement that delivers it.
CREATE TRIGGER stream_pending_advance_group AFTER INSERT ON stream_pending WHEN NEW.delivery_count = 1
BEGIN
    UPDATE stream_groups SET last_delivered = NEW.entry_id
    WHERE group_name = NEW.group_name AND stream = NEW.stream AND last_delivered < NEW.entry_id;
END;

-- Embedded mode streams each event in the statement that stores it: an event inserted as
-- already published is appended to its stream by this trigger, atomically.
CREATE TRIGGER events_stream_on_insert AFTER INSERT ON events WHEN NEW.published = 1
BEGIN
    INSERT INTO stream_entries (stream, event_id, partition_key, sequence, payload)
    VALUES (NEW.stream, NEW.id, NEW.partition_key, NEW.seq, NEW.body);
END;
