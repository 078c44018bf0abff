"""Suppression lists: the addresses each account no longer sends to.

Strategy: one row per (account, address), the address compared case-insensitively
through a unique index on ``(account_id, lower(address))`` — RFC 5321 §2.4 allows a
case-sensitive local part, but no mailbox provider honours one, so ``Bob@`` is the
mailbox that bounced as ``bob@``. The same index answers ``matching``, the one query
SMTP makes per ``RCPT TO``.

Adding is an upsert, manual and automatic alike: an address already listed gets the
new reason, source, expiry, message and response (the latest add wins) instead of a
conflict, so a client that repeats a POST, or two bounces of one address, never
fail. The ``recipient.suppressed`` webhook event is recorded, in the same
transaction, only when the address was *newly* suppressed — no entry before, or an
expired one — never when a live entry is merely refreshed: a receiver learns once
that mail to an address stops, not on every later bounce of it.

An entry whose ``expires_at`` has passed counts as absent everywhere (listing,
reading, deleting, matching, adding); housekeeping deletes such rows
(``purge_expired``).

The worker's adds (``insert_bounces``) run on the asyncio side inside the
transaction of ``MessageRepository.finish``, so an address is suppressed if and only
if the verdict that bounced it was applied.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import attrs

from .. import events, models
from . import _rows
from ._bridge import Bridge, Connection
from ._sql import returned_row
from .errors import InvalidReference
from .query import Query
from .webhooks import record_events

#: Bounds the table's CHECK constraints enforce (``sql/0007.suppressions.sql``).
MAX_ADDRESS = 320
MAX_REASON = 500
MAX_RESPONSE = 2000

def _live(table: str = "") -> str:
    """The condition for an entry that has not expired."""
    column = f"{table}.expires_at" if table else "expires_at"
    return f"({column} IS NULL OR {column} > now())"


_LIVE = _live()


@attrs.frozen
class Bounce:
    """A recipient a provider refused for good because of the address itself.

    Carried in ``Finish.suppress`` and added to the account's list with the verdict.
    """

    account_id: uuid.UUID
    address: str
    #: The remote's words (the RCPT reply, the API's error).
    response: str
    message_id: uuid.UUID | None = None
    provider_id: uuid.UUID | None = None
    provider_type: str | None = None
    correlation_id: str | None = None


@attrs.frozen
class Added:
    """What ``add`` did."""

    entry: models.Suppression
    #: The address was not suppressed before (no entry, or an expired one); a
    #: ``recipient.suppressed`` event was recorded. False: a live entry was refreshed.
    new: bool


@attrs.frozen
class _Entry:
    account_id: uuid.UUID
    address: str
    reason: str
    source: models.SuppressionSource
    expires_at: dt.datetime | None = None
    message_id: uuid.UUID | None = None
    response: str | None = None
    provider_id: uuid.UUID | None = None
    provider_type: str | None = None
    correlation_id: str | None = None


def _text(value: str, limit: int) -> str:
    """PostgreSQL text refuses NUL; the table bounds every text."""
    value = value.replace("\x00", "\ufffd")
    return value if len(value) <= limit else value[: limit - 1] + "…"


async def _upsert(conn: Connection, entries: Sequence[_Entry]) -> list[Added]:
    """Asyncio side, inside the caller's transaction: add or refresh each entry and
    record a ``recipient.suppressed`` event for each newly suppressed address.

    One statement per entry: two entries for the same address in one batch (two
    bounces in one ``finish``) must see each other, which one multi-row upsert cannot.
    """
    added: list[Added] = []
    for e in entries:
        row = await returned_row(
            conn,
            f"""WITH old AS (
                    SELECT expires_at FROM suppressions
                    WHERE account_id = $2 AND lower(address) = lower($3)
                )
                INSERT INTO suppressions AS s (id, account_id, address, reason, source,
                                               message_id, response, expires_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                ON CONFLICT (account_id, lower(address)) DO UPDATE
                SET reason = EXCLUDED.reason, source = EXCLUDED.source,
                    message_id = EXCLUDED.message_id, response = EXCLUDED.response,
                    expires_at = EXCLUDED.expires_at, updated_at = now(),
                    -- An expired entry is absent: its return is a new entry.
                    created_at = CASE WHEN {_live('s')} THEN s.created_at ELSE now() END,
                    address = CASE WHEN {_live('s')} THEN s.address ELSE EXCLUDED.address END
                RETURNING s.*, s.xmax = 0 AS inserted,
                          (SELECT coalesce(expires_at <= now(), false) FROM old) AS was_expired""",
            uuid.uuid4(), e.account_id, e.address, _text(e.reason, MAX_REASON), str(e.source),
            e.message_id, None if e.response is None else _text(e.response, MAX_RESPONSE),
            e.expires_at,
        )
        added.append(Added(_rows.suppression(row), bool(row["inserted"] or row["was_expired"])))
    now = dt.datetime.now(dt.UTC)
    await record_events(conn, [
        events.recipient_suppressed(
            account_id=e.account_id, address=a.entry.address, reason=a.entry.reason,
            source=str(e.source), at=now, expires_at=e.expires_at, message_id=e.message_id,
            provider_id=e.provider_id, provider_type=e.provider_type, response=a.entry.response,
            correlation_id=e.correlation_id,
        )
        for e, a in zip(entries, added, strict=True) if a.new
    ])
    return added


async def insert_bounces(conn: Connection, bounces: Sequence[Bounce]) -> None:
    """Asyncio side, inside ``MessageRepository.finish``'s transaction: put each
    bounced address on its account's list (no expiry). An address too long for the
    table is skipped: it cannot have been submitted over SMTP (RFC 5321 §4.5.3.1.3)."""
    await _upsert(conn, [
        _Entry(
            account_id=b.account_id, address=b.address,
            reason="the recipient's server refused the address for good",
            source=models.SuppressionSource.BOUNCE, message_id=b.message_id,
            response=b.response, provider_id=b.provider_id, provider_type=b.provider_type,
            correlation_id=b.correlation_id,
        )
        for b in bounces if len(b.address) <= MAX_ADDRESS
    ])


def _like(text: str) -> str:
    """``text`` as a LIKE substring pattern, its wildcards taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class SuppressionRepository:
    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge

    async def add(
        self, *, account_id: uuid.UUID, address: str, reason: str,
        expires_at: dt.datetime | None = None,
    ) -> Added:
        """Suppress ``address`` for the account by hand (source ``manual``), or refresh
        its entry; see the module docstring for what a refresh changes.

        Raises:
            InvalidReference: no such account.
            DatabaseUnavailable, StorageError: as every repository call.
        """
        entry = _Entry(
            account_id=account_id, address=address, reason=reason,
            source=models.SuppressionSource.MANUAL, expires_at=expires_at,
        )

        async def write(conn: Connection) -> Added:
            async with conn.transaction():
                return (await _upsert(conn, [entry]))[0]

        try:
            return await self._bridge.run(write)
        except InvalidReference:
            raise InvalidReference("account_id") from None

    def list(
        self, *, account_id: uuid.UUID, address: str | None = None,
        source: models.SuppressionSource | None = None,
        before: tuple[dt.datetime, uuid.UUID] | None = None, limit: int = 50,
    ) -> Query[list[models.Suppression]]:
        """Live entries newest first; ``address`` matches a case-insensitive substring;
        ``before`` is the (created_at, id) of the previous page's last entry."""
        before_at, before_id = before if before else (None, None)

        async def fetch(conn: Connection) -> list[models.Suppression]:
            rows = await conn.fetch(
                f"""SELECT * FROM suppressions
                    WHERE account_id = $1 AND {_LIVE}
                      AND ($2::text IS NULL OR lower(address) LIKE lower($2))
                      AND ($3::text IS NULL OR source = $3)
                      AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::uuid))
                    ORDER BY created_at DESC, id DESC
                    LIMIT $6""",
                account_id, None if address is None else _like(address),
                None if source is None else str(source), before_at, before_id, limit,
            )
            return [_rows.suppression(r) for r in rows]

        return Query(self._bridge, fetch)

    def get(
        self, entry_id: uuid.UUID, *, account_id: uuid.UUID
    ) -> Query[models.Suppression | None]:
        async def fetch(conn: Connection) -> models.Suppression | None:
            row = await conn.fetchrow(
                f"SELECT * FROM suppressions WHERE id = $1 AND account_id = $2 AND {_LIVE}",
                entry_id, account_id,
            )
            return None if row is None else _rows.suppression(row)

        return Query(self._bridge, fetch)

    async def delete(self, entry_id: uuid.UUID, *, account_id: uuid.UUID) -> bool:
        """Lift a suppression: the next RCPT TO for the address is accepted. False when
        there is no such live entry of this account."""

        async def remove(conn: Connection) -> Any:
            return await conn.fetchval(
                f"""DELETE FROM suppressions WHERE id = $1 AND account_id = $2 AND {_LIVE}
                    RETURNING id""",
                entry_id, account_id,
            )

        return await self._bridge.run(remove) is not None

    def matching(
        self, account_id: uuid.UUID, addresses: Sequence[str]
    ) -> Query[dict[str, models.Suppression]]:
        """The live entries for ``addresses`` (keyed by the address as given). One
        indexed lookup per address (``suppressions_address_idx``); the case folding
        is PostgreSQL's on both sides, so it agrees with the unique index."""

        async def fetch(conn: Connection) -> dict[str, models.Suppression]:
            rows = await conn.fetch(
                f"""SELECT a.given, s.* FROM unnest($2::text[]) AS a(given)
                    JOIN suppressions s
                      ON s.account_id = $1 AND lower(s.address) = lower(a.given)
                    WHERE {_live('s')}""",
                account_id, list(addresses),
            )
            return {r["given"]: _rows.suppression(r) for r in rows}

        return Query(self._bridge, fetch)

    async def has_entries(self, account_id: uuid.UUID) -> bool:
        """Whether the account has any live entry (one index probe)."""

        async def fetch(conn: Connection) -> bool:
            return bool(await conn.fetchval(
                f"SELECT EXISTS (SELECT 1 FROM suppressions s WHERE s.account_id = $1 AND {_live('s')})",
                account_id,
            ))

        return await self._bridge.run(fetch)

    async def suppressed(self, account_id: uuid.UUID, addresses: Sequence[str]) -> set[str]:
        """Which of ``addresses`` (as given) the account does not send to."""
        return set(await self.matching(account_id, addresses))

    async def suppressed_pairs(
        self, pairs: Sequence[tuple[uuid.UUID, str]]
    ) -> set[tuple[uuid.UUID, str]]:
        """Which (account, address) pairs (as given) have a live entry: the worker's
        check of a claimed batch, one query whatever the number of accounts."""
        if not pairs:
            return set()

        async def fetch(conn: Connection) -> set[tuple[uuid.UUID, str]]:
            rows = await conn.fetch(
                f"""SELECT DISTINCT p.account_id, p.given
                    FROM unnest($1::uuid[], $2::text[]) AS p(account_id, given)
                    JOIN suppressions s
                      ON s.account_id = p.account_id AND lower(s.address) = lower(p.given)
                    WHERE {_live('s')}""",
                [a for a, _ in pairs], [address for _, address in pairs],
            )
            return {(r["account_id"], r["given"]) for r in rows}

        return await self._bridge.run(fetch)

    async def purge_expired(self) -> int:
        """Delete entries whose expiry has passed (they already count as absent)."""

        async def purge(conn: Connection) -> Any:
            return await conn.fetchval(
                """WITH gone AS (
                       DELETE FROM suppressions WHERE expires_at <= now() RETURNING 1)
                   SELECT count(*) FROM gone"""
            )

        return int(await self._bridge.run(purge))
