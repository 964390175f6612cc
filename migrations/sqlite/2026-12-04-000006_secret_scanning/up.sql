-- Secret-scanning alerts already acted on, by the SHA-256 of their signed body: a replayed alert is
-- refused. Kept 30 days (GitHub's key rotation makes older signatures moot).
CREATE TABLE secret_scanning_alerts (
    body_sha256 TEXT PRIMARY KEY NOT NULL,
    received_at TIMESTAMP NOT NULL
);
CREATE INDEX secret_scanning_alerts_received_idx ON secret_scanning_alerts (received_at);
