-- What the dispatcher needs to claim due recipients cheaply. Mirrors the SQLite migration.
--
-- A claim takes the pending recipients of one outreach that are due (`due_at` unset or passed)
-- in order of `due_at`, unset first, then id. This partial index holds only pending recipients,
-- keyed in exactly that order, so a claim reads the first entries of its outreach's range and
-- stops at the first one not yet due: recipients deferred to a later sending window are never
-- scanned. An unset `due_at` is keyed as -infinity, so it sorts first and is always due.
CREATE INDEX recipients_due
    ON recipients (outreach_id, (coalesce(due_at, '-infinity'::timestamptz)), id)
    WHERE state = 'pending';

-- Listing the recipients of one state in id order (the API's recipient pages) reads the index in
-- order instead of sorting the state's rows; the id makes the old (outreach_id, state) index
-- redundant.
CREATE INDEX recipients_outreach_state_id ON recipients (outreach_id, state, id);
DROP INDEX recipients_outreach_state;
