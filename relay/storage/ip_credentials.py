"""IP credentials: networks from which an account submits over SMTP without AUTH.

Strategy: PostgreSQL keeps the one invariant that matters — no two networks overlap,
whoever owns them — with an exclusion constraint on the ``inet_ops`` GiST opclass
(``sql/0004.ip-credentials.sql``). Two concurrent creates of overlapping networks
cannot both commit, whatever the callers checked before; the loser gets
``NetworkOverlap`` naming the network it ran into, which the caller may show or hide.
The same index answers ``match`` (``network >>= address``), the one query SMTP makes.
SMTP keeps its answers in memory (``relay.smtp.ip_credentials``), so every create and
delete announces itself on ``key_changes`` in its own transaction.
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

import asyncpg

from .. import models
from . import _rows
from ._bridge import Bridge, Connection, Record
from ._sql import returned_row
from .errors import Conflict, InvalidReference, StorageError
from .key_changes import KeyChanges, notify
from .query import Query

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class NetworkOverlap(Conflict):
    """The network overlaps (or equals) one already stored.

    ``existing`` is that credential — possibly another tenant's, so show it only to
    an operator — or None when it was deleted before it could be read.
    """

    def __init__(self, existing: models.IpCredential | None) -> None:
        super().__init__("ip_credentials_no_overlap")
        self.existing = existing


class TooManyCredentials(StorageError):
    """The account already has the most IP credentials allowed (``limit``)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"an account may have at most {limit} IP credentials")
        self.limit = limit


class IpCredentialRepository:
    def __init__(self, bridge: Bridge, key_changes: KeyChanges) -> None:
        self._bridge = bridge
        self._key_changes = key_changes

    async def create(
        self, *, account_id: uuid.UUID, network: Network, description: str = "", limit: int
    ) -> models.IpCredential:
        """Store a network (already canonical: see ``relay.networks``) for the account.

        The account row is locked while its credentials are counted, so concurrent
        creates cannot take it past ``limit``.

        Raises:
            NetworkOverlap: the network overlaps one of any account's (or equals one).
            TooManyCredentials: the account has ``limit`` credentials already.
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
                        "SELECT count(*) FROM ip_credentials WHERE account_id = $1", account_id
                    )
                    if count >= limit:
                        raise TooManyCredentials(limit)
                    row = await returned_row(
                        conn,
                        """INSERT INTO ip_credentials (id, account_id, network, description)
                           VALUES ($1, $2, $3, $4) RETURNING *""",
                        uuid.uuid4(), account_id, network, description,
                    )
                    await notify(conn, f"ip_credential:{row['id']}")
                    return row
            except asyncpg.ExclusionViolationError:
                existing = await conn.fetchrow(
                    """SELECT * FROM ip_credentials WHERE network && $1::cidr
                       ORDER BY created_at LIMIT 1""",
                    network,
                )
                raise NetworkOverlap(None if existing is None else _rows.ip_credential(existing)) from None

        try:
            return _rows.ip_credential(await self._bridge.run(insert))
        finally:
            self._key_changes.changed()

    def get(
        self, credential_id: uuid.UUID, *, account_id: uuid.UUID | None = None
    ) -> Query[models.IpCredential | None]:
        async def fetch(conn: Connection) -> models.IpCredential | None:
            row = await conn.fetchrow(
                """SELECT * FROM ip_credentials
                   WHERE id = $1 AND ($2::uuid IS NULL OR account_id = $2)""",
                credential_id, account_id,
            )
            return None if row is None else _rows.ip_credential(row)

        return Query(self._bridge, fetch)

    def list(self, *, account_id: uuid.UUID | None = None) -> Query[list[models.IpCredential]]:
        """Credentials oldest first (all accounts' when ``account_id`` is None)."""

        async def fetch(conn: Connection) -> list[models.IpCredential]:
            rows = await conn.fetch(
                """SELECT * FROM ip_credentials WHERE ($1::uuid IS NULL OR account_id = $1)
                   ORDER BY created_at, id""",
                account_id,
            )
            return [_rows.ip_credential(r) for r in rows]

        return Query(self._bridge, fetch)

    async def delete(
        self, credential_id: uuid.UUID, *, account_id: uuid.UUID | None = None
    ) -> bool:
        async def remove(conn: Connection) -> Any:
            async with conn.transaction():
                deleted = await conn.fetchval(
                    """DELETE FROM ip_credentials
                       WHERE id = $1 AND ($2::uuid IS NULL OR account_id = $2) RETURNING id""",
                    credential_id, account_id,
                )
                if deleted is not None:
                    await notify(conn, f"ip_credential:{deleted}")
                return deleted

        try:
            return await self._bridge.run(remove) is not None
        finally:
            self._key_changes.changed()

    async def match(
        self, address: ipaddress.IPv4Address | ipaddress.IPv6Address
    ) -> tuple[models.IpCredential, models.Account] | None:
        """The credential whose network holds ``address``, with its account — only
        when that account is enabled. One indexed query; at most one row can match,
        since networks never overlap.

        Raises:
            DatabaseUnavailable, StorageError: as every repository call.
        """

        async def fetch(conn: Connection) -> Record | None:
            return await conn.fetchrow(
                """SELECT c.id AS credential_id, c.network, c.description,
                          c.created_at AS credential_created_at, a.*
                   FROM ip_credentials c JOIN accounts a ON a.id = c.account_id
                   WHERE c.network >>= $1::inet AND NOT a.disabled
                   LIMIT 1""",
                address,
            )

        row = await self._bridge.run(fetch)
        if row is None:
            return None
        credential = models.IpCredential(
            id=row["credential_id"],
            account_id=row["id"],
            network=row["network"],
            description=row["description"],
            created_at=row["credential_created_at"],
        )
        return credential, _rows.account(row)
