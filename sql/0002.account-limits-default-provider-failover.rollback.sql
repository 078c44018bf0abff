ALTER TABLE routing_rules DROP COLUMN fallback_provider_ids;
ALTER TABLE accounts
    DROP COLUMN default_provider_id,
    DROP COLUMN recipients_per_hour,
    DROP COLUMN messages_per_minute;
