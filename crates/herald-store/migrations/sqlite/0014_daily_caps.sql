-- A sender's daily cap (a carrier's messages a day for a number, such as T-Mobile's for 10DLC
-- brands), kept beside its rate so every node counts against one figure: `day_used` tokens
-- were spent on `day` (a date in the cap's time zone, `YYYY-MM-DD`); a new day starts at 0.
ALTER TABLE sender_buckets ADD COLUMN day TEXT;
ALTER TABLE sender_buckets ADD COLUMN day_used INTEGER NOT NULL DEFAULT 0;
