-- The schema registry: each registered event type, and every version of its JSON Schema (kept
-- when the type is deleted, since stored events name the version they were checked against).
CREATE TABLE event_types (
    name TEXT PRIMARY KEY,
    description TEXT,
    version BIGINT NOT NULL,
    examples TEXT NOT NULL,
    deprecated BOOLEAN NOT NULL,
    created_us BIGINT NOT NULL,
    updated_us BIGINT NOT NULL
);
CREATE TABLE event_type_versions (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    schema TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);
