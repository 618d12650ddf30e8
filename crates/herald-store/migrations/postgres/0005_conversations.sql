-- Customers, their conversations with senders and every message between them, and the provider
-- status reports that arrived before the send they report on was recorded. Mirrors the SQLite
-- migration; see it for the meaning of each table and column.
--
-- No index is added to `recipients`: the CSV import writes millions of them and every index
-- costs it. A status report finds its recipient through the message (`messages.recipient_id`).

CREATE TABLE customers (
    id          uuid        NOT NULL PRIMARY KEY,
    -- E.164 or a normalized email address, whichever channel it came from.
    address     text        NOT NULL CONSTRAINT customers_address_key UNIQUE,
    created_at  timestamptz NOT NULL
);

-- One thread per sender and customer. It goes with its sender (and inbox). `campaign_id` and
-- `outreach_id` are a record of what the latest attributed reply answered, not foreign keys.
CREATE TABLE conversations (
    id              uuid        NOT NULL PRIMARY KEY,
    inbox_id        uuid        NOT NULL REFERENCES inboxes (id) ON DELETE CASCADE,
    sender_id       uuid        NOT NULL REFERENCES senders (id) ON DELETE CASCADE,
    customer_id     uuid        NOT NULL REFERENCES customers (id),
    channel         text        NOT NULL CHECK (channel IN ('sms', 'voice', 'email', 'chat')),
    campaign_id     uuid,
    outreach_id     uuid,
    created_at      timestamptz NOT NULL,
    last_message_at timestamptz NOT NULL,
    CONSTRAINT conversations_sender_id_customer_id_key UNIQUE (sender_id, customer_id)
);

-- An inbox's page of conversations, newest first, read in index order.
CREATE INDEX conversations_inbox_recent
    ON conversations (inbox_id, last_message_at DESC, id DESC);

-- Every message between a customer and a sender. Campaign, outreach and recipient are a record
-- (an outreach's message, or what an attributed reply answered), not foreign keys; nor is
-- `customer_id` (customers are never deleted, and each message's customer is read or made by the
-- transaction that writes it: the check's trigger would double the cost of a batch's messages).
CREATE TABLE messages (
    id                  uuid        NOT NULL PRIMARY KEY,
    customer_id         uuid        NOT NULL,
    sender_id           uuid        NOT NULL REFERENCES senders (id) ON DELETE CASCADE,
    direction           text        NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    author              text        NOT NULL
                        CHECK (author IN ('customer', 'outreach', 'agent', 'auto')),
    channel             text        NOT NULL CHECK (channel IN ('sms', 'voice', 'email', 'chat')),
    from_address        text        NOT NULL,
    to_address          text        NOT NULL,
    subject             text,
    body                text        NOT NULL,
    campaign_id         uuid,
    outreach_id         uuid,
    recipient_id        int8,
    provider_message_id text,
    status              text        NOT NULL
                        CHECK (status IN ('received', 'sent', 'delivered', 'undelivered', 'failed')),
    error_code          text,
    created_at          timestamptz NOT NULL,
    CONSTRAINT messages_inbound_by_customer CHECK ((direction = 'inbound') = (author = 'customer')),
    CONSTRAINT messages_inbound_received CHECK ((direction = 'inbound') = (status = 'received'))
);

-- A conversation's timeline and the attribution of a reply: one range of this index. A
-- customer's whole timeline reads it by its first column and sorts the customer's few messages.
CREATE INDEX messages_timeline ON messages (customer_id, sender_id, created_at, id);

-- Replayed inbound webhooks; status reports finding their outbound message.
CREATE UNIQUE INDEX messages_provider_id
    ON messages (direction, provider_message_id)
    WHERE provider_message_id IS NOT NULL;

-- Status reports for a message id no message has yet; a replayed report is kept once.
CREATE TABLE status_reports (
    provider_message_id text        NOT NULL,
    state               text        NOT NULL
                        CHECK (state IN ('sent', 'delivered', 'undelivered', 'failed')),
    error_code          text,
    error_message       text,
    at                  timestamptz NOT NULL,
    PRIMARY KEY (provider_message_id, state)
);
