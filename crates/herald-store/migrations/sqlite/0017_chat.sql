-- Proactive chat. A chat site is a website that embeds the widget with its public `site_key`
-- (random, unguessable; the snippet names it); only pages of its `allowed_origins` (a JSON array
-- of origins such as "https://shop.example.com") are granted its configuration by CORS.
-- `max_per_visit`: at most that many campaigns in one visit, NULL for no limit, 0 for none.
CREATE TABLE chat_sites (
    id              BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    name            TEXT    NOT NULL,
    site_key        TEXT    NOT NULL UNIQUE,
    allowed_origins TEXT    NOT NULL CHECK (json_valid(allowed_origins)),
    max_per_visit   INTEGER CHECK (max_per_visit >= 0),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;

-- The chat settings of a chat campaign: the site it shows on, its order (1 = highest priority),
-- its triggers (a JSON array of herald_core::chat::TriggerInput, checked before it is written),
-- onboarding (ask name and email), an optional start and end, and whether it is paused. The
-- settings go with their campaign; a site is not deleted while campaigns show on it.
CREATE TABLE chat_campaigns (
    campaign_id BLOB    NOT NULL PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    site_id     BLOB    NOT NULL REFERENCES chat_sites (id),
    position    INTEGER NOT NULL CHECK (position >= 1),
    triggers    TEXT    NOT NULL CHECK (json_valid(triggers)),
    onboarding  INTEGER NOT NULL CHECK (onboarding IN (0, 1)),
    starts_at   INTEGER,
    ends_at     INTEGER,
    paused      INTEGER NOT NULL CHECK (paused IN (0, 1)),
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX chat_campaigns_site ON chat_campaigns (site_id);
