-- The inbox as a team works it: a conversation is open or closed and may be assigned to one
-- user; each user's reads of a conversation make its unread count; an agent's answer names the
-- user who wrote it.
--
-- `last_inbound_at` is the newest customer message's time: a conversation is unread for a user
-- when it is later than their read. Kept by the transaction that receives the message, so an
-- inbox's unread count reads conversations only, never their messages.
ALTER TABLE conversations ADD COLUMN status TEXT NOT NULL DEFAULT 'open'
    CHECK (status IN ('open', 'closed'));
ALTER TABLE conversations ADD COLUMN assignee_id BLOB REFERENCES users (id) ON DELETE SET NULL;
ALTER TABLE conversations ADD COLUMN last_inbound_at INTEGER;
UPDATE conversations SET last_inbound_at = (
    SELECT max(m.created_at) FROM messages m
    WHERE m.customer_id = conversations.customer_id AND m.sender_id = conversations.sender_id
      AND m.direction = 'inbound');

-- The user who wrote an agent's answer (a record, not a foreign key: the answer outlives them).
ALTER TABLE messages ADD COLUMN agent_id BLOB;

-- Up to when each user has read each conversation.
CREATE TABLE conversation_reads (
    user_id         BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    conversation_id BLOB    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    read_at         INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
) STRICT;
