-- Suppressions: addresses an account no longer sends to (relay.storage.suppressions).
-- An entry is added by hand (the API) or by a delivery that a provider refused for
-- good because of the address (source 'bounce', in the same transaction as that
-- verdict); SMTP then refuses the address at RCPT TO for that account. An entry whose
-- expires_at has passed counts as absent everywhere, and housekeeping deletes it.
-- One entry per address and account, compared case-insensitively: RFC 5321 §2.4 lets
-- a local part be case-sensitive, but no mailbox provider treats it so, and a list
-- that "Bob@" slipped past because "bob@" bounced would not be much of a list.
-- Adding an address already listed refreshes that entry (reason, source, expiry).
-- depends: 0006.webhooks

CREATE TABLE suppressions (
    id          uuid PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- As given (SMTP path or API), not case-folded.
    address     text NOT NULL CHECK (length(address) BETWEEN 3 AND 320),
    reason      text NOT NULL CHECK (length(reason) <= 500),
    source      text NOT NULL CHECK (source IN ('bounce', 'manual')),
    -- The message whose bounce added it; no foreign key: messages are purged.
    message_id  uuid,
    -- The remote's words for a bounce.
    response    text CHECK (length(response) <= 2000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz
);
-- The RCPT TO lookup and the uniqueness rule in one index.
CREATE UNIQUE INDEX suppressions_address_idx ON suppressions (account_id, lower(address));
-- The API's listing, newest first.
CREATE INDEX suppressions_account_created_idx ON suppressions (account_id, created_at, id);
-- Housekeeping's purge of expired entries.
CREATE INDEX suppressions_expires_idx ON suppressions (expires_at) WHERE expires_at IS NOT NULL;
