-- When the dispatcher began the send of a claimed recipient. Mirrors the SQLite migration; see
-- it for the meaning.
ALTER TABLE recipients ADD COLUMN send_started_at timestamptz;
