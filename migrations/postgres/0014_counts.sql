-- Insights: counts per (metric, subject, bucket), kept at write time by every process's tally
-- (src/insights). A subject is an event type or a subscription id; a bucket is a minute or an
-- hour, named by its start in microseconds since the epoch.
CREATE TABLE counts (
    metric TEXT NOT NULL,
    granularity TEXT NOT NULL,
    bucket_us BIGINT NOT NULL,
    subject TEXT NOT NULL,
    total BIGINT NOT NULL,
    PRIMARY KEY (metric, granularity, bucket_us, subject)
);
