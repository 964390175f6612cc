-- Per-key rate limits (NULL: no limit). A linked key has its own, set in the linking account.
ALTER TABLE api_keys ADD COLUMN rate_per_minute INTEGER;
ALTER TABLE api_keys ADD COLUMN rate_per_day INTEGER;

-- Every change that revoked cached grants, in commit order: instances that missed a notification
-- read what came after the last entry they saw (verify::revocation_poll). Kept for a day.
CREATE TABLE revocation_log (
    seq BIGINT PRIMARY KEY NOT NULL,
    key_id TEXT NOT NULL,
    at TIMESTAMP NOT NULL
);
