-- Mirrors the SQLite migration; see it for the meaning of each column.
CREATE TABLE test_sends (
    id                  uuid        NOT NULL PRIMARY KEY,
    campaign_id         uuid        NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    channel             text        NOT NULL CHECK (channel IN ('sms', 'voice', 'email')),
    to_address          text        NOT NULL CHECK (to_address <> ''),
    subject             text,
    body                text        NOT NULL,
    requested_by        text        NOT NULL,
    provider_message_id text,
    error               text,
    created_at          timestamptz NOT NULL,
    finished_at         timestamptz
);
CREATE INDEX test_sends_campaign ON test_sends (campaign_id, created_at);
