"""The queue: enqueue, claim, finish, reclaim, purge, and the API's views of it.

Strategy: claims use ``FOR UPDATE SKIP LOCKED`` so any number of workers share the
table without blocking each other or taking the same row. A claim is a lease:
``locked_by`` names the worker and ``locked_until`` is when the lease ends, measured
by PostgreSQL's ``now()`` so every worker shares one clock. A live worker ``renew``s
its leases; a dead worker's leases lapse, and the next ``claim`` by another worker
takes those messages over, or housekeeping's ``reclaim_expired`` puts them back in
the queue, whichever comes first. Either way the lost attempt stays counted and
gets a delivery-log row naming the worker.

Every later write checks ``locked_by`` (and ``finish`` also the attempt number, a
fencing token) so a worker whose lease lapsed cannot overwrite the new owner's
result. Delivery is therefore at-least-once: a worker that dies after the upstream
accepted but before ``finish`` commits causes one more delivery later.

Statements that lock several of one worker's rows (``finish``, ``renew``,
``release``) lock them in ``id`` order, so a worker's heartbeat and its writer never
deadlock each other.

Batch methods (``enqueue_many``, ``finish``) carry many operations across the
trio/asyncio bridge in one crossing and one transaction; ``writer`` gives the SMTP
service group commit (``batches.BatchWriter``) over the same insert.
"""

from __future__ import annotations

import builtins
import datetime as dt
import enum
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from .. import events, models
from . import _rows
from ._bridge import Bridge, Connection, Record
from .batches import BatchWriter
from .delivery_logs import AttemptLog, insert_attempt_logs
from .query import Query
from .suppressions import Bounce, insert_bounces
from .webhooks import record_events, subscribed_accounts

_LIST_COLUMNS = """id, account_id, mail_from, rcpt_to, size, status, attempts,
    next_attempt_at, locked_until, locked_by, message_id, client_ip, tls,
    correlation_id, last_error, created_at, updated_at"""


@attrs.frozen
class Finish:
    """A worker's verdict on one claimed message."""

    message_id: uuid.UUID
    status: models.MessageStatus  # SENT, DEFERRED or FAILED
    logs: tuple[AttemptLog, ...] = ()
    error: str | None = None
    #: Required for DEFERRED.
    next_attempt_at: dt.datetime | None = None
    #: The claim's ``attempts`` (``Message.attempts`` as claimed): the verdict then
    #: applies only to that claim, never to a later one of the same message.
    attempt: int | None = None
    #: Builds the webhook events reporting this verdict (they go in with it, and only if
    #: it applies). ``finish`` calls it only when an enabled endpoint of ``account_id``
    #: wants events: most accounts have none, and building, encoding and shipping a
    #: body per message for the outbox statement to drop was ~7 % of a worker's CPU.
    events: Callable[[], Sequence[models.Event]] | None = attrs.field(default=None, eq=False, repr=False)
    #: The message's account; required with ``events``.
    account_id: uuid.UUID | None = None
    #: Recipients refused for good because of the address: put on the account's
    #: suppression list with the verdict, and only if it applies (like ``events``).
    suppress: tuple[Bounce, ...] = ()

    def __attrs_post_init__(self) -> None:
        final = (models.MessageStatus.SENT, models.MessageStatus.DEFERRED, models.MessageStatus.FAILED)
        if self.status not in final:
            raise ValueError(f"a finished message is sent, deferred or failed, not {self.status}")
        if self.status is models.MessageStatus.DEFERRED and self.next_attempt_at is None:
            raise ValueError("a deferred message needs next_attempt_at")
        if self.events is not None and self.account_id is None:
            raise ValueError("events need the account_id whose endpoints they are for")


class Change(enum.Enum):
    """What happened to a retry or delete request from the API."""

    DONE = "done"
    NOT_FOUND = "not_found"
    #: The message is being sent or already sent; nothing was changed.
    WRONG_STATE = "wrong_state"


