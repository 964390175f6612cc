-- The whole schema of DESIGN.md. Portable column types only (see STYLE.md): the PostgreSQL twin of this
-- file differs only where the dialects must (BLOB/BYTEA, the audit id's auto-increment).

CREATE TABLE accounts (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX accounts_name_key ON accounts (name);

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL, -- stored lower-cased: unique case-insensitively
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    is_staff BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE memberships (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('owner', 'viewer')),
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, account_id)
);
CREATE INDEX memberships_account_idx ON memberships (account_id);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL, -- SHA-256 of the cookie token; the token itself is never stored
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    client_ip TEXT NOT NULL,
    user_agent TEXT NOT NULL
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

CREATE TABLE policies (
    name TEXT PRIMARY KEY NOT NULL,
    description TEXT NOT NULL,
    rules TEXT NOT NULL, -- one "METHOD /path/pattern" per line
    position INTEGER NOT NULL,
    retired BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('own', 'linked')),
    -- For a linked key: the other account's key. Set to NULL when that key is deleted, so the link stays
    -- visible as "source key deleted" and grants nothing.
    linked_key_id TEXT REFERENCES api_keys (id) ON DELETE SET NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    CHECK (kind = 'linked' OR linked_key_id IS NULL)
);
CREATE INDEX api_keys_account_created_idx ON api_keys (account_id, created_at, id);
CREATE INDEX api_keys_account_name_idx ON api_keys (account_id, name);
CREATE UNIQUE INDEX api_keys_account_link_key ON api_keys (account_id, linked_key_id);
CREATE INDEX api_keys_linked_key_idx ON api_keys (linked_key_id);

CREATE TABLE api_key_tags (
    api_key_id TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    -- The key's account, repeated so that the tag filter and the account's tag list are index scans.
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (api_key_id, tag)
);
CREATE INDEX api_key_tags_account_tag_idx ON api_key_tags (account_id, tag, api_key_id);

CREATE TABLE api_key_policies (
    api_key_id TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    policy_name TEXT NOT NULL REFERENCES policies (name),
    PRIMARY KEY (api_key_id, policy_name)
);

CREATE TABLE access_codes (
    id TEXT PRIMARY KEY NOT NULL,
    api_key_id TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    -- At most two codes per key, held by the database even under concurrent creates.
    slot INTEGER NOT NULL CHECK (slot IN (1, 2)),
    description TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    secret_digest BLOB NOT NULL, -- HMAC-SHA256(pepper, secret): the lookup on every request
    sealed_secret BLOB NOT NULL, -- AEAD(master key, secret, aad = code id): for reveal and download
    secret_hint TEXT NOT NULL, -- the first characters, to tell codes apart
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    UNIQUE (api_key_id, slot)
);
CREATE UNIQUE INDEX access_codes_digest_key ON access_codes (secret_digest);

CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT REFERENCES accounts (id) ON DELETE CASCADE,
    actor_user_id TEXT, -- no foreign key: the history outlives the user
    actor_email TEXT NOT NULL,
    actor_is_staff BOOLEAN NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    client_ip TEXT NOT NULL,
    details TEXT NOT NULL,
    occurred_at TIMESTAMP NOT NULL
);
CREATE INDEX audit_events_account_idx ON audit_events (account_id, id);

CREATE TABLE usage_daily (
    api_key_id TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    day DATE NOT NULL,
    requests BIGINT NOT NULL,
    PRIMARY KEY (api_key_id, day)
);
CREATE INDEX usage_daily_account_idx ON usage_daily (account_id, day);

CREATE TABLE ads (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    daily_budget_cents BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX ads_account_idx ON ads (account_id, created_at);

CREATE TABLE drive_files (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    modified_at TIMESTAMP NOT NULL
);
CREATE INDEX drive_files_account_idx ON drive_files (account_id, name);
