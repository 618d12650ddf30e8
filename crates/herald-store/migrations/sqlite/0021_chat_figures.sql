-- A chat campaign's figures per UTC day: how often its triggers matched on a page (eligible),
-- its greeting was shown, closed by the visitor, answered (engaged), and how many conversations
-- those answers opened. The widget's counts arrive in batches and each node adds what it
-- gathered every few seconds, so a row is only ever incremented.
CREATE TABLE chat_figures (
    campaign_id   BLOB    NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    day           TEXT    NOT NULL CHECK (length(day) = 10),
    eligible      INTEGER NOT NULL DEFAULT 0,
    shown         INTEGER NOT NULL DEFAULT 0,
    closed        INTEGER NOT NULL DEFAULT 0,
    engaged       INTEGER NOT NULL DEFAULT 0,
    conversations INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign_id, day)
) STRICT;
