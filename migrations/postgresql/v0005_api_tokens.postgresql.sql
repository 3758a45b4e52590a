-- Catalog schema, version 5 (PostgreSQL). Times are milliseconds since 1970; flags are 0/1.

-- API tokens expire (expires_at NULL: never) and record when they were last used (written at most
-- once a minute). may_create_tokens is 1 for an organization's token the admin token allowed to create
-- (and revoke) the organization's API tokens; tokens from before this version may not: the admin
-- creates one that may. created_by is the API token that created this one (NULL when the admin token
-- did, and for tokens from before this version); revoking a token revokes the tokens it created.
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE api_tokens ADD COLUMN last_used_at BIGINT;
ALTER TABLE api_tokens ADD COLUMN may_create_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_tokens ADD COLUMN created_by TEXT;
CREATE INDEX api_tokens_by_org ON api_tokens (org_id, created_at);
CREATE INDEX api_tokens_by_creator ON api_tokens (created_by);
