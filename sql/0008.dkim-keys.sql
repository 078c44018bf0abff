-- DKIM signing keys (RFC 6376; Ed25519 per RFC 8463), per account and sender domain.
-- The SMTP service signs an account's message with every enabled key of its From:
-- domain: normally one, two while a rotation publishes a new selector. The private
-- key is stored encrypted (AES-256-GCM under dkim.key_encryption_key, relay.dkim);
-- the public key is what the DNS record's p= tag holds. A selector names one key of
-- a domain in DNS, whoever owns it, so (domain, selector) is unique across accounts.
-- depends: 0005.shared-limits

CREATE TABLE dkim_keys (
    id          uuid PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    domain      text NOT NULL CHECK (domain = lower(domain) AND length(domain) BETWEEN 1 AND 253),
    selector    text NOT NULL CHECK (selector = lower(selector) AND length(selector) BETWEEN 1 AND 63),
    algorithm   text NOT NULL CHECK (algorithm IN ('rsa-sha256', 'ed25519-sha256')),
    private_key bytea NOT NULL,
    public_key  text NOT NULL,
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT dkim_keys_domain_selector_key UNIQUE (domain, selector)
);
CREATE INDEX dkim_keys_account_idx ON dkim_keys (account_id, created_at);
