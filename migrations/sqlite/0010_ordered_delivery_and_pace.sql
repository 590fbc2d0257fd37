-- Ordered delivery and a pace per endpoint.
--
-- `ordering` is 'none' or 'partition_key'; `rate_limit` is deliveries per second (NULL: none);
-- `max_in_flight` bounds concurrent requests over all processes; `held_until_us` is the end of
-- a hold an endpoint asked for (429 or 503 with Retry-After).
ALTER TABLE subscriptions ADD COLUMN ordering TEXT NOT NULL DEFAULT 'none';
ALTER TABLE subscriptions ADD COLUMN rate_limit INTEGER;
ALTER TABLE subscriptions ADD COLUMN max_in_flight INTEGER NOT NULL DEFAULT 32;
ALTER TABLE subscriptions ADD COLUMN held_until_us INTEGER NOT NULL DEFAULT 0;

-- A job of an ordered subscription carries its event's partition key. Of the unfinished jobs of
-- one (subscription, key), only the oldest is 'pending' (the head); the others are 'queued'
-- behind it, in creation order (the rowid), until it is delivered or dead-lettered.
ALTER TABLE deliveries ADD COLUMN ordering_key TEXT;
CREATE INDEX deliveries_by_key ON deliveries (subscription_id, ordering_key, status)
    WHERE ordering_key IS NOT NULL;

-- A dead letter of an ordered subscription names the key whose sequence it broke.
ALTER TABLE dead_letters ADD COLUMN ordering_key TEXT;

-- The rate limit shared by every process: the time from which the next delivery may start.
CREATE TABLE delivery_pace (
    subscription_id TEXT    PRIMARY KEY,
    next_us         INTEGER NOT NULL
);

-- Requests in flight to each endpoint, shared by every process: what each process (`holder`)
-- may have in flight (`held`) and would like to (`wanted`), until its lease runs out.
CREATE TABLE delivery_capacity (
    subscription_id TEXT    NOT NULL,
    holder          TEXT    NOT NULL,
    held            INTEGER NOT NULL,
    wanted          INTEGER NOT NULL,
    lease_until_us  INTEGER NOT NULL,
    PRIMARY KEY (subscription_id, holder)
);
