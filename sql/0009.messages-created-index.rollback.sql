DROP INDEX IF EXISTS messages_created_idx;
