-- What the dispatcher needs to claim due recipients cheaply.
--
-- A claim takes the pending recipients of one outreach that are due (`due_at` unset or passed)
-- in order of `due_at`, unset first, then id. This partial index holds only pending recipients,
-- keyed in exactly that order (the rowid, which is the id, ends every index entry), so a claim
-- reads the first rows of its outreach's range and stops at the first one not yet due:
-- recipients deferred to a later sending window are never scanned. An unset `due_at` is keyed
-- as the smallest integer, so it sorts first and is always due. Rows leave the index as they are
-- claimed, so it shrinks as an outreach is sent.
CREATE INDEX recipients_due
    ON recipients (outreach_id, ifnull(due_at, -9223372036854775808))
    WHERE state = 'pending';
