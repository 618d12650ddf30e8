-- Who put an address on the opt-out list from the admin or the API (a user's email, or `token
-- NAME`); none for a customer's STOP or unsubscribe, or one added before this was kept. (Its own
-- migration: 0023_people was already merged when this came.)
ALTER TABLE suppressions ADD COLUMN added_by text;
