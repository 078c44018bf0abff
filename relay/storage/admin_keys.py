"""Operator API keys: only their SHA-256 is stored."""

from __future__ import annotations

import uuid
from typing import Any

from .. import models
from . import _rows
from ._bridge import Bridge
from .key_changes import KeyChanges, notify


class AdminKeyRepository:
    def __init__(self, bridge: Bridge, key_changes: KeyChanges) -> None:
        self._bridge = bridge
        self._key_changes = key_changes

    async def create(self, *, name: str, key_hash: bytes, key_prefix: str) -> models.AdminKey:
        async def insert(conn: Any) -> Any:
            return await conn.fetchrow(
                """INSERT INTO admin_keys (id, name, key_hash, key_prefix)
                   VALUES ($1, $2, $3, $4) RETURNING *""",
                uuid.uuid4(), name, key_hash, key_prefix,
            )

        return _rows.admin_key(await self._bridge.run(insert))

    async def find_active(self, key_hash: bytes) -> models.AdminKey | None:
        """The unrevoked key with this hash, marking it used."""

        async def fetch(conn: Any) -> Any:
            return await conn.fetchrow(
                """UPDATE admin_keys SET last_used_at = now()
                   WHERE key_hash = $1 AND revoked_at IS NULL RETURNING *""",
                key_hash,
            )

        row = await self._bridge.run(fetch)
        return None if row is None else _rows.admin_key(row)

    async def list(self) -> list[models.AdminKey]:
        async def fetch(conn: Any) -> Any:
            return await conn.fetch("SELECT * FROM admin_keys ORDER BY created_at, id")

        return [_rows.admin_key(r) for r in await self._bridge.run(fetch)]

    async def count_active(self) -> int:
        async def fetch(conn: Any) -> Any:
            return await conn.fetchval(
                "SELECT count(*) FROM admin_keys WHERE revoked_at IS NULL"
            )

        return int(await self._bridge.run(fetch))

    async def revoke(self, key_id: uuid.UUID) -> bool:
        """Revoke the key, announcing it to every process's key cache in the same transaction."""

        async def change(conn: Any) -> Any:
            async with conn.transaction():
                status = await conn.execute(
                    """UPDATE admin_keys SET revoked_at = now()
                       WHERE id = $1 AND revoked_at IS NULL""",
                    key_id,
                )
                if status == "UPDATE 1":
                    await notify(conn, f"admin_key:{key_id}")
                return status

        try:
            return bool(await self._bridge.run(change) == "UPDATE 1")
        finally:
            self._key_changes.changed()
