-- Each sender's token bucket, kept in the database so that every node sending from the sender
-- draws on the same one (a carrier meters a number, not a process) and a restart does not
-- refill it. `tokens` were there at `at`; they grow by the sender's rate a second, up to its
-- burst. Taken and given back in write transactions only.
CREATE TABLE sender_buckets (
    sender_id BLOB    NOT NULL PRIMARY KEY REFERENCES senders (id) ON DELETE CASCADE,
    tokens    REAL    NOT NULL,
    at        INTEGER NOT NULL
) STRICT;
