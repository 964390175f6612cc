-- A link that the source key's owner removed. The linking key stays in its account, shown as "link
-- removed" and granting nothing: its `linked_key_id` is cleared (so the verification path no longer
-- finds it) and `link_removed_at` says why it has no source.
ALTER TABLE api_keys ADD COLUMN link_removed_at TIMESTAMP;

-- One row per (source key, account) whose link was removed: that account cannot link the key again,
-- even after deleting the removed link. Goes with the source key.
CREATE TABLE removed_links (
    source_key_id TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- The linking key as it was; not a foreign key, so that deleting the removed link keeps the block.
    link_key_id TEXT NOT NULL,
    removed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (source_key_id, account_id)
);
CREATE INDEX removed_links_link_key_idx ON removed_links (link_key_id);
