-- A campaign's own frequency cap: at most `frequency_cap_messages` proactive messages to one
-- customer in `frequency_cap_days` days (both set, or neither for no cap of its own). The
-- dispatcher applies it beside the workspace's `[dispatch.frequency_cap]`.
ALTER TABLE campaigns ADD COLUMN frequency_cap_messages INTEGER
    CHECK (frequency_cap_messages IS NULL OR frequency_cap_messages >= 1);
ALTER TABLE campaigns ADD COLUMN frequency_cap_days INTEGER
    CHECK ((frequency_cap_days IS NULL) = (frequency_cap_messages IS NULL)
           AND (frequency_cap_days IS NULL OR frequency_cap_days BETWEEN 1 AND 3650));

-- When the recipient opted out in answer to its outreach's message (a STOP reply attributed to
-- it, or the email's unsubscribe link), whatever its state: the report counts it as opted out
-- of that outreach, beside those skipped because the provider said they had opted out.
ALTER TABLE recipients ADD COLUMN opted_out_at INTEGER;
-- Few recipients opt out: the report counts them through this index, not a walk of all.
CREATE INDEX recipients_opted_out ON recipients (outreach_id) WHERE opted_out_at IS NOT NULL;
