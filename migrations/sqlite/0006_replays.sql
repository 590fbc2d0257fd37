-- Replays deliver stored events again. A delivery job now belongs to the live flow (`replay_id`
-- empty) or to one replay, and is unique per (event, subscription, replay): an event replayed
-- to a subscription is delivered once more, once per replay. SQLite cannot change a table's
-- constraints in place, so `deliveries` is rebuilt.
CREATE TABLE deliveries_with_replays (
    id              TEXT    PRIMARY KEY,
    event_id        TEXT    NOT NULL,
    subscription_id TEXT    NOT NULL,
    replay_id       TEXT    NOT NULL DEFAULT '',
    status          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_us INTEGER NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    created_us      INTEGER NOT NULL,
    updated_us      INTEGER NOT NULL,
    UNIQUE (event_id, subscription_id, replay_id)
);
INSERT INTO deliveries_with_replays (id, event_id, subscription_id, status, attempts,
        next_attempt_us, last_status, last_error, created_us, updated_us)
    SELECT id, event_id, subscription_id, status, attempts, next_attempt_us, last_status,
        last_error, created_us, updated_us
    FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_with_replays RENAME TO deliveries;
CREATE INDEX deliveries_due ON deliveries (next_attempt_us) WHERE status = 'pending';
CREATE INDEX deliveries_subscription ON deliveries (subscription_id);
-- Cancelling a replay drops its pending jobs.
CREATE INDEX deliveries_replay ON deliveries (replay_id) WHERE replay_id != '';

-- Replay jobs. `cursor` is the sequence of the last event scanned, so a replay resumes where it
-- stopped; a running replay is leased to one process (`owner`) until `lease_until_us`, after
-- which any process may take it over.
CREATE TABLE replays (
    id              TEXT    PRIMARY KEY,
    stream          TEXT    NOT NULL,
    start_us        INTEGER NOT NULL,
    end_us          INTEGER NOT NULL,
    event_types     TEXT    NOT NULL,
    subscription_id TEXT,
    dry_run         INTEGER NOT NULL,
    status          TEXT    NOT NULL,
    cursor          INTEGER NOT NULL DEFAULT 0,
    matched         INTEGER NOT NULL DEFAULT 0,
    replayed        INTEGER NOT NULL DEFAULT 0,
    deliveries      INTEGER NOT NULL DEFAULT 0,
    error           TEXT,
    owner           TEXT,
    lease_until_us  INTEGER NOT NULL DEFAULT 0,
    created_us      INTEGER NOT NULL,
    updated_us      INTEGER NOT NULL,
    finished_us     INTEGER
);
CREATE INDEX replays_unfinished ON replays (created_us) WHERE status IN ('queued', 'running');
