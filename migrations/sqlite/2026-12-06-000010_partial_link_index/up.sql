-- Most keys are not links: an index of every key by linked_key_id holds one value (NULL) for nearly
-- all rows, and SQLite's planner, reading that from ANALYZE, scanned every key to find a code's links
-- in the one-statement cold lookup (verify::lookup). Only links are indexed now.
DROP INDEX api_keys_linked_key_idx;
CREATE INDEX api_keys_linked_key_idx ON api_keys (linked_key_id) WHERE linked_key_id IS NOT NULL;
