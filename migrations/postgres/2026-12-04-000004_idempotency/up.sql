-- The first answer to each management API POST sent with an Idempotency-Key, so that a retry replays it
-- instead of acting again. Scoped to the calling access code: another caller's key never replays an
-- answer that is not theirs. The answer is sealed with the server's key material (it may hold a new
-- code's secret). Rows older than 24 hours are purged.
CREATE TABLE idempotency_keys (
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    access_code_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    -- SHA-256 of the method, the path and the body: the same key with another request is refused.
    request_hash TEXT NOT NULL,
    status INTEGER NOT NULL,
    location TEXT,
    sealed_body BYTEA NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (account_id, access_code_id, idempotency_key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
