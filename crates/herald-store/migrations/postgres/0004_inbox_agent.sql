-- Where campaign calls connect a person who presses 1 (E.164).
ALTER TABLE inboxes ADD COLUMN agent_number TEXT;
