DROP INDEX api_keys_linked_key_idx;
CREATE INDEX api_keys_linked_key_idx ON api_keys (linked_key_id);
