-- When the dispatcher began the send of a claimed recipient. A claim leases a whole batch, but
-- the sends start a few at a time, each group marked here first: after a crash, a recipient
-- whose lease ran out with this unset was never sent and goes back to `pending`; only one with
-- it set may have reached the provider and falls to the channel's crash policy. Cleared by
-- every claim.
ALTER TABLE recipients ADD COLUMN send_started_at INTEGER;
