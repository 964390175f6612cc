-- Scheduled retirements of access codes (rotation). A row is deleted in the transaction that disables
-- its code, so that however many instances sweep, a code is retired once; cancelling deletes it too.
CREATE TABLE code_retirements (
    code_id TEXT PRIMARY KEY NOT NULL REFERENCES access_codes (id) ON DELETE CASCADE,
    api_key_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    -- 'idle': once another code of the key has been used and this one has seen no request for
    -- quiet_seconds; 'at': at retire_at.
    mode TEXT NOT NULL CHECK (mode IN ('idle', 'at')),
    quiet_seconds INTEGER,
    retire_at TIMESTAMP,
    scheduled_at TIMESTAMP NOT NULL
);
