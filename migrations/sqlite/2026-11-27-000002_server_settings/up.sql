-- Values the server keeps about itself, e.g. the fingerprint of the key material in use, so that an
-- instance started with other key material refuses to start instead of failing every request.
CREATE TABLE server_settings (
    name TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
);
