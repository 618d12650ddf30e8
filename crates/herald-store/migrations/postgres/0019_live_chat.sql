-- Live chat: a chat campaign's inbox, the chat "sender" its conversations belong to, and the
-- start of each chat (the page and greeting the visitor answered). See the SQLite migration of
-- the same number for the why.
ALTER TABLE senders DROP CONSTRAINT senders_channel_check;
ALTER TABLE senders ADD CONSTRAINT senders_channel_check
    CHECK (channel IN ('sms', 'voice', 'email', 'chat'));

ALTER TABLE chat_campaigns ADD COLUMN inbox_id uuid REFERENCES inboxes (id);

CREATE TABLE chat_starts (
    id              uuid        NOT NULL PRIMARY KEY,
    conversation_id uuid        NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    site_id         uuid        NOT NULL,
    campaign_id     uuid        NOT NULL,
    page_url        text        NOT NULL,
    started_at      timestamptz NOT NULL
);

CREATE INDEX chat_starts_conversation ON chat_starts (conversation_id, started_at);
