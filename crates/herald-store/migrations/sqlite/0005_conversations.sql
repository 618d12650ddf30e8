-- Customers, their conversations with senders and every message between them, and the provider
-- status reports that arrived before the send they report on was recorded.
--
-- A customer is one address. A conversation is the thread between one customer and one sender,
-- in the sender's inbox, made when the customer first writes. Its timeline is every message
-- between the two, the proactive outreach messages included: those are recorded with the
-- delivery result, in the same transaction, so the customer's timeline shows them before any
-- conversation exists.
--
-- No index is added to `recipients`: the CSV import writes millions of them and every index
-- costs it. A status report finds its recipient through the message (`messages.recipient_id`).

-- One row per address (E.164 or a normalized email address), whichever channel it came from.
CREATE TABLE customers (
    id          BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    address     TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
) STRICT;

-- One thread per sender and customer. It goes with its sender (and inbox). `campaign_id` and
-- `outreach_id` are the campaign the latest attributed reply answered: a record of what happened,
-- not a foreign key, so deleting a campaign leaves its conversations (and their history) alone.
CREATE TABLE conversations (
    id              BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    inbox_id        BLOB    NOT NULL REFERENCES inboxes (id) ON DELETE CASCADE,
    sender_id       BLOB    NOT NULL REFERENCES senders (id) ON DELETE CASCADE,
    customer_id     BLOB    NOT NULL REFERENCES customers (id),
    channel         TEXT    NOT NULL CHECK (channel IN ('sms', 'voice', 'email', 'chat')),
    campaign_id     BLOB,
    outreach_id     BLOB,
    created_at      INTEGER NOT NULL,
    -- The newest message's time: an inbox lists its conversations by it, newest first.
    last_message_at INTEGER NOT NULL,
    UNIQUE (sender_id, customer_id)
) STRICT;

-- An inbox's page of conversations, newest first, read in index order.
CREATE INDEX conversations_inbox_recent
    ON conversations (inbox_id, last_message_at DESC, id DESC);

-- Every message between a customer and a sender: inbound (author `customer`, status `received`)
-- or outbound (author `outreach`, `agent` or `auto`; status `sent`, then what the provider
-- reports: `delivered`, `undelivered`, `failed`). An outreach's message names its campaign,
-- outreach and recipient; an attributed reply names the ones it answered. Like a
-- conversation's, those are a record, not foreign keys (a recipient id is the outreach's row
-- number and outlives it in the history). `customer_id` is no foreign key either: customers are
-- never deleted, and every message's customer is read or made by the transaction that writes
-- it. A batch of results writes a message per recipient, and the check would cost as much as
-- the rest of the insert on PostgreSQL.
CREATE TABLE messages (
    id                  BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    customer_id         BLOB    NOT NULL,
    sender_id           BLOB    NOT NULL REFERENCES senders (id) ON DELETE CASCADE,
    direction           TEXT    NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    author              TEXT    NOT NULL CHECK (author IN ('customer', 'outreach', 'agent', 'auto')),
    channel             TEXT    NOT NULL CHECK (channel IN ('sms', 'voice', 'email', 'chat')),
    -- The customer's address (inbound) or the sender's (outbound), and the other one.
    from_address        TEXT    NOT NULL,
    to_address          TEXT    NOT NULL,
    subject             TEXT,
    body                TEXT    NOT NULL,
    campaign_id         BLOB,
    outreach_id         BLOB,
    recipient_id        INTEGER,
    -- Twilio's MessageSid, the email Message-ID, ...
    provider_message_id TEXT,
    status              TEXT    NOT NULL
                        CHECK (status IN ('received', 'sent', 'delivered', 'undelivered', 'failed')),
    error_code          TEXT,
    created_at          INTEGER NOT NULL,
    CHECK ((direction = 'inbound') = (author = 'customer')),
    CHECK ((direction = 'inbound') = (status = 'received'))
) STRICT;

-- A conversation's timeline (oldest first, paged by (created_at, id)) and the attribution of a
-- reply (the newest proactive message the sender sent the customer): one range of this index.
-- A customer's whole timeline reads the same index by its first column and sorts the customer's
-- few messages, rather than keep a second index on every message.
CREATE INDEX messages_timeline ON messages (customer_id, sender_id, created_at, id);

-- A replayed inbound webhook is recognised by its provider id; a status report finds its
-- outbound message by it.
CREATE UNIQUE INDEX messages_provider_id
    ON messages (direction, provider_message_id)
    WHERE provider_message_id IS NOT NULL;

-- A provider's status report for a message id no message has yet (the callback beat the
-- recording of the send). Applied, and deleted, by the transaction that records the message; a
-- replayed report is kept once.
CREATE TABLE status_reports (
    provider_message_id TEXT    NOT NULL,
    state               TEXT    NOT NULL
                        CHECK (state IN ('sent', 'delivered', 'undelivered', 'failed')),
    error_code          TEXT,
    error_message       TEXT,
    at                  INTEGER NOT NULL,
    PRIMARY KEY (provider_message_id, state)
) STRICT;