class MessageRepository:
    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge

    # ------------------------------------------------------------ SMTP side

    async def enqueue_many(self, messages: Sequence[models.NewMessage]) -> list[uuid.UUID]:
        """Store messages in one transaction; when this returns they are committed.

        Raises:
            DatabaseUnavailable: nothing was stored.
        """
        if not messages:
            return []

        await self._bridge.run(store_messages, messages)
        return [m.id for m in messages]

    def writer(self, *, max_batch: int = 256, max_batch_bytes: int = 64 << 20) -> BatchWriter[models.NewMessage]:
        """Group commit for new messages: run its ``run`` in a nursery, then ``write``."""
        return BatchWriter(
            self._bridge, store_messages, size=lambda m: m.size,
            max_batch=max_batch, max_batch_bytes=max_batch_bytes, atomic=True,
        )

    async def enqueue(self, message: models.NewMessage) -> uuid.UUID:
        return (await self.enqueue_many([message]))[0]

    # ------------------------------------------------------------ worker side

    async def claim(
        self,
        *,
        worker_id: str,
        limit: int,
        lock_seconds: float,
        held: Sequence[uuid.UUID] = (),
    ) -> list[models.Message]:
        """Take up to ``limit`` messages (with bodies) on a lease of ``lock_seconds``.

        First messages whose lease lapsed (their worker died or lost the database:
        ``status = 'sending' AND locked_until < now()``), oldest lapse first, then due
        messages, oldest due first. Each claim counts as an attempt; a lapsed lease
        taken over also gets a delivery-log row naming the worker that lost it. Rows
        another transaction holds are skipped, never waited for.

        Args:
            held: messages this worker is still delivering; never taken again, even
                if their lease lapsed (the worker's heartbeat will renew it).
        """

        async def take(conn: Connection) -> list[Record]:
            # Each arm scans its own partial index in order and locks only the rows
            # it returns (CTEs are read lazily): messages_locked_idx for lapsed
            # leases, messages_due_idx for due messages.
            return await conn.fetch(
                """WITH lapsed AS (
                       SELECT id, locked_by FROM messages
                       WHERE status = 'sending' AND locked_until < now()
                         AND id <> ALL($4::uuid[])
                       ORDER BY locked_until
                       LIMIT $2
                       FOR UPDATE SKIP LOCKED
                   ), due AS (
                       SELECT id FROM messages
                       WHERE status IN ('queued', 'deferred') AND next_attempt_at <= now()
                         AND id <> ALL($4::uuid[])
                       ORDER BY next_attempt_at
                       LIMIT $2
                       FOR UPDATE SKIP LOCKED
                   ), taken AS (
                       SELECT id FROM lapsed UNION ALL SELECT id FROM due LIMIT $2
                   ), noted AS (
                       INSERT INTO delivery_logs (message_id, outcome, response)
                       SELECT id, 'deferred', 'lease of worker ' || coalesce(locked_by, '?')
                              || ' lapsed without a result; delivering again'
                       FROM lapsed
                   )
                   UPDATE messages m
                   SET status = 'sending', attempts = m.attempts + 1,
                       locked_until = now() + make_interval(secs => $3),
                       locked_by = $1, updated_at = now()
                   FROM taken
                   WHERE m.id = taken.id
                   RETURNING m.*""",
                worker_id, limit, float(lock_seconds), list(held),
            )

        rows = await self._bridge.run(take)
        return sorted((_rows.message(r) for r in rows), key=lambda m: m.next_attempt_at)

    async def renew(
        self, worker_id: str, message_ids: Sequence[uuid.UUID], lock_seconds: float
    ) -> set[uuid.UUID]:
        """Extend this worker's leases on ``message_ids`` to ``now() + lock_seconds``.

        One statement for all of them. A lease that lapsed but was not taken is
        renewed (the row is still this worker's).

        Returns:
            The ids still held. One missing was taken over by another worker,
            reclaimed by housekeeping, or finished.
        """
        if not message_ids:
            return set()

        async def extend(conn: Connection) -> list[Record]:
            return await conn.fetch(
                """UPDATE messages m
                   SET locked_until = now() + make_interval(secs => $3)
                   FROM (SELECT id FROM messages
                         WHERE id = ANY($2::uuid[]) AND locked_by = $1 AND status = 'sending'
                         ORDER BY id
                         FOR UPDATE) mine
                   WHERE m.id = mine.id
                   RETURNING m.id""",
                worker_id, list(message_ids), float(lock_seconds),
            )

        return {r["id"] for r in await self._bridge.run(extend)}

    async def finish(self, worker_id: str, results: Sequence[Finish]) -> list[bool]:
        """Record outcomes and attempt logs in one transaction.

        Two statements for the whole batch, whatever its size: every attempt log in
        one ``executemany``, every verdict in one ``UPDATE`` over the arrays of
        results (its rows locked in ``id`` order, like ``renew`` and ``release``).

        Returns, per result, whether it applied: ``False`` means this worker no longer
        holds that claim (its lease lapsed and another worker or housekeeping took
        the message); its logs are still written.
        """
        if not results:
            return []
        # PostgreSQL text cannot hold NUL, and an upstream's words may contain one.
        results = [_storable(r) for r in results]
        columns = (
            [r.message_id for r in results],
            [str(r.status) for r in results],
            [r.error for r in results],
            [r.next_attempt_at for r in results],
            [r.attempt for r in results],
        )
        # In id order too: a log row takes a key-share lock on its message.
        logs = sorted(((r.message_id, log) for r in results for log in r.logs), key=lambda x: x[0])

        async def write(conn: Connection) -> set[uuid.UUID]:
            async with conn.transaction():
                await insert_attempt_logs(conn, logs)
                rows = await conn.fetch(
                    """WITH verdict AS (
                           SELECT * FROM unnest($2::uuid[], $3::text[], $4::text[],
                                                $5::timestamptz[], $6::integer[])
                               AS v(id, status, error, next_attempt_at, attempt)
                       ), mine AS (
                           SELECT m.id FROM messages m JOIN verdict v ON v.id = m.id
                           WHERE m.locked_by = $1 AND m.status = 'sending'
                             AND (v.attempt IS NULL OR m.attempts = v.attempt)
                           ORDER BY m.id
                           FOR UPDATE OF m
                       )
                       UPDATE messages m
                       SET status = v.status, last_error = v.error,
                           next_attempt_at = COALESCE(v.next_attempt_at, m.next_attempt_at),
                           locked_until = NULL, locked_by = NULL, updated_at = now()
                       FROM verdict v, mine
                       WHERE m.id = mine.id AND v.id = m.id
                       RETURNING m.id""",
                    worker_id, *columns,
                )
                done = {row["id"] for row in rows}
                reporting = [r for r in results if r.message_id in done and r.events is not None]
                if reporting:
                    wanted = await subscribed_accounts(conn, (r.account_id for r in reporting if r.account_id))
                    await record_events(conn, [
                        e for r in reporting if r.account_id in wanted and r.events for e in r.events()
                    ])
                await insert_bounces(
                    conn, [b for r in results if r.message_id in done for b in r.suppress]
                )
            return done

        applied = await self._bridge.run(write)
        return [r.message_id in applied for r in results]

    async def release(self, worker_id: str, message_ids: Sequence[uuid.UUID]) -> int:
        """Give back claims not attempted (graceful shutdown); the attempt is not counted."""

        async def give_back(conn: Connection) -> Any:
            return await conn.fetchval(
                """WITH given AS (
                   UPDATE messages m
                   SET status = CASE WHEN m.attempts <= 1 THEN 'queued' ELSE 'deferred' END,
                       attempts = greatest(m.attempts - 1, 0),
                       locked_until = NULL, locked_by = NULL, updated_at = now()
                   FROM (SELECT id FROM messages
                         WHERE id = ANY($2::uuid[]) AND locked_by = $1 AND status = 'sending'
                         ORDER BY id
                         FOR UPDATE) mine
                   WHERE m.id = mine.id
                   RETURNING 1)
                   SELECT count(*) FROM given""",
                worker_id, list(message_ids),
            )

        return int(await self._bridge.run(give_back))

    async def reclaim_expired(self) -> int:
        """Return messages whose lease lapsed (their worker died) to the queue.

        Each gets a delivery-log row naming the worker. Rows locked right now (being
        renewed or taken over) are skipped; they are not lapsed, or no longer.
        """

        async def reclaim(conn: Connection) -> Any:
            return await conn.fetchval(
                """WITH lapsed AS (
                       SELECT id, locked_by FROM messages
                       WHERE status = 'sending' AND locked_until < now()
                       FOR UPDATE SKIP LOCKED
                   ), noted AS (
                       INSERT INTO delivery_logs (message_id, outcome, response)
                       SELECT id, 'deferred', 'lease of worker ' || coalesce(locked_by, '?')
                              || ' lapsed without a result; back in the queue'
                       FROM lapsed
                   ), returned AS (
                       UPDATE messages m
                       SET status = 'deferred', locked_until = NULL, locked_by = NULL,
                           last_error = coalesce(m.last_error, 'worker lease lapsed'),
                           updated_at = now()
                       FROM lapsed
                       WHERE m.id = lapsed.id
                       RETURNING 1
                   )
                   SELECT count(*) FROM returned"""
            )

        return int(await self._bridge.run(reclaim))

    async def purge_finished(self, older_than: dt.timedelta) -> int:
        """Delete sent and failed messages (and their logs) finished before now - older_than."""

        async def purge(conn: Connection) -> Any:
            return await conn.fetchval(
                """WITH gone AS (
                       DELETE FROM messages WHERE status IN ('sent', 'failed')
                       AND updated_at < now() - $1::interval
                       RETURNING 1
                   )
                   SELECT count(*) FROM gone""",
                older_than,
            )

        return int(await self._bridge.run(purge))

    # ------------------------------------------------------------ API side

    def get(
        self,
        message_id: uuid.UUID,
        *,
        account_id: uuid.UUID | None = None,
        with_raw: bool = False,
    ) -> Query[models.Message | None]:
        columns = "*" if with_raw else _LIST_COLUMNS

        async def fetch(conn: Connection) -> models.Message | None:
            row = await conn.fetchrow(
                f"""SELECT {columns} FROM messages
                    WHERE id = $1 AND ($2::uuid IS NULL OR account_id = $2)""",
                message_id, account_id,
            )
            return None if row is None else _rows.message(row)

        return Query(self._bridge, fetch)

    def list(
        self,
        *,
        account_id: uuid.UUID | None = None,
        status: models.MessageStatus | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        before: tuple[dt.datetime, uuid.UUID] | None = None,
        recipient: str | None = None,
        limit: int = 50,
    ) -> Query[list[models.Message]]:
        """Newest first; ``before`` is the (created_at, id) of the previous page's last row.

        ``recipient``: only messages with this address among their recipients (exact,
        case-insensitive; rows are filtered as the index walks newest first).
        """
        before_at, before_id = before if before else (None, None)

        async def fetch(conn: Connection) -> list[models.Message]:
            rows = await conn.fetch(
                f"""SELECT {_LIST_COLUMNS} FROM messages
                    WHERE ($1::uuid IS NULL OR account_id = $1)
                      AND ($2::text IS NULL OR status = $2)
                      AND ($3::timestamptz IS NULL OR created_at >= $3)
                      AND ($4::timestamptz IS NULL OR created_at < $4)
                      AND ($5::timestamptz IS NULL OR (created_at, id) < ($5, $6::uuid))
                      AND ($8::text IS NULL
                           OR EXISTS (SELECT 1 FROM unnest(rcpt_to) r WHERE lower(r) = lower($8)))
                    ORDER BY created_at DESC, id DESC
                    LIMIT $7""",
                account_id, None if status is None else str(status), since, until,
                before_at, before_id, limit, recipient,
            )
            return [_rows.message(r) for r in rows]

        return Query(self._bridge, fetch)

    def head(
        self, message_id: uuid.UUID, *, account_id: uuid.UUID | None = None, limit: int = 65536
    ) -> Query[bytes | None]:
        """The first ``limit`` octets of a message as stored (``None``: no such message
        for this tenant); only that much leaves the database, whatever the message size."""

        async def fetch(conn: Connection) -> bytes | None:
            row = await conn.fetchrow(
                """SELECT substring(raw FROM 1 FOR $3) AS head FROM messages
                   WHERE id = $1 AND ($2::uuid IS NULL OR account_id = $2)""",
                message_id, account_id, limit,
            )
            return None if row is None else bytes(row["head"])

        return Query(self._bridge, fetch)

    def summary(self, *, account_id: uuid.UUID | None = None) -> Query[QueueSummary]:
        """Waiting messages per status (queued, sending, deferred: the queue, however
        old), messages *finished* in the last hour (sent, failed), and the oldest waiting
        one's age — for one tenant or (``None``) all. Bounded by the queue's depth and
        the last hour's traffic, not the table: the waiting statuses are what
        ``messages_due_idx`` and ``messages_locked_idx`` cover, finished ones are read
        through ``messages_finished_idx`` (``updated_at``)."""
        tenant = "" if account_id is None else "AND account_id = $1"
        args = () if account_id is None else (account_id,)

        async def fetch(conn: Connection) -> QueueSummary:
            rows = await conn.fetch(
                # One arm per partial index, each predicate that index's own.
                f"""SELECT status, count(*) AS n,
                           extract(epoch FROM now() - min(created_at)) AS oldest
                    FROM messages
                    WHERE status IN ('queued', 'deferred') {tenant}
                    GROUP BY status
                    UNION ALL
                    SELECT status, count(*), extract(epoch FROM now() - min(created_at))
                    FROM messages
                    WHERE status = 'sending' {tenant}
                    GROUP BY status
                    UNION ALL
                    SELECT status, count(*), 0
                    FROM messages
                    WHERE status IN ('sent', 'failed') AND updated_at >= now() - interval '1 hour'
                      {tenant}
                    GROUP BY status""",
                *args,
            )
            return _summary(rows)

        return Query(self._bridge, fetch)

    def per_minute(self, *, account_id: uuid.UUID | None = None) -> Query[builtins.list[tuple[dt.datetime, int]]]:
        """Messages accepted in each minute of the last hour (minutes without any are
        absent), oldest first: one range scan of an index on ``created_at``
        (``messages_created_idx``, or per tenant ``messages_account_created_idx``)."""
        tenant = "" if account_id is None else "AND account_id = $1"
        args = () if account_id is None else (account_id,)

        async def fetch(conn: Connection) -> list[tuple[dt.datetime, int]]:
            rows = await conn.fetch(
                f"""SELECT date_trunc('minute', created_at) AS minute, count(*) AS n
                    FROM messages
                    WHERE created_at >= now() - interval '1 hour' {tenant}
                    GROUP BY 1 ORDER BY 1""",
                *args,
            )
            return [(r["minute"], r["n"]) for r in rows]

        return Query(self._bridge, fetch)

    def retry(
        self, message_id: uuid.UUID, *, account_id: uuid.UUID | None = None
    ) -> Query[Change]:
        """Make a queued, deferred or failed message due now."""
        return self._change(
            message_id, account_id,
            """UPDATE messages SET status = 'queued', next_attempt_at = now(),
                   updated_at = now()
               WHERE id = $1 AND status IN ('queued', 'deferred', 'failed')
               RETURNING id""",
        )

    def delete(
        self, message_id: uuid.UUID, *, account_id: uuid.UUID | None = None
    ) -> Query[Change]:
        """Delete a message that is not being sent and was not sent."""
        return self._change(
            message_id, account_id,
            """DELETE FROM messages WHERE id = $1 AND status IN ('queued', 'deferred', 'failed')
               RETURNING id""",
        )

    def _change(
        self, message_id: uuid.UUID, account_id: uuid.UUID | None, statement: str
    ) -> Query[Change]:
        """``statement`` (``$1`` = the id, ``RETURNING`` a row when it applied) on a
        message of this tenant, locked first so the answer says why nothing changed.
        Joins the caller's transaction in ``Storage.run(..., transaction=True)``."""

        async def run(conn: Connection) -> Change:
            async with conn.transaction():
                found = await conn.fetchval(
                    """SELECT 1 FROM messages
                       WHERE id = $1 AND ($2::uuid IS NULL OR account_id = $2) FOR UPDATE""",
                    message_id, account_id,
                )
                if not found:
                    return Change.NOT_FOUND
                applied = await conn.fetchval(statement, message_id)
                return Change.WRONG_STATE if applied is None else Change.DONE

        return Query(self._bridge, run)

    async def count_by_status(
        self, *, account_id: uuid.UUID | None = None
    ) -> dict[models.MessageStatus, int]:
        async def fetch(conn: Connection) -> list[Record]:
            return await conn.fetch(
                """SELECT status, count(*) AS n FROM messages
                   WHERE $1::uuid IS NULL OR account_id = $1 GROUP BY status""",
                account_id,
            )

        counts = {s: 0 for s in models.MessageStatus}
        for row in await self._bridge.run(fetch):
            counts[models.MessageStatus(row["status"])] = row["n"]
        return counts

    async def queue_summary(self) -> QueueSummary:
        """Messages per status and the oldest waiting one, in one statement (for the
        ``queue_depth`` and ``queue_oldest_message_age_seconds`` metrics)."""

        async def fetch(conn: Connection) -> list[Record]:
            return await conn.fetch(
                """SELECT status, count(*) AS n,
                          extract(epoch FROM now() - min(created_at)) AS oldest
                   FROM messages GROUP BY status"""
            )

        return _summary(await self._bridge.run(fetch))


