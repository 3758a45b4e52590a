-- Catalog schema, version 1 (PostgreSQL). Times are milliseconds since 1970; flags are 0/1.
CREATE TABLE plans (
    name TEXT PRIMARY KEY,
    max_databases BIGINT NOT NULL,
    max_groups BIGINT NOT NULL,
    max_locations_per_group BIGINT NOT NULL,
    max_storage_bytes BIGINT NOT NULL
);
INSERT INTO plans VALUES
    ('free', 500, 10, 3, 9000000000),
    ('scaler', 10000, 100, 6, 24000000000);

CREATE TABLE locations (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    jurisdiction TEXT NOT NULL
);
INSERT INTO locations VALUES
    ('ams', 'Amsterdam, Netherlands', 'eu'),
    ('fra', 'Frankfurt, Germany', 'eu'),
    ('lhr', 'London, United Kingdom', 'eu'),
    ('cdg', 'Paris, France', 'eu'),
    ('arn', 'Stockholm, Sweden', 'eu'),
    ('waw', 'Warsaw, Poland', 'eu'),
    ('mad', 'Madrid, Spain', 'eu'),
    ('iad', 'Ashburn, Virginia (US)', 'us'),
    ('ord', 'Chicago, Illinois (US)', 'us'),
    ('dfw', 'Dallas, Texas (US)', 'us'),
    ('sjc', 'San Jose, California (US)', 'us'),
    ('lax', 'Los Angeles, California (US)', 'us'),
    ('gru', 'São Paulo, Brazil', 'sa'),
    ('nrt', 'Tokyo, Japan', 'apac'),
    ('sin', 'Singapore', 'apac'),
    ('syd', 'Sydney, Australia', 'apac'),
    ('bom', 'Mumbai, India', 'apac'),
    ('jnb', 'Johannesburg, South Africa', 'af');

CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    plan TEXT NOT NULL REFERENCES plans (name),
    region_rule TEXT,
    -- Kept with every create and delete: taking this row's lock to bump it is what serializes
    -- an organization's creates, so the quota holds under concurrency.
    database_count BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL UNIQUE,
    org_id TEXT REFERENCES organizations (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);

CREATE TABLE db_groups (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    primary_location TEXT NOT NULL REFERENCES locations (code),
    region_rule TEXT,
    delete_protection BIGINT NOT NULL DEFAULT 0,
    tokens_not_before BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE group_locations (
    group_id TEXT NOT NULL REFERENCES db_groups (id) ON DELETE CASCADE,
    location TEXT NOT NULL REFERENCES locations (code),
    PRIMARY KEY (group_id, location)
);

CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    location TEXT NOT NULL REFERENCES locations (code),
    url TEXT NOT NULL UNIQUE,
    admin_token TEXT,
    primaries BIGINT NOT NULL DEFAULT 0,
    registered_at BIGINT NOT NULL,
    last_heartbeat_at BIGINT NOT NULL
);

CREATE TABLE databases (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    group_id TEXT NOT NULL REFERENCES db_groups (id),
    name TEXT NOT NULL,
    primary_node TEXT REFERENCES nodes (id),
    size_limit_bytes BIGINT,
    block_reads BIGINT NOT NULL DEFAULT 0,
    block_writes BIGINT NOT NULL DEFAULT 0,
    delete_protection BIGINT NOT NULL DEFAULT 0,
    tokens_not_before BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    UNIQUE (org_id, name)
);
CREATE INDEX databases_by_group ON databases (group_id, name);
CREATE INDEX databases_by_node ON databases (primary_node);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    private_key TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);

CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    revoked_at BIGINT NOT NULL
);

CREATE TABLE audit_logs (
    id BIGSERIAL PRIMARY KEY,
    org_id TEXT,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_logs_by_org ON audit_logs (org_id, id);
