-- IP credentials: networks from which an account's applications submit over SMTP
-- without AUTH (Postal's IP credentials; Postfix's mynetworks, per tenant).
-- No two networks may overlap, whoever owns them: the exclusion constraint (GiST,
-- inet_ops) makes PostgreSQL refuse the second of two concurrent overlapping inserts,
-- so one client address names at most one account, and its index serves the
-- connection-time lookup (network >>= address).
-- depends: 0003.provider-health

CREATE TABLE ip_credentials (
    id          uuid PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    network     cidr NOT NULL,
    description text NOT NULL DEFAULT '' CHECK (length(description) <= 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- Behind relay.networks' checks: never the whole Internet, nor a region of it.
    CONSTRAINT ip_credentials_min_prefix
        CHECK (masklen(network) >= CASE family(network) WHEN 4 THEN 8 ELSE 32 END),
    CONSTRAINT ip_credentials_no_overlap EXCLUDE USING gist (network inet_ops WITH &&)
);
CREATE INDEX ip_credentials_account_idx ON ip_credentials (account_id, created_at);
