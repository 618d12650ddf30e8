-- Accounts of the web UI: users, their sign-in sessions, and one-time setup links.
--
-- Session and setup tokens are random secrets held by the browser (a cookie) or the person a
-- link was given to; only their SHA-256 (lower-case hex) is stored, like API tokens.

-- Emails are stored trimmed and lower-cased (the store does it), so UNIQUE is case-insensitive.
CREATE TABLE users (
    id              BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    email           TEXT    NOT NULL UNIQUE CHECK (email <> ''),
    role            TEXT    NOT NULL CHECK (role IN ('admin', 'agent')),
    -- argon2id, PHC string format.
    password_hash   TEXT    NOT NULL,
    created_at      INTEGER NOT NULL
) STRICT;

-- A signed-in browser. It goes with its user.
CREATE TABLE web_sessions (
    hash_hex    TEXT    NOT NULL PRIMARY KEY,
    user_id     BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Put in every form of the session and compared with what comes back.
    csrf_token  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX web_sessions_user ON web_sessions (user_id);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);

-- A link that creates one user: the first admin (no email: whoever opens it picks one) or an
-- invited user (email fixed). Usable once, until it expires.
CREATE TABLE setup_tokens (
    hash_hex    TEXT    NOT NULL PRIMARY KEY,
    email       TEXT,
    role        TEXT    NOT NULL CHECK (role IN ('admin', 'agent')),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
) STRICT;
