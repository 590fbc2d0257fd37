-- How deliveries carry the event (the CloudEvents HTTP binding): 'json' (the structured event
-- as application/json), 'structured' (application/cloudevents+json) or 'binary' (ce-* headers).
ALTER TABLE subscriptions ADD COLUMN content_mode TEXT NOT NULL DEFAULT 'json';
