-- Sign-in attempts per email address, counted BEFORE the password is checked (one atomic
-- upsert), so that parallel guesses cannot all be evaluated before the lockout sees them, and so
-- that the lockout holds across Herald processes sharing the database. A successful sign-in
-- deletes the row; rows whose window has passed are swept as new attempts come.
CREATE TABLE login_attempts (
    -- Trimmed and lower-cased, like users.email (unknown addresses are counted too).
    email       text        NOT NULL PRIMARY KEY,
    -- Attempts counted since the window began; one more than the limit means "locked".
    attempts    integer     NOT NULL CHECK (attempts > 0),
    -- The last counted attempt; the window runs from it.
    last_at     timestamptz NOT NULL
);
CREATE INDEX login_attempts_last ON login_attempts (last_at);

-- Re-issuing a user's link replaces the unused ones for the same email.
CREATE INDEX setup_tokens_email ON setup_tokens (email);
