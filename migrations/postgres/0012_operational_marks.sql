-- Conditions EventFlow reports once across its processes (a breaker open, a subscription failing,
-- the dead-letter queue over its threshold): a row while the condition holds. Whoever inserts the
-- row publishes the operational event of its start; whoever deletes it, that of its end.
CREATE TABLE operational_marks (
    key TEXT PRIMARY KEY,
    raised_us BIGINT NOT NULL,
    count BIGINT NOT NULL
);
