-- Per-account sending limits (NULL: the smtp.account_* defaults apply; 0: unlimited),
-- a per-account default provider for messages no rule matches, and ordered failover
-- providers on routing rules (tried after provider_id, in order).
-- depends: 0001.initial-schema

ALTER TABLE accounts
    ADD COLUMN messages_per_minute integer CHECK (messages_per_minute >= 0),
    ADD COLUMN recipients_per_hour integer CHECK (recipients_per_hour >= 0),
    ADD COLUMN default_provider_id uuid REFERENCES esp_providers (id) ON DELETE SET NULL;

ALTER TABLE routing_rules
    ADD COLUMN fallback_provider_ids uuid[] NOT NULL DEFAULT '{}';
