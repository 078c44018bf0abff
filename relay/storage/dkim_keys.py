"""DKIM signing keys: rows of ``dkim_keys`` (``sql/0008.dkim-keys.sql``).

The private key arrives here already encrypted (``relay.dkim.KeyEncryption``) and
leaves as it is stored: this module never sees a key it could sign with. The SMTP
side reads all of an account's enabled keys in one query (``enabled_for_account``)
and caches them for a few seconds (``relay.smtp.dkim``), so no message costs a round
trip of its own.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from .. import models
from . import _rows
from ._bridge import Bridge, Connection, Record
from ._sql import returned_row
from .errors import Conflict, InvalidReference, StorageError
from .query import Query


class SelectorTaken(Conflict):
    """The (domain, selector) pair names a key already — perhaps another account's."""

    def __init__(self) -> None:
        super().__init__("dkim_keys_domain_selector_key")


class TooManyDkimKeys(StorageError):
    """The account already has the most DKIM keys allowed (``limit``)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"an account may have at most {limit} DKIM keys")
        self.limit = limit


class DkimKeyRepository:
    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge

    async def create(
        self, *, key_id: uuid.UUID, account_id: uuid.UUID, domain: str, selector: str,
        algorithm: str, private_key: bytes, public_key: str, limit: int, enabled: bool = True,
    ) -> models.DkimKey:
        """Store a key (``private_key`` encrypted, bound to ``key_id`` by the caller).

        The account row is locked while its keys are counted, so concurrent creates
        cannot take it past ``limit``.

        Raises:
            SelectorTaken: the domain has a key with this selector (any account's).
            TooManyDkimKeys: the account has ``limit`` keys already.
            InvalidReference: no such account.
        """

        async def insert(conn: Connection) -> Record:
            try:
                async with conn.transaction():
                    if not await conn.fetchval(
                        "SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", account_id
                    ):
                        raise InvalidReference("account_id")
                    count = await conn.fetchval(
                        "SELECT count(*) FROM dkim_keys WHERE account_id = $1", account_id
                    )
                    if count >= limit:
                        raise TooManyDkimKeys(limit)
                    return await returned_row(
                        conn,
                        """INSERT INTO dkim_keys (id, account_id, domain, selector, algorithm,
                                                  private_key, public_key, enabled)
                           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *""",
                        key_id, account_id, domain, selector, algorithm, private_key,
                        public_key, enabled,
                    )
            except asyncpg.UniqueViolationError:
                raise SelectorTaken() from None

        return _rows.dkim_key(await self._bridge.run(insert))

    def get(
        self, key_id: uuid.UUID, *, account_id: uuid.UUID | None = None
    ) -> Query[models.DkimKey | None]:
        async def fetch(conn: Connection) -> models.DkimKey | None:
            row = await conn.fetchrow(
                """SELECT * FROM dkim_keys
                   WHERE id = $1 AND ($2::uuid IS NULL OR account_id = $2)""",
                key_id, account_id,
            )
            return None if row is None else _rows.dkim_key(row)

        return Query(self._bridge, fetch)

    async def enabled_for_account(self, account_id: uuid.UUID) -> list[models.DkimKey]:
        """Every enabled key of the account, all domains, oldest first: what the SMTP
        side caches (one indexed query per account per cache period)."""

        async def fetch(conn: Connection) -> list[models.DkimKey]:
            rows = await conn.fetch(
                """SELECT * FROM dkim_keys WHERE account_id = $1 AND enabled
                   ORDER BY created_at, id""",
                account_id,
            )
            return [_rows.dkim_key(r) for r in rows]

        return await self._bridge.run(fetch)

    def list(self, *, account_id: uuid.UUID | None = None) -> Query[list[models.DkimKey]]:
        """Keys oldest first (all accounts' when ``account_id`` is None)."""

        async def fetch(conn: Connection) -> list[models.DkimKey]:
            rows = await conn.fetch(
                """SELECT * FROM dkim_keys WHERE ($1::uuid IS NULL OR account_id = $1)
                   ORDER BY created_at, id""",
                account_id,
            )
            return [_rows.dkim_key(r) for r in rows]

        return Query(self._bridge, fetch)

    async def set_enabled(
        self, key_id: uuid.UUID, enabled: bool, *, account_id: uuid.UUID | None = None
    ) -> models.DkimKey | None:
        """The key as changed, or None when there is no such key (in that account)."""

        async def update(conn: Connection) -> Record | None:
            return await conn.fetchrow(
                """UPDATE dkim_keys SET enabled = $3, updated_at = now()
                   WHERE id = $1 AND ($2::uuid IS NULL OR account_id = $2) RETURNING *""",
                key_id, account_id, enabled,
            )

        row = await self._bridge.run(update)
        return None if row is None else _rows.dkim_key(row)

    async def delete(self, key_id: uuid.UUID, *, account_id: uuid.UUID | None = None) -> bool:
        async def remove(conn: Connection) -> Any:
            return await conn.fetchval(
                """DELETE FROM dkim_keys
                   WHERE id = $1 AND ($2::uuid IS NULL OR account_id = $2) RETURNING id""",
                key_id, account_id,
            )

        return await self._bridge.run(remove) is not None
