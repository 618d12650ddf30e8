-- Mirrors the SQLite migration; see it for the meaning of each column.
ALTER TABLE campaigns
    ADD COLUMN frequency_cap_messages bigint CHECK (frequency_cap_messages >= 1),
    ADD COLUMN frequency_cap_days bigint CHECK (frequency_cap_days BETWEEN 1 AND 3650),
    ADD CONSTRAINT campaigns_frequency_cap_whole
        CHECK ((frequency_cap_days IS NULL) = (frequency_cap_messages IS NULL));

ALTER TABLE recipients ADD COLUMN opted_out_at timestamptz;
CREATE INDEX recipients_opted_out ON recipients (outreach_id) WHERE opted_out_at IS NOT NULL;
