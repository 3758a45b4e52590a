-- Catalog schema, version 6 (PostgreSQL). Times are milliseconds since 1970.

-- A database's settings owed to one node that may hold it: its primary's node, and every node of its
-- group's other locations (each may keep a replica). Recorded in the transaction of the change (a
-- configuration, or a region rule) and removed once the node confirms; the control plane tries at once
-- and retries what failed, waiting longer after each failure (attempts, next_attempt_at). A push
-- always sends the database's settings as the catalog holds them then, so one row per database and
-- node is enough: a newer change replaces it, with a new push_id, and a confirmation removes the row
-- only if it still has the push_id that was sent. Removed with the database.
CREATE TABLE database_settings_pushes (
    database_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    push_id TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    PRIMARY KEY (database_id, node_id)
);
CREATE INDEX database_settings_pushes_due ON database_settings_pushes (next_attempt_at);
