-- The initial schema: tenants, their upstream providers and routing rules, the queue,
-- one log row per delivery attempt, and operator keys.
-- depends:

CREATE TABLE accounts (
    id              uuid PRIMARY KEY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    email           text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    password_hash   text NOT NULL,
    -- Only the SHA-256 of the API key is stored; the prefix lets a leaked key be recognised.
    api_key_hash    bytea NOT NULL UNIQUE,
    api_key_prefix  text NOT NULL,
    allowed_domains text[] NOT NULL DEFAULT '{}',
    disabled        boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- Logins are case-insensitive (RFC 5321 §2.4 leaves local parts case-sensitive, but
-- an account's login is our identifier, not a mailbox).
CREATE UNIQUE INDEX accounts_email_lower_key ON accounts (lower(email));

CREATE TABLE esp_providers (
    id          uuid PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    type        text NOT NULL CHECK (type IN ('smtp', 'sendgrid', 'mailgun', 'ses', 'postmark')),
    config      jsonb NOT NULL DEFAULT '{}',
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX esp_providers_account_idx ON esp_providers (account_id, created_at);

CREATE TABLE routing_rules (
    id          uuid PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name        text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    priority    integer NOT NULL DEFAULT 100,
    conditions  jsonb NOT NULL DEFAULT '{}',
    provider_id uuid NOT NULL REFERENCES esp_providers (id) ON DELETE CASCADE,
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX routing_rules_account_priority_idx ON routing_rules (account_id, priority, created_at);

CREATE TABLE messages (
    id              uuid PRIMARY KEY,
    account_id      uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    mail_from       text NOT NULL,
    rcpt_to         text[] NOT NULL CHECK (cardinality(rcpt_to) >= 1),
    raw             bytea NOT NULL,
    size            integer NOT NULL CHECK (size >= 0),
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'sending', 'sent', 'deferred', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz,
    locked_by       text,
    message_id      text,
    client_ip       text,
    tls             boolean NOT NULL DEFAULT false,
    correlation_id  text,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- The claimer's scan: only messages waiting for an attempt, in due order.
CREATE INDEX messages_due_idx ON messages (next_attempt_at)
    WHERE status IN ('queued', 'deferred');
-- Reclaiming claims whose worker died.
CREATE INDEX messages_locked_idx ON messages (locked_until) WHERE status = 'sending';
-- The API's listing per tenant, newest first, with a cursor on (created_at, id).
CREATE INDEX messages_account_created_idx ON messages (account_id, created_at DESC, id DESC);
-- Retention: finished messages by age.
CREATE INDEX messages_finished_idx ON messages (updated_at) WHERE status IN ('sent', 'failed');

CREATE TABLE delivery_logs (
    id            bigserial PRIMARY KEY,
    message_id    uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    provider_id   uuid REFERENCES esp_providers (id) ON DELETE SET NULL,
    provider_type text,
    outcome       text NOT NULL CHECK (outcome IN ('delivered', 'deferred', 'failed')),
    response      text NOT NULL DEFAULT '',
    duration_ms   integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX delivery_logs_message_idx ON delivery_logs (message_id, id);

CREATE TABLE admin_keys (
    id           uuid PRIMARY KEY,
    name         text NOT NULL DEFAULT '',
    key_hash     bytea NOT NULL UNIQUE,
    key_prefix   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
