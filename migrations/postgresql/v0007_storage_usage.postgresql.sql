-- Catalog schema, version 7 (PostgreSQL). Sizes are bytes.

-- What a database takes on its primary's disk (file, WAL and archived generations), as its primary's
-- node last reported it with a heartbeat; 0 until then. An organization's use is the sum over its
-- databases, read when it is needed (a stored sum would be one more row every report and every
-- deletion must lock).
ALTER TABLE databases ADD COLUMN stored_bytes BIGINT NOT NULL DEFAULT 0;
