-- A chat campaign's figures per UTC day: how often its triggers matched on a page (eligible),
-- its greeting was shown, closed by the visitor, answered (engaged), and how many conversations
-- those answers opened. The widget's counts arrive in batches and each node adds what it
-- gathered every few seconds, so a row is only ever incremented.
CREATE TABLE chat_figures (
    campaign_id   uuid   NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    day           text   NOT NULL CHECK (length(day) = 10),
    eligible      bigint NOT NULL DEFAULT 0,
    shown         bigint NOT NULL DEFAULT 0,
    closed        bigint NOT NULL DEFAULT 0,
    engaged       bigint NOT NULL DEFAULT 0,
    conversations bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign_id, day)
);