def _summary(rows: Sequence[Record]) -> QueueSummary:
    counts = {s: 0 for s in models.MessageStatus}
    oldest = 0.0
    for row in rows:
        status = models.MessageStatus(row["status"])
        counts[status] = row["n"]
        if status in (models.MessageStatus.QUEUED, models.MessageStatus.DEFERRED):
            oldest = max(oldest, float(row["oldest"]))
    return QueueSummary(counts, oldest)


@attrs.frozen
class QueueSummary:
    by_status: dict[models.MessageStatus, int]
    #: Seconds since the oldest queued or deferred message was accepted (0: none).
    oldest_waiting_seconds: float


_INSERT_MESSAGE = """INSERT INTO messages (id, account_id, mail_from, rcpt_to, raw, size,
                                             message_id, client_ip, tls, correlation_id)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"""


async def store_messages(conn: Connection, messages: Sequence[models.NewMessage]) -> None:
    """Asyncio side: store ``messages`` and their ``message.queued`` events, all or
    nothing, in its own transaction.

    The accept path's round trips are its latency: when no account of the batch has a
    webhook wanting ``message.queued`` (the usual case), this is two statements, the
    subscription check and one ``executemany`` — which asyncpg (≥ 0.22) makes atomic by
    itself, so no BEGIN and no COMMIT round trip. Otherwise the rows and their events
    go in one explicit transaction. The check runs before the insert either way, so a
    webhook endpoint created while a batch is being stored may miss that batch's
    events — as it could when the check ran inside the transaction (READ COMMITTED
    sees what committed before each statement).
    """
    kind = models.EventKind.MESSAGE_QUEUED
    wanted = await subscribed_accounts(conn, (m.account_id for m in messages), kind)
    if not wanted:
        await _insert_messages(conn, messages)
        return
    now = dt.datetime.now(dt.UTC)
    queued = [
        events.message_event(
            kind, message_id=m.id, account_id=m.account_id,
            mail_from=m.mail_from, rcpt_to=m.rcpt_to, at=now, queued_at=now,
            message_id_header=m.message_id, correlation_id=m.correlation_id,
        )
        for m in messages if m.account_id in wanted
    ]
    async with conn.transaction():
        await _insert_messages(conn, messages)
        await record_events(conn, queued)


async def _insert_messages(conn: Connection, messages: Sequence[models.NewMessage]) -> None:
    """Asyncio side: the message rows alone (one ``executemany``: atomic on its own)."""
    await conn.executemany(
        _INSERT_MESSAGE,
        [
            (m.id, m.account_id, m.mail_from, list(m.rcpt_to), m.raw, m.size,
             m.message_id, m.client_ip, m.tls, m.correlation_id)
            for m in messages
        ],
    )


def _storable(result: Finish) -> Finish:
    """``result`` with NUL (which PostgreSQL text refuses) replaced in its texts."""
    texts = [result.error or "", *(log.response for log in result.logs)]
    if not any("\x00" in t for t in texts):
        return result
    return attrs.evolve(
        result,
        error=None if result.error is None else result.error.replace("\x00", "\ufffd"),
        logs=tuple(
            attrs.evolve(log, response=log.response.replace("\x00", "\ufffd")) for log in result.logs
        ),
    )
