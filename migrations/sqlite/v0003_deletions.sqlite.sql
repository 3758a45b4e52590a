-- Catalog schema, version 3 (SQLite). Times are milliseconds since 1970.

-- A deleted database's removal from one node that may hold it: its primary's node, and every node of
-- its group's other locations (each may keep a replica). Recorded in the deletion's transaction and
-- removed once the node confirms; the control plane tries at once and retries what failed, waiting
-- longer after each failure (attempts, next_attempt_at). namespace is org/name, as nodes name it.
CREATE TABLE database_deletions (
    database_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    namespace TEXT NOT NULL,
    deleted_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    PRIMARY KEY (database_id, node_id)
);
CREATE INDEX database_deletions_due ON database_deletions (next_attempt_at);
