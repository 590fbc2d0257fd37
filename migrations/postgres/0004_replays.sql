-- Replays deliver stored events again. A delivery job now belongs to the live flow (`replay_id`
-- empty) or to one replay, and is unique per (event, subscription, replay): an event replayed
-- to a subscription is delivered once more, once per replay.
ALTER TABLE deliveries ADD COLUMN replay_id TEXT NOT NULL DEFAULT '';
ALTER TABLE deliveries DROP CONSTRAINT deliveries_event_id_subscription_id_key;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_event_subscription_replay_key
    UNIQUE (event_id, subscription_id, replay_id);
-- Cancelling a replay drops its pending jobs.
CREATE INDEX deliveries_replay ON deliveries (replay_id) WHERE replay_id <> '';

-- Replay jobs. `cursor` is the sequence of the last event scanned, so a replay resumes where it
-- stopped; a running replay is leased to one process (`owner`) until `lease_until`, after which
-- any process may take it over.
CREATE TABLE replays (
    id              TEXT        PRIMARY KEY,
    stream          TEXT        NOT NULL,
    start_time      TIMESTAMPTZ NOT NULL,
    end_time        TIMESTAMPTZ NOT NULL,
    event_types     TEXT        NOT NULL,
    subscription_id TEXT,
    dry_run         BOOLEAN     NOT NULL,
    status          TEXT        NOT NULL,
    cursor          BIGINT      NOT NULL DEFAULT 0,
    matched         BIGINT      NOT NULL DEFAULT 0,
    replayed        BIGINT      NOT NULL DEFAULT 0,
    deliveries      BIGINT      NOT NULL DEFAULT 0,
    error           TEXT,
    owner           TEXT,
    lease_until     TIMESTAMPTZ NOT NULL DEFAULT 'epoch',
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ
);
CREATE INDEX replays_unfinished ON replays (created_at) WHERE status IN ('queued', 'running');
