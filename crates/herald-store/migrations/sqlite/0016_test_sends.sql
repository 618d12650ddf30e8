-- A test send: a campaign's answer rendered for one row and sent to the admin's own number or
-- address through the campaign's sender, outside any outreach (no recipient, no progress, no
-- conversation). Kept so the team sees what went out as a test, to whom and at whose request.
-- The row is written before the provider is called (`provider_message_id` and `error` both
-- empty: the send's outcome is unknown) and completed after, so a crash in between leaves a
-- record, never a send without one. It goes with its campaign.
CREATE TABLE test_sends (
    id                  BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    campaign_id         BLOB    NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    channel             TEXT    NOT NULL CHECK (channel IN ('sms', 'voice', 'email')),
    to_address          TEXT    NOT NULL CHECK (to_address <> ''),
    subject             TEXT,
    body                TEXT    NOT NULL,
    -- The user's email or the API token's name.
    requested_by        TEXT    NOT NULL,
    provider_message_id TEXT,
    error               TEXT,
    created_at          INTEGER NOT NULL,
    finished_at         INTEGER
) STRICT;
CREATE INDEX test_sends_campaign ON test_sends (campaign_id, created_at);
