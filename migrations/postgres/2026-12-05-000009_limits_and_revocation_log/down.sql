DROP TABLE revocation_log;
ALTER TABLE api_keys DROP COLUMN rate_per_day;
ALTER TABLE api_keys DROP COLUMN rate_per_minute;
