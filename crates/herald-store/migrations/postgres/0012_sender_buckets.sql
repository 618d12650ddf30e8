-- Each sender's token bucket, shared by every node. Mirrors the SQLite migration; see it for
-- the meaning of each column.
CREATE TABLE sender_buckets (
    sender_id uuid             NOT NULL PRIMARY KEY REFERENCES senders (id) ON DELETE CASCADE,
    tokens    double precision NOT NULL,
    at        timestamptz      NOT NULL
);
