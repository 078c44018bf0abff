"""Webhooks: endpoints, the outbox of events, and their deliveries.

Strategy: ``record_events`` is called on the asyncio side *inside the transaction
of the change an event reports* (messages stored, verdicts written, an address
suppressed), so an event is in the outbox if and only if its change committed — a
crash between the two cannot lose one or invent one. It writes one statement for
the whole batch, and only the events some enabled endpoint of their account wants,
with one delivery row per such endpoint; an account without endpoints costs that
one statement and no row.

Deliveries are claimed like messages (``FOR UPDATE SKIP LOCKED``), but the lease is
the schedule itself: a claim counts the attempt and moves ``next_attempt_at`` a
lease ahead, so a delivery whose worker died is simply due again when the lease
ends (at-least-once; the event id lets a receiver drop the repeat). ``settle``
writes the result fenced by the attempt number, so a late writer never overwrites a
newer claim.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from .. import models
from . import _rows
from ._bridge import Bridge, Connection, Record
from ._sql import returned_row
from .query import Query

_ENDPOINT_COLUMNS = "id, account_id, url, events, enabled, description, created_at, updated_at"


async def record_events(conn: Connection, events: Sequence[models.Event]) -> None:
    """Asyncio side: put ``events`` in the outbox inside the caller's transaction.

    Only events an enabled endpoint of their account subscribes to are stored, each
    with one pending delivery per such endpoint.
    """
    if not events:
        return
    await conn.execute(
        """WITH e AS (
               SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[])
                   AS e(id, account_id, kind, body)
           ), wanted AS (
               SELECT e.id, w.id AS endpoint_id
               FROM e JOIN webhook_endpoints w
                 ON w.account_id = e.account_id AND w.enabled AND e.kind = ANY(w.events)
           ), stored AS (
               INSERT INTO webhook_events (id, account_id, kind, body)
               SELECT e.id, e.account_id, e.kind, e.body FROM e
               WHERE e.id IN (SELECT id FROM wanted)
               RETURNING id
           )
           INSERT INTO webhook_deliveries (event_id, endpoint_id)
           SELECT wanted.id, wanted.endpoint_id FROM wanted JOIN stored ON stored.id = wanted.id""",
        [e.id for e in events], [e.account_id for e in events],
        [str(e.kind) for e in events], [e.body for e in events],
    )


async def subscribed_accounts(
    conn: Connection, account_ids: Iterable[uuid.UUID], kind: models.EventKind | None = None
) -> set[uuid.UUID]:
    """Asyncio side: which of ``account_ids`` have an enabled endpoint that wants
    ``kind`` (any kind when ``None``).

    Most accounts have none, so a writer on a hot path asks this first (one small
    indexed query) and builds events only for these, instead of building, encoding and
    shipping a body per row for ``record_events`` to throw away.
    """
    rows = await conn.fetch(
        """SELECT DISTINCT account_id FROM webhook_endpoints
           WHERE account_id = ANY($1::uuid[]) AND enabled AND ($2::text IS NULL OR $2 = ANY(events))""",
        list(set(account_ids)), None if kind is None else str(kind),
    )
    return {row["account_id"] for row in rows}


@attrs.frozen
class DueDelivery:
    """A claimed delivery: what to POST where, and the attempt it is."""

    id: uuid.UUID
    event_id: uuid.UUID
    endpoint_id: uuid.UUID
    url: str
    secret: str = attrs.field(repr=False)
    body: str = attrs.field(repr=False)
    #: This claim's attempt number (1 for the first); the fencing token of ``settle``.
    attempt: int
    created_at: dt.datetime


@attrs.frozen
class Settlement:
    """The result of one delivery attempt."""

    delivery_id: uuid.UUID
    attempt: int
    #: DELIVERED, FAILED (given up) or PENDING (retry at ``next_attempt_at``).
    status: models.WebhookDeliveryStatus
    status_code: int | None
    error: str | None
    duration_ms: int
    next_attempt_at: dt.datetime | None = None


class WebhookRepository:
    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge

    # ------------------------------------------------------------ endpoints (API)

    def create(
        self, *, account_id: uuid.UUID, url: str, events: Sequence[models.EventKind],
        secret: str, enabled: bool = True, description: str = "", limit: int,
    ) -> Query[models.WebhookEndpoint | None]:
        """None when the account already has ``limit`` endpoints (checked under a lock
        on the account row, so two concurrent creates cannot both pass)."""

        async def insert(conn: Connection) -> models.WebhookEndpoint | None:
            async with conn.transaction():
                count = await conn.fetchval(
                    """SELECT count(*) FROM webhook_endpoints
                       WHERE account_id = (SELECT id FROM accounts WHERE id = $1 FOR UPDATE)""",
                    account_id,
                )
                if count >= limit:
                    return None
                row = await returned_row(
                    conn,
                    """INSERT INTO webhook_endpoints (id, account_id, url, events, enabled,
                                                      secret, description)
                       VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *""",
                    uuid.uuid4(), account_id, url, [str(e) for e in events], enabled, secret,
                    description,
                )
                return _rows.webhook_endpoint(row, with_secret=True)

        return Query(self._bridge, insert)

    def get(
        self, endpoint_id: uuid.UUID, *, account_id: uuid.UUID
    ) -> Query[models.WebhookEndpoint | None]:
        async def fetch(conn: Connection) -> models.WebhookEndpoint | None:
            row = await conn.fetchrow(
                f"""SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints
                    WHERE id = $1 AND account_id = $2""",
                endpoint_id, account_id,
            )
            return None if row is None else _rows.webhook_endpoint(row)

        return Query(self._bridge, fetch)

    def update(
        self, endpoint_id: uuid.UUID, *, account_id: uuid.UUID, url: str,
        events: Sequence[models.EventKind], enabled: bool, description: str,
    ) -> Query[models.WebhookEndpoint | None]:
        async def write(conn: Connection) -> models.WebhookEndpoint | None:
            row = await conn.fetchrow(
                f"""UPDATE webhook_endpoints
                    SET url = $3, events = $4, enabled = $5, description = $6, updated_at = now()
                    WHERE id = $1 AND account_id = $2
                    RETURNING {_ENDPOINT_COLUMNS}""",
                endpoint_id, account_id, url, [str(e) for e in events], enabled, description,
            )
            return None if row is None else _rows.webhook_endpoint(row)

        return Query(self._bridge, write)

    def rotate_secret(
        self, endpoint_id: uuid.UUID, *, account_id: uuid.UUID, secret: str
    ) -> Query[models.WebhookEndpoint | None]:
        """A new signing key; deliveries attempted from now on are signed with it."""

        async def write(conn: Connection) -> models.WebhookEndpoint | None:
            row = await conn.fetchrow(
                """UPDATE webhook_endpoints SET secret = $3, updated_at = now()
                   WHERE id = $1 AND account_id = $2 RETURNING *""",
                endpoint_id, account_id, secret,
            )
            return None if row is None else _rows.webhook_endpoint(row, with_secret=True)

        return Query(self._bridge, write)

    def delete(self, endpoint_id: uuid.UUID, *, account_id: uuid.UUID) -> Query[bool]:
        """Its pending deliveries go with it."""

        async def remove(conn: Connection) -> bool:
            row = await conn.fetchval(
                "DELETE FROM webhook_endpoints WHERE id = $1 AND account_id = $2 RETURNING 1",
                endpoint_id, account_id,
            )
            return row is not None

        return Query(self._bridge, remove)

    def send_test(self, endpoint: models.WebhookEndpoint, event: models.Event) -> Query[uuid.UUID]:
        """Queue ``event`` for this one endpoint (enabled or not, whatever it subscribes
        to); returns the delivery's id."""

        async def write(conn: Connection) -> uuid.UUID:
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO webhook_events (id, account_id, kind, body) VALUES ($1, $2, $3, $4)",
                    event.id, event.account_id, str(event.kind), event.body,
                )
                return await conn.fetchval(  # type: ignore[no-any-return]
                    """INSERT INTO webhook_deliveries (event_id, endpoint_id) VALUES ($1, $2)
                       RETURNING id""",
                    event.id, endpoint.id,
                )

        return Query(self._bridge, write)

    def deliveries(
        self, endpoint_id: uuid.UUID, *, account_id: uuid.UUID,
        status: models.WebhookDeliveryStatus | None = None,
        before: tuple[dt.datetime, uuid.UUID] | None = None, limit: int = 50,
    ) -> Query[list[models.WebhookDelivery]]:
        """Newest first, each with its attempts (oldest first); ``before`` pages."""
        before_at, before_id = before if before else (None, None)

        async def fetch(conn: Connection) -> list[models.WebhookDelivery]:
            rows = await conn.fetch(
                """SELECT d.*, e.kind, e.body,
                          coalesce((SELECT json_agg(json_build_object(
                                        'attempt', a.attempt, 'status_code', a.status_code,
                                        'error', a.error, 'duration_ms', a.duration_ms,
                                        'created_at', a.created_at) ORDER BY a.id)
                                    FROM webhook_attempts a WHERE a.delivery_id = d.id),
                                   '[]') AS attempt_rows
                   FROM webhook_deliveries d
                   JOIN webhook_endpoints w ON w.id = d.endpoint_id
                   JOIN webhook_events e ON e.id = d.event_id
                   WHERE d.endpoint_id = $1 AND w.account_id = $2
                     AND ($3::text IS NULL OR d.status = $3)
                     AND ($4::timestamptz IS NULL OR (d.created_at, d.id) < ($4, $5::uuid))
                   ORDER BY d.created_at DESC, d.id DESC
                   LIMIT $6""",
                endpoint_id, account_id, None if status is None else str(status),
                before_at, before_id, limit,
            )
            return [_rows.webhook_delivery(r) for r in rows]

        return Query(self._bridge, fetch)

    # ------------------------------------------------------------ delivery (worker)

    async def claim(
        self, *, limit: int, lease_seconds: float, busy: Sequence[uuid.UUID] = (),
        per_endpoint: int = 2,
    ) -> list[DueDelivery]:
        """Take up to ``limit`` due deliveries of enabled endpoints, oldest due first,
        at most ``per_endpoint`` of one endpoint and none of the ``busy`` ones (the
        caller's endpoints already at their limit), so one endpoint with a backlog
        cannot take every slot."""

        async def take(conn: Connection) -> list[Record]:
            return await conn.fetch(
                """WITH candidates AS (
                       SELECT d.id, d.endpoint_id, d.next_attempt_at FROM webhook_deliveries d
                       JOIN webhook_endpoints w ON w.id = d.endpoint_id
                       WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND w.enabled
                         AND d.endpoint_id <> ALL($3::uuid[])
                       ORDER BY d.next_attempt_at
                       LIMIT $1 * 4
                       FOR UPDATE OF d SKIP LOCKED
                   ), due AS (
                       SELECT id FROM (
                           SELECT id, next_attempt_at, row_number() OVER (
                               PARTITION BY endpoint_id ORDER BY next_attempt_at) AS n
                           FROM candidates) ranked
                       WHERE n <= $4
                       ORDER BY next_attempt_at
                       LIMIT $1
                   ), taken AS (
                       UPDATE webhook_deliveries d
                       SET attempts = d.attempts + 1,
                           next_attempt_at = now() + make_interval(secs => $2),
                           updated_at = now()
                       FROM due WHERE d.id = due.id
                       RETURNING d.id, d.event_id, d.endpoint_id, d.attempts
                   )
                   SELECT taken.*, w.url, w.secret, e.body, e.created_at
                   FROM taken
                   JOIN webhook_endpoints w ON w.id = taken.endpoint_id
                   JOIN webhook_events e ON e.id = taken.event_id
                   ORDER BY e.created_at""",
                limit, float(lease_seconds), list(busy), per_endpoint,
            )

        return [
            DueDelivery(
                id=r["id"], event_id=r["event_id"], endpoint_id=r["endpoint_id"], url=r["url"],
                secret=r["secret"], body=r["body"], attempt=r["attempts"],
                created_at=r["created_at"],
            )
            for r in await self._bridge.run(take)
        ]

    async def settle(self, results: Sequence[Settlement]) -> None:
        """Record attempts and their results in one transaction; a result whose
        attempt is no longer the delivery's latest claim only adds its attempt row."""
        if not results:
            return

        async def write(conn: Connection) -> None:
            async with conn.transaction():
                await conn.executemany(
                    """INSERT INTO webhook_attempts (delivery_id, attempt, status_code, error,
                                                     duration_ms)
                       VALUES ($1, $2, $3, $4, $5)""",
                    [(r.delivery_id, r.attempt, r.status_code, _text(r.error), r.duration_ms)
                     for r in results],
                )
                await conn.execute(
                    """UPDATE webhook_deliveries d
                       SET status = v.status, last_status = v.status_code, last_error = v.error,
                           next_attempt_at = coalesce(v.next_attempt_at, d.next_attempt_at),
                           updated_at = now()
                       FROM unnest($1::uuid[], $2::integer[], $3::text[], $4::integer[],
                                   $5::text[], $6::timestamptz[])
                            AS v(id, attempt, status, status_code, error, next_attempt_at)
                       WHERE d.id = v.id AND d.attempts = v.attempt AND d.status = 'pending'""",
                    [r.delivery_id for r in results], [r.attempt for r in results],
                    [str(r.status) for r in results], [r.status_code for r in results],
                    [_text(r.error) for r in results], [r.next_attempt_at for r in results],
                )

        await self._bridge.run(write)

    async def purge(self, older_than: dt.timedelta) -> int:
        """Delete events (and their deliveries and attempts) older than ``older_than``
        whose every delivery is settled."""

        async def purge(conn: Connection) -> Any:
            return await conn.fetchval(
                """WITH gone AS (
                       DELETE FROM webhook_events e
                       WHERE e.created_at < now() - $1::interval
                         AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d
                                         WHERE d.event_id = e.id AND d.status = 'pending')
                       RETURNING 1)
                   SELECT count(*) FROM gone""",
                older_than,
            )

        return int(await self._bridge.run(purge))


    # Last in the class: below it, ``list`` in an annotation would name this method.
    def list(self, *, account_id: uuid.UUID) -> Query[list[models.WebhookEndpoint]]:
        async def fetch(conn: Connection) -> list[models.WebhookEndpoint]:
            rows = await conn.fetch(
                f"""SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints
                    WHERE account_id = $1 ORDER BY created_at, id""",
                account_id,
            )
            return [_rows.webhook_endpoint(r) for r in rows]

        return Query(self._bridge, fetch)

def _text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL, and a receiver's words may contain one."""
    return None if value is None else value.replace("\x00", "\ufffd")
