-- The web console's views over every tenant (an operator's): the newest-first message
-- listing with its (created_at, id) cursor, and messages per minute over the last hour
-- (a range scan on created_at). Per tenant, messages_account_created_idx serves both.
-- depends: 0008.dkim-keys
CREATE INDEX messages_created_idx ON messages (created_at DESC, id DESC);
