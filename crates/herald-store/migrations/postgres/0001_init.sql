-- Herald's first schema, PostgreSQL flavour (how Herald scales past one machine).
--
-- Conventions (the SQLite schema mirrors them):
-- * Ids are uuid v7 made in Rust, stored as `uuid`. Byte order is time order, so `ORDER BY id`
--   is creation order and lists page by `id > cursor`.
-- * Timestamps are `timestamptz`. The Rust side knows only unix microseconds (jiff::Timestamp,
--   truncated to whole microseconds before writing), converted exactly in SQL:
--     write: timestamptz 'epoch' + $n::int8 * interval '1 microsecond'
--     read:  (extract(epoch from col) * 1000000)::int8      -- exact: numeric since PostgreSQL 14
--   so the columns stay real timestamps for anyone querying the database by hand.
-- * Enumerations (channel, provider, role) are their lower-case names, guarded by CHECKs.
-- * Foreign keys stay RESTRICT: the store refuses a delete that would orphan a row with a message
--   naming the rows in the way, and the constraint is the backstop. Only answer variants
--   cascade with their answer.

CREATE TABLE inboxes (
    id          uuid        NOT NULL PRIMARY KEY,
    name        text        NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE senders (
    id          uuid        NOT NULL PRIMARY KEY,
    channel     text        NOT NULL CHECK (channel IN ('sms', 'voice', 'email')),
    -- E.164 (`+14155550100`) for sms and voice, an email address for email.
    address     text        NOT NULL,
    inbox_id    uuid        NOT NULL REFERENCES inboxes (id),
    provider    text        NOT NULL CHECK (provider IN ('file', 'smtp', 'twilio', 'webhook')),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    -- The same number may be an sms sender and a voice sender, but only once on each.
    CONSTRAINT senders_channel_address_key UNIQUE (channel, address)
);

CREATE INDEX senders_inbox_id ON senders (inbox_id);

CREATE TABLE answers (
    id          uuid        NOT NULL PRIMARY KEY,
    name        text        NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE answer_variants (
    answer_id   uuid        NOT NULL REFERENCES answers (id) ON DELETE CASCADE,
    -- Where the variant stands in the answer's list (0-based), so variants read back in the
    -- order they were given.
    position    integer     NOT NULL CHECK (position >= 0),
    -- Canonical BCP 47 tag (`en-US`).
    language    text        NOT NULL,
    -- Template sources; the subject is for email.
    subject     text,
    body        text        NOT NULL,
    PRIMARY KEY (answer_id, position),
    CONSTRAINT answer_variants_answer_id_language_key UNIQUE (answer_id, language)
);

CREATE TABLE campaigns (
    id          uuid        NOT NULL PRIMARY KEY,
    name        text        NOT NULL,
    description text        NOT NULL,
    channel     text        NOT NULL CHECK (channel IN ('sms', 'voice', 'email', 'chat')),
    -- Chat campaigns have no sender; every other channel has one.
    sender_id   uuid        REFERENCES senders (id),
    language    text        NOT NULL,
    answer_id   uuid        NOT NULL REFERENCES answers (id),
    -- The ScheduleInput shape: {"timezone": "Europe/Berlin", "days": {"mon": ["09:00-17:00"], ...}}.
    schedule    jsonb       NOT NULL,
    quiet_hours boolean     NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    CONSTRAINT campaigns_channel_name_key UNIQUE (channel, name),
    CONSTRAINT campaigns_sender_matches_channel CHECK ((channel = 'chat') = (sender_id IS NULL))
);

CREATE INDEX campaigns_channel_id ON campaigns (channel, id);
CREATE INDEX campaigns_sender_id ON campaigns (sender_id);
CREATE INDEX campaigns_answer_id ON campaigns (answer_id);

CREATE TABLE api_tokens (
    id          uuid        NOT NULL PRIMARY KEY,
    name        text        NOT NULL,
    role        text        NOT NULL CHECK (role IN ('admin', 'agent')),
    -- SHA-256 of the secret, lower-case hex; the secret itself is never stored.
    hash_hex    text        NOT NULL CONSTRAINT api_tokens_hash_hex_key UNIQUE,
    created_at  timestamptz NOT NULL
);
