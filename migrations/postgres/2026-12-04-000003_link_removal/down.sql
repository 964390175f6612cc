DROP TABLE removed_links;
ALTER TABLE api_keys DROP COLUMN link_removed_at;
