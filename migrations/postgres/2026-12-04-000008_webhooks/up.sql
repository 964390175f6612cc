-- Webhook endpoints: where an account's owners want to hear about changes to its keys and codes. The
-- signing secret is sealed with the server's key material (it must be read back to sign); after a
-- rotation the previous one keeps signing alongside the new one for a day, so receivers can switch.
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    description TEXT NOT NULL,
    -- The event types it receives, separated by spaces.
    events TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    sealed_secret BYTEA NOT NULL,
    previous_sealed_secret BYTEA,
    previous_secret_until TIMESTAMP,
    -- Since when every delivery has failed (NULL once one succeeds); past the limit the endpoint is
    -- disabled and disabled_reason says why.
    failing_since TIMESTAMP,
    disabled_reason TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX webhook_endpoints_account_idx ON webhook_endpoints (account_id);

-- The outbox: one row per event and endpoint, written in the transaction of the change it reports, so
-- that a change is never committed without its event nor an event sent for a change rolled back. A
-- worker on every instance claims due rows by moving next_attempt_at past the delivery timeout (a
-- lease: if the instance dies mid-delivery, the row is due again when the lease ends).
CREATE TABLE webhook_deliveries (
    -- msg_…: the webhook-id header, the same on every attempt so receivers can deduplicate.
    id TEXT PRIMARY KEY NOT NULL,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    account_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    last_attempt_at TIMESTAMP,
    last_status INTEGER,
    last_error TEXT
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, created_at);

-- Expiry notices already emitted ('30d', '7d', '1d', 'expired'), one row per code and notice: the sweep
-- that every instance runs inserts the row and emits the event in one transaction, so each is sent once.
CREATE TABLE expiry_notices (
    code_id TEXT NOT NULL REFERENCES access_codes (id) ON DELETE CASCADE,
    notice TEXT NOT NULL,
    sent_at TIMESTAMP NOT NULL,
    PRIMARY KEY (code_id, notice)
);
