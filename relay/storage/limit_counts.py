"""Counts that limits share across processes (tables ``limit_events``, ``limit_levels``).

Strategy: each process keeps exact counts of its own, and about once a second
(``relay.smtp.shared_limits``) makes one crossing that publishes what it counted
since the last one and reads back the sums of every *other* process. Each process
writes only rows carrying its own name, so processes never wait on each other's
rows, and a process's own counts are never read back (it has them exactly).

Windowed events (messages per account per minute, say) go into time buckets of
``window / BUCKETS_PER_WINDOW`` on the database's clock; a window's sum is the
buckets that began within it, so it covers between ``window - bucket`` and
``window`` seconds. Levels (open connections, blocks) carry an expiry: a process
that dies stops refreshing its rows, and they stop counting when they expire.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from ._bridge import Bridge, Connection

#: Buckets per window: a one-minute window counts in 5-second buckets.
BUCKETS_PER_WINDOW = 12


@attrs.frozen
class Level:
    """A level this process holds for ``key`` (0 removes it), valid for ``ttl`` seconds."""

    kind: str
    key: str
    value: int
    ttl: float


@attrs.frozen
class OthersCounts:
    """Other processes' sums as of one sync, keyed by (kind, key)."""

    events: Mapping[tuple[str, str], int] = attrs.field(factory=dict)
    levels: Mapping[tuple[str, str], int] = attrs.field(factory=dict)


class LimitCountRepository:
    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge

    async def sync(
        self,
        process: str,
        *,
        events: Mapping[tuple[str, str], int],
        levels: Sequence[Level],
        windows: Mapping[str, float],
        refresh: Mapping[str, float],
        prune: bool = False,
    ) -> OthersCounts:
        """Publish this process's new events and changed levels, read the others'.

        Args:
            events: (kind, key) → events counted since the last sync.
            levels: levels that changed since the last sync.
            windows: kind → window in seconds, for every event kind to read.
            refresh: kind → seconds: this process's levels of that kind stay valid
                that much longer (its open connections, while it lives).
            prune: also delete rows past every window (any process's).
        """
        event_rows = [
            (kind, key, n, windows[kind] / BUCKETS_PER_WINDOW) for (kind, key), n in events.items()
        ]

        async def exchange(conn: Connection) -> OthersCounts:
            async with conn.transaction():
                if event_rows:
                    await _add_events(conn, process, event_rows)
                if levels:
                    await _set_levels(conn, process, levels)
                if refresh:
                    await _refresh_levels(conn, process, refresh)
                await conn.execute(
                    """INSERT INTO limit_processes (process, synced_at) VALUES ($1, now())
                       ON CONFLICT (process) DO UPDATE SET synced_at = now()""",
                    process,
                )
                if prune:
                    await _prune(conn, max(windows.values(), default=0.0))
                return await _others(conn, process, windows)

        return await self._bridge.run(exchange)


async def _add_events(conn: Connection, process: str, rows: list[tuple[str, str, int, float]]) -> None:
    """Add (kind, key, n, bucket seconds) rows to this process's current buckets."""
    await conn.execute(
        """INSERT INTO limit_events (process, kind, key, bucket, n)
           SELECT $1, t.kind, t.key,
                  date_bin(make_interval(secs => t.bucket), now(),
                           timestamptz '2000-01-01'),
                  t.n
           FROM unnest($2::text[], $3::text[], $4::integer[], $5::float8[])
               AS t(kind, key, n, bucket)
           ON CONFLICT (process, kind, key, bucket)
           DO UPDATE SET n = limit_events.n + excluded.n""",
        process, *map(list, zip(*rows, strict=True)),
    )


async def _set_levels(conn: Connection, process: str, levels: Sequence[Level]) -> None:
    """Write this process's changed levels; a level of 0 deletes its row."""
    await conn.execute(
        """WITH given AS (
               SELECT * FROM unnest($2::text[], $3::text[], $4::integer[],
                                    $5::float8[]) AS t(kind, key, value, ttl)
           ), gone AS (
               DELETE FROM limit_levels l USING given g
               WHERE l.process = $1 AND l.kind = g.kind AND l.key = g.key
                 AND g.value = 0
           )
           INSERT INTO limit_levels (process, kind, key, value, expires_at)
           SELECT $1, kind, key, value, now() + make_interval(secs => ttl)
           FROM given WHERE value <> 0
           ON CONFLICT (process, kind, key) DO UPDATE
           SET value = excluded.value, expires_at = excluded.expires_at""",
        process,
        [lv.kind for lv in levels], [lv.key for lv in levels],
        [lv.value for lv in levels], [lv.ttl for lv in levels],
    )


async def _refresh_levels(conn: Connection, process: str, refresh: Mapping[str, float]) -> None:
    """Keep this process's levels of each kind valid that many seconds longer."""
    await conn.execute(
        """UPDATE limit_levels l SET expires_at = now() + make_interval(secs => r.ttl)
           FROM unnest($2::text[], $3::float8[]) AS r(kind, ttl)
           WHERE l.process = $1 AND l.kind = r.kind""",
        process, list(refresh), list(refresh.values()),
    )


async def _prune(conn: Connection, longest_window: float) -> None:
    """Delete any process's rows that no window or level can count any more."""
    await conn.execute(
        "DELETE FROM limit_events WHERE bucket < now() - make_interval(secs => $1)",
        longest_window + 60.0,
    )
    await conn.execute("DELETE FROM limit_levels WHERE expires_at < now()")
    await conn.execute(
        "DELETE FROM limit_processes WHERE synced_at < now() - interval '1 day'"
    )


async def _others(conn: Connection, process: str, windows: Mapping[str, float]) -> OthersCounts:
    """Every other process's event sums within each kind's window, and live levels."""
    kinds = list(windows)
    counted = await conn.fetch(
        """SELECT e.kind, e.key, sum(e.n)::bigint AS total
           FROM limit_events e
           JOIN unnest($2::text[], $3::float8[]) AS w(kind, secs) ON w.kind = e.kind
           WHERE e.process <> $1 AND e.bucket > now() - make_interval(secs => w.secs)
           GROUP BY e.kind, e.key""",
        process, kinds, [windows[k] for k in kinds],
    )
    held = await conn.fetch(
        """SELECT kind, key, sum(value)::bigint AS total FROM limit_levels
           WHERE process <> $1 AND expires_at > now()
           GROUP BY kind, key""",
        process,
    )
    return OthersCounts(
        events={(r["kind"], r["key"]): r["total"] for r in counted},
        levels={(r["kind"], r["key"]): r["total"] for r in held},
    )
