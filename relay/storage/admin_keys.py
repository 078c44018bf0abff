"""Operator API keys: only their SHA-256 is stored."""

from __future__ import annotations

import uuid
from typing import Any

from .. import models
from . import _rows
from ._bridge import Bridge, Connection, Record
from ._sql import returned_row
from .key_changes import KeyChanges, notify

#: Seconds within which a key's ``last_used_at`` is not written again.
LAST_USED_RESOLUTION = 60.0


class AdminKeyRepository:
    def __init__(self, bridge: Bridge, key_changes: KeyChanges) -> None:
        self._bridge = bridge
        self._key_changes = key_changes

    async def create(self, *, name: str, key_hash: bytes, key_prefix: str) -> models.AdminKey:
        async def insert(conn: Connection) -> Record:
            return await returned_row(
                conn,
                """INSERT INTO admin_keys (id, name, key_hash, key_prefix)
                   VALUES ($1, $2, $3, $4) RETURNING *""",
                uuid.uuid4(), name, key_hash, key_prefix,
            )

        return _rows.admin_key(await self._bridge.run(insert))

    async def find_active(self, key_hash: bytes) -> models.AdminKey | None:
        """The unrevoked key with this hash.

        Marks it used, but writes ``last_used_at`` at most once a minute per key (a
        lookup within the minute changes no row), so authentication is a read.
        """

        async def fetch(conn: Connection) -> Record | None:
            return await conn.fetchrow(
                """WITH found AS (
                       SELECT * FROM admin_keys WHERE key_hash = $1 AND revoked_at IS NULL
                   ), touched AS (
                       UPDATE admin_keys SET last_used_at = now()
                       WHERE id IN (SELECT id FROM found)
                         AND (last_used_at IS NULL
                              OR last_used_at < now() - make_interval(secs => $2))
                       RETURNING last_used_at
                   )
                   SELECT id, name, key_prefix, created_at, revoked_at,
                          coalesce((SELECT last_used_at FROM touched), last_used_at)
                              AS last_used_at
                   FROM found""",
                key_hash, LAST_USED_RESOLUTION,
            )

        row = await self._bridge.run(fetch)
        return None if row is None else _rows.admin_key(row)

    async def list(self) -> list[models.AdminKey]:
        async def fetch(conn: Connection) -> list[Record]:
            return await conn.fetch("SELECT * FROM admin_keys ORDER BY created_at, id")

        return [_rows.admin_key(r) for r in await self._bridge.run(fetch)]

    async def count_active(self) -> int:
        async def fetch(conn: Connection) -> Any:
            return await conn.fetchval(
                "SELECT count(*) FROM admin_keys WHERE revoked_at IS NULL"
            )

        return int(await self._bridge.run(fetch))

    async def revoke(self, key_id: uuid.UUID) -> bool:
        """Revoke the key, announcing it to every process's key cache in the same transaction."""

        async def change(conn: Connection) -> bool:
            async with conn.transaction():
                revoked = await conn.fetchval(
                    """UPDATE admin_keys SET revoked_at = now()
                       WHERE id = $1 AND revoked_at IS NULL RETURNING id""",
                    key_id,
                )
                if revoked is not None:
                    await notify(conn, f"admin_key:{key_id}")
                return revoked is not None

        try:
            return await self._bridge.run(change)
        finally:
            self._key_changes.changed()
