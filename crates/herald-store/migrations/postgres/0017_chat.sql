-- Mirrors the SQLite migration; see it for the meaning of each column. The JSON columns are
-- text, as on SQLite: they are read and written whole, never queried into.
CREATE TABLE chat_sites (
    id              uuid        NOT NULL PRIMARY KEY,
    name            text        NOT NULL,
    site_key        text        NOT NULL UNIQUE,
    allowed_origins text        NOT NULL,
    max_per_visit   bigint      CHECK (max_per_visit >= 0),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

CREATE TABLE chat_campaigns (
    campaign_id uuid        NOT NULL PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    site_id     uuid        NOT NULL REFERENCES chat_sites (id),
    position    bigint      NOT NULL CHECK (position >= 1),
    triggers    text        NOT NULL,
    onboarding  boolean     NOT NULL,
    starts_at   timestamptz,
    ends_at     timestamptz,
    paused      boolean     NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE INDEX chat_campaigns_site ON chat_campaigns (site_id);
