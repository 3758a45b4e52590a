-- Catalog schema, version 2 (SQLite). Times are milliseconds since 1970; flags are 0/1.

-- The database and group tokens each organization was issued: an organization may revoke only these.
-- expires_at is NULL for a token that never expires.
CREATE TABLE issued_tokens (
    jti TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    expires_at BIGINT,
    issued_at BIGINT NOT NULL
);
CREATE INDEX issued_tokens_by_expiry ON issued_tokens (expires_at);

-- A revocation lapses with its token (nodes refuse an expired token anyway). Revocations made before
-- this version have no known expiry and stay in force.
ALTER TABLE revoked_tokens ADD COLUMN expires_at BIGINT;
CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expires_at);

-- 1 when the platform operator (an admin token) set size_limit_bytes: an organization's token may not
-- change it then. Who set an existing limit is not known, so existing limits count as the operator's.
ALTER TABLE databases ADD COLUMN size_limit_by_operator BIGINT NOT NULL DEFAULT 0;
UPDATE databases SET size_limit_by_operator = 1 WHERE size_limit_bytes IS NOT NULL;

-- A limit below one page (4096 bytes) was stored but refused by nodes, leaving the database unusable:
-- raise it to the smallest limit the control plane accepts now (64 KiB).
UPDATE databases SET size_limit_bytes = 65536 WHERE size_limit_bytes IS NOT NULL AND size_limit_bytes < 4096;
