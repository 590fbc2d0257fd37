-- Listings filtered by subject (one user's events, say) walk this index newest first instead of
-- the whole table.
CREATE INDEX events_subject ON events (subject, seq);
