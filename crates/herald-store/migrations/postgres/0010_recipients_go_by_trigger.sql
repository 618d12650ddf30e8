-- Recipients and import errors go with their outreach through one statement-level trigger, not a
-- foreign key each.
--
-- A foreign key checks its parent row for every inserted row (an RI trigger per row, with a
-- `FOR KEY SHARE` lock on the outreach): that was half of a 1,000,000-row import's time
-- (docs/benchmarks.md). Only the import writes these rows, in the same transaction that creates
-- their outreach, so the check protects nothing there. What the foreign key did guarantee — that
-- deleting an outreach (directly, or with its campaign) deletes its recipients and import errors —
-- this trigger keeps, once per deleting statement, whatever path deletes the outreach.
ALTER TABLE recipients DROP CONSTRAINT recipients_outreach_id_fkey;
ALTER TABLE import_errors DROP CONSTRAINT import_errors_outreach_id_fkey;

CREATE FUNCTION outreaches_delete_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM recipients r USING gone g WHERE r.outreach_id = g.id;
    DELETE FROM import_errors e USING gone g WHERE e.outreach_id = g.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER outreaches_delete_rows
    AFTER DELETE ON outreaches
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION outreaches_delete_rows();
