-- Catalog schema, version 8 (PostgreSQL). Times are milliseconds since 1970.

-- A group's tenant schema: its migrations in order (version 1, 2, 3, …), immutable once added. The
-- checksum is the SHA-256 (hex) of the SQL; every database records it beside the name when it applies
-- the migration.
CREATE TABLE group_migrations (
    group_id TEXT NOT NULL REFERENCES db_groups (id) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    name TEXT NOT NULL,
    sql TEXT NOT NULL,
    checksum TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, version),
    UNIQUE (group_id, name)
);

-- The version the group's databases are brought to when they open, and new databases start at: set
-- when a rollout to it leaves its canary phase.
ALTER TABLE db_groups ADD COLUMN schema_version BIGINT NOT NULL DEFAULT 0;

-- What each database last reported applying (0: nothing), and how its schema differed from what its
-- migrations make (JSON: missing, unexpected, changed), NULL when it did not.
ALTER TABLE databases ADD COLUMN schema_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE databases ADD COLUMN schema_drift TEXT;

-- A rollout of a group's schema to target_version: one task per database, canary tasks first. state is
-- canary, approval (canary done, waiting for a resume), soaking (waiting until soak_until), running,
-- paused (paused_state holds what it resumes to), stopped (a failure under the stop policy), or done.
-- released_at is when the group's schema_version became target_version. The control-plane instance that drives it holds its lease (lease_owner until lease_until).
CREATE TABLE rollouts (
    id TEXT PRIMARY KEY,
    group_id TEXT NOT NULL REFERENCES db_groups (id) ON DELETE CASCADE,
    target_version BIGINT NOT NULL,
    state TEXT NOT NULL,
    paused_state TEXT,
    canary_count BIGINT NOT NULL,
    soak_ms BIGINT,
    soak_until BIGINT,
    concurrency BIGINT NOT NULL,
    continue_on_error BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    released_at BIGINT,
    finished_at BIGINT,
    lease_owner TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX rollouts_by_group ON rollouts (group_id, created_at);
CREATE INDEX rollouts_by_state ON rollouts (state);

-- One database's part of a rollout: pending, done, failed (error holds the SQLite error) or skipped.
CREATE TABLE rollout_tasks (
    rollout_id TEXT NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    database_id TEXT NOT NULL,
    canary BIGINT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    error TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (rollout_id, database_id)
);
CREATE INDEX rollout_tasks_by_state ON rollout_tasks (rollout_id, state, canary, database_id);
