-- A code reported as exposed (by anyone, through the credential revocation API, or by a secret scanner):
-- when, and by what. Such a code is disabled at once; the key's pages say so until it is deleted.
ALTER TABLE access_codes ADD COLUMN exposed_at TIMESTAMP;
ALTER TABLE access_codes ADD COLUMN exposure_source TEXT;
