-- Live chat's one poller per node asks "which conversations got a message in the last few
-- seconds?" once per interval, whatever the number of visitors watching: a range of this index.
CREATE INDEX conversations_recent ON conversations (last_message_at);
