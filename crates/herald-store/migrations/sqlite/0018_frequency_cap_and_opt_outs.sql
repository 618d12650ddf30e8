-- A campaign's own frequency cap: at most `frequency_cap_messages` proactive messages to one
-- customer in `frequency_cap_days` days (both set, or neither for no cap of its own). The
-- dispatcher applies it beside the workspace's `[dispatch.frequency_cap]`.
ALTER TABLE campaigns ADD COLUMN frequency_cap_messages INTEGER
    CHECK (frequency_cap_messages IS NULL OR frequency_cap_messages >= 1);
ALTER TABLE campaigns ADD COLUMN frequency_cap_days INTEGER
    CHECK ((frequency_cap_days IS NULL) = (frequency_cap_messages IS NULL)
           AND (frequency_cap_days IS NULL OR frequency_cap_days BETWEEN 1 AND 3650));
