-- Mirrors the SQLite migration; see it for the meaning of each column.
ALTER TABLE sender_buckets ADD COLUMN day text;
ALTER TABLE sender_buckets ADD COLUMN day_used bigint NOT NULL DEFAULT 0;
