-- People and access in the admin (issue #17 item 2): deactivated users, their last sign-in, the
-- last use of API tokens, and the audit log of every change an admin makes to people and access.

-- A deactivated user cannot sign in, and their sessions are deleted when they are deactivated.
ALTER TABLE users ADD COLUMN deactivated_at INTEGER;
ALTER TABLE users ADD COLUMN last_sign_in_at INTEGER;

-- Updated at most once a minute per token, so that authenticating stays a read.
ALTER TABLE api_tokens ADD COLUMN last_used_at INTEGER;

-- Who did what, when, from which address. `actor` is a user's email or a token's name, as they
-- were at the time (the row stays when the user or token goes); `actor_kind` says which.
CREATE TABLE audit_log (
    id          BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    at          INTEGER NOT NULL,
    actor_kind  TEXT    NOT NULL CHECK (actor_kind IN ('user', 'token', 'cli')),
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    detail      TEXT    NOT NULL DEFAULT '',
    client_addr TEXT
) STRICT;
