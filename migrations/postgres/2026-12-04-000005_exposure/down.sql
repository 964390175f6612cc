ALTER TABLE access_codes DROP COLUMN exposure_source;
ALTER TABLE access_codes DROP COLUMN exposed_at;
