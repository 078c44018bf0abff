-- Circuit-breaker state per upstream provider, written by delivery workers on each
-- transition so that every worker process and the API see the same state.
-- depends: 0002.account-limits-default-provider-failover

CREATE TABLE provider_health (
    provider_id          uuid PRIMARY KEY REFERENCES esp_providers (id) ON DELETE CASCADE,
    -- closed: in use; open: skipped until opened_until; half_open: one probe allowed.
    state                text NOT NULL DEFAULT 'closed'
                         CHECK (state IN ('closed', 'open', 'half_open')),
    consecutive_failures integer NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    opened_until         timestamptz,
    last_error           text,
    last_failure_at      timestamptz,
    last_success_at      timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
