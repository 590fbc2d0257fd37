-- When each event was stored, which retention goes by (an event's own `time` may be far in the
-- past for imported history). Events stored before this migration count as stored now.
ALTER TABLE events ADD COLUMN stored_us INTEGER NOT NULL DEFAULT 0;
UPDATE events SET stored_us = CAST(unixepoch('subsec') * 1000000 AS INTEGER);
CREATE INDEX events_stored ON events (stored_us);
