-- Catalog schema, version 9 (PostgreSQL). Times are milliseconds since 1970; durations are seconds.

-- How far back a plan's databases can be restored: backups older than this are pruned once newer
-- ones cover the whole window.
ALTER TABLE plans ADD COLUMN backup_retention_seconds BIGINT NOT NULL DEFAULT 86400;
UPDATE plans SET backup_retention_seconds = 2592000 WHERE name = 'scaler';
-- Nodes learn a database's retention with its settings; until then they prune nothing. Every
-- primary gets its settings again (due now), so that it learns its plan's.
INSERT INTO database_settings_pushes (database_id, node_id, push_id, requested_at, attempts, next_attempt_at)
SELECT id, primary_node, 'v0009-' || id, 0, 0, 0 FROM databases WHERE primary_node IS NOT NULL
ON CONFLICT (database_id, node_id) DO NOTHING;

-- A deleted database whose backups are kept for a grace period, so that a mistaken delete can be
-- undone (undelete creates the name again from them), then erased from the object store for good.
-- The control plane asks a node with the store (node_id when it is still registered, else a live
-- one of the same location) to erase them once erase_at has passed, and retries what failed,
-- waiting longer after each failure (attempts, next_attempt_at). An undelete holds the row while it
-- restores (restored_as '(undeleting)', next_attempt_at moved past its end), so no erasure starts
-- meanwhile. group_id is the group it was in: an undelete goes back to that group only. restored_as
-- is the database an undelete made from them, if any (a deleted database is undeleted at most once;
-- empty for a creation that was undone, whose backups are erased at once); the row goes once the
-- backups are erased.
CREATE TABLE deleted_databases (
    database_id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    name TEXT NOT NULL,
    group_name TEXT NOT NULL,
    group_id TEXT NOT NULL,
    location TEXT NOT NULL,
    backup_id TEXT NOT NULL,
    node_id TEXT,
    deleted_at BIGINT NOT NULL,
    erase_at BIGINT NOT NULL,
    restored_as TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT
);
CREATE INDEX deleted_databases_due ON deleted_databases (next_attempt_at);
CREATE INDEX deleted_databases_by_name ON deleted_databases (org_id, name, deleted_at);
