-- Counts that limits share across every relay smtp process of a deployment
-- (relay.smtp.shared_limits). Each process writes only its own rows, so processes
-- never contend on a row; each reads the others' sums about once a second.
-- depends: 0003.provider-health

-- Events in a time window (messages and recipients per account, connections and
-- failed logins per address), bucketed by the database's clock.
CREATE TABLE limit_events (
    process  text        NOT NULL,
    kind     text        NOT NULL,
    key      text        NOT NULL,
    bucket   timestamptz NOT NULL,
    n        integer     NOT NULL CHECK (n > 0),
    PRIMARY KEY (process, kind, key, bucket)
);
CREATE INDEX limit_events_bucket_idx ON limit_events (bucket);

-- Levels held right now (open connections per address, addresses blocked after
-- failed logins); a row is ignored once expires_at passes, so a dead process's
-- levels fade by themselves.
CREATE TABLE limit_levels (
    process    text        NOT NULL,
    kind       text        NOT NULL,
    key        text        NOT NULL,
    value      integer     NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (process, kind, key)
);
CREATE INDEX limit_levels_expires_idx ON limit_levels (expires_at);

-- When each process last shared its counts (also: which processes are alive).
CREATE TABLE limit_processes (
    process   text PRIMARY KEY,
    synced_at timestamptz NOT NULL
);
