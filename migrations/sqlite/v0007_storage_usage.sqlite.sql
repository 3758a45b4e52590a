-- Catalog schema, version 7 (SQLite). Sizes are bytes.

-- What a database takes on its primary's disk (file, WAL and archived generations), as its primary's
-- node last reported it with a heartbeat; 0 until then.
ALTER TABLE databases ADD COLUMN stored_bytes BIGINT NOT NULL DEFAULT 0;

-- The sum of its databases' stored_bytes, kept in the transactions that change one of them (a
-- heartbeat's report, a database's removal): what the plan's max_storage_bytes is checked against.
ALTER TABLE organizations ADD COLUMN stored_bytes BIGINT NOT NULL DEFAULT 0;
