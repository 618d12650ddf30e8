-- A customer's name, as a visitor gave it to a chat campaign's onboarding: agents see who
-- wrote, not only an address. Empty until someone gives one; the latest given wins.
ALTER TABLE customers ADD COLUMN name TEXT;
