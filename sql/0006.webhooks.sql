-- Webhooks: endpoints per account, an outbox of events, one delivery per (event,
-- endpoint) and a row per attempt (relay.storage.webhooks).
-- An event and its deliveries are written in the same transaction as the change
-- they report (a message stored, a verdict, an address suppressed), and only for
-- accounts with an enabled endpoint that wants that kind: no endpoint, no row.
-- depends: 0005.shared-limits

CREATE TABLE webhook_endpoints (
    id          uuid PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    url         text NOT NULL CHECK (length(url) <= 2048),
    events      text[] NOT NULL,
    enabled     boolean NOT NULL DEFAULT true,
    -- The HMAC-SHA256 key; shown by the API only when created or rotated.
    secret      text NOT NULL,
    description text NOT NULL DEFAULT '' CHECK (length(description) <= 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_account_idx ON webhook_endpoints (account_id, created_at);

CREATE TABLE webhook_events (
    id          uuid PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    kind        text NOT NULL,
    -- The exact JSON every endpoint receives; the signature covers these octets.
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_events_created_idx ON webhook_events (created_at);

-- A delivery is due when status = 'pending' and next_attempt_at has passed. A
-- claim moves next_attempt_at a lease ahead and counts the attempt, so a worker
-- that dies mid-request leaves the delivery due again when the lease ends.
CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id        uuid NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    endpoint_id     uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, created_at);

CREATE TABLE webhook_attempts (
    id           bigserial PRIMARY KEY,
    delivery_id  uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt      integer NOT NULL,
    -- The HTTP status, or NULL when there was none (refused, timeout, blocked).
    status_code  integer,
    error        text,
    duration_ms  integer NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);
