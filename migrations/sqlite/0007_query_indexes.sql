-- Listings filtered by source or subject (one user's events, say) walk these instead of the whole
-- table; each also orders by seq (the rowid), which serves newest-first pages.
CREATE INDEX events_source ON events (source);
CREATE INDEX events_subject ON events (subject);
