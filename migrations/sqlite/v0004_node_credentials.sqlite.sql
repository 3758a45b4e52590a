-- Catalog schema, version 4 (SQLite). Times are milliseconds since 1970.

-- Each node's own credential, issued when it registers and stored as SHA-256 only: with it the node
-- heartbeats, asks for its own placements and registers again; it never holds an admin token. NULL
-- for a node registered before this version and after the operator rotated the credential: the node
-- registration token may then register that node again, which issues a new one.
ALTER TABLE nodes ADD COLUMN credential_hash TEXT;
ALTER TABLE nodes ADD COLUMN credential_issued_at BIGINT;
CREATE UNIQUE INDEX nodes_by_credential ON nodes (credential_hash);

-- The secret nodes register with, stored as SHA-256 only. It registers a new node, or a known one that
-- has no credential or is down, and nothing else.
CREATE TABLE node_registration_tokens (
    id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

-- From this version on, nodes.admin_token and signing_keys.private_key hold values sealed with the
-- control plane's sealing key ('sealed:v1:...'); the control plane seals values an earlier version
-- left in clear when it starts (Catalog.sealStoredSecrets).
