-- no-transaction
-- Live chat: a chat campaign's inbox, the chat "sender" its conversations belong to, and the
-- start of each chat (the page and greeting the visitor answered).
--
-- A conversation is the thread between a customer and a sender, in the sender's inbox. A chat
-- campaign has no phone number or email address, so each chat campaign gets one sender of
-- channel `chat` (address `chat:<campaign id>`, made by the first chat), in the campaign's
-- inbox: its conversations, messages and inbox listing are those of every other channel. Such a
-- sender is Herald's own: the senders API and pages do not show it.
--
-- SQLite cannot change a CHECK, so `senders` is rebuilt (same columns, ids and index). Other
-- tables name it in foreign keys; foreign keys are off while it is swapped (SQLite's documented
-- way: a `DROP TABLE` with them on would delete, by cascade, every row that names a sender), and
-- the swap is one transaction.
PRAGMA foreign_keys = OFF;

BEGIN;

CREATE TABLE senders_new (
    id          BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    channel     TEXT    NOT NULL CHECK (channel IN ('sms', 'voice', 'email', 'chat')),
    -- E.164 (`+14155550100`) for sms and voice, an email address for email, `chat:<campaign
    -- id>` for a chat campaign's conversations.
    address     TEXT    NOT NULL,
    inbox_id    BLOB    NOT NULL REFERENCES inboxes (id),
    provider    TEXT    NOT NULL CHECK (provider IN ('file', 'smtp', 'twilio', 'webhook')),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (channel, address)
) STRICT;

INSERT INTO senders_new (id, channel, address, inbox_id, provider, created_at, updated_at)
SELECT id, channel, address, inbox_id, provider, created_at, updated_at FROM senders;

DROP TABLE senders;
ALTER TABLE senders_new RENAME TO senders;
CREATE INDEX senders_inbox_id ON senders (inbox_id);

-- The inbox a chat campaign's conversations land in (required to start a chat).
ALTER TABLE chat_campaigns ADD COLUMN inbox_id BLOB REFERENCES inboxes (id);

-- Each start of a chat: the visitor answered the greeting of `campaign_id` on `page_url` of
-- `site_id`. A record of what happened (no foreign key to the campaign or site, which may go);
-- it goes with its conversation.
CREATE TABLE chat_starts (
    id              BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    conversation_id BLOB    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    site_id         BLOB    NOT NULL,
    campaign_id     BLOB    NOT NULL,
    page_url        TEXT    NOT NULL,
    started_at      INTEGER NOT NULL
) STRICT;

CREATE INDEX chat_starts_conversation ON chat_starts (conversation_id, started_at);

COMMIT;

PRAGMA foreign_keys = ON;
