-- When each event was stored, which retention goes by (an event's own `time` may be far in the
-- past for imported history). Events stored before this migration count as stored now.
ALTER TABLE events ADD COLUMN stored_at TIMESTAMPTZ NOT NULL DEFAULT now();
CREATE INDEX events_stored ON events (stored_at);
