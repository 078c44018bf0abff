"""Upstream providers (esp_providers): per account, typed, config as jsonb."""

from __future__ import annotations

import uuid
from typing import Any

from .. import models
from . import _rows
from ._bridge import Bridge, Connection, Record
from ._sql import returned_row, update_set
from .query import Query

_UPDATABLE = ("name", "type", "config", "enabled")


class ProviderRepository:
    """Every read and write can be scoped to one account: pass ``account_id`` and a
    provider of another tenant is simply not found."""

    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge

    async def create(
        self,
        *,
        account_id: uuid.UUID,
        name: str,
        type: models.ProviderType,
        config: dict[str, Any],
        enabled: bool = True,
    ) -> models.Provider:
        """Raises: InvalidReference: the account does not exist."""

        async def insert(conn: Connection) -> Record:
            return await returned_row(
                conn,
                """INSERT INTO esp_providers (id, account_id, name, type, config, enabled)
                   VALUES ($1, $2, $3, $4, $5, $6) RETURNING *""",
                uuid.uuid4(), account_id, name, str(type), config, enabled,
            )

        return _rows.provider(await self._bridge.run(insert))

    def get(
        self, provider_id: uuid.UUID, *, account_id: uuid.UUID | None = None
    ) -> Query[models.Provider | None]:
        async def fetch(conn: Connection) -> models.Provider | None:
            row = await conn.fetchrow(
                """SELECT * FROM esp_providers
                   WHERE id = $1 AND ($2::uuid IS NULL OR account_id = $2)""",
                provider_id, account_id,
            )
            return None if row is None else _rows.provider(row)

        return Query(self._bridge, fetch)

    def list(
        self, *, account_id: uuid.UUID | None = None, limit: int | None = None
    ) -> Query[list[models.Provider]]:
        """Oldest first; ``limit`` ``None`` = all."""

        async def fetch(conn: Connection) -> list[models.Provider]:
            rows = await conn.fetch(
                """SELECT * FROM esp_providers WHERE $1::uuid IS NULL OR account_id = $1
                   ORDER BY created_at, id LIMIT $2""",
                account_id, limit,
            )
            return [_rows.provider(r) for r in rows]

        return Query(self._bridge, fetch)

    async def update(
        self, provider_id: uuid.UUID, *, account_id: uuid.UUID | None = None, **fields: Any
    ) -> models.Provider | None:
        if "type" in fields:
            fields["type"] = str(fields["type"])
        assignments, values = update_set(_UPDATABLE, fields, first_param=3)

        async def change(conn: Connection) -> Record | None:
            return await conn.fetchrow(
                f"""UPDATE esp_providers SET {assignments}
                    WHERE id = $1 AND ($2::uuid IS NULL OR account_id = $2) RETURNING *""",
                provider_id, account_id, *values,
            )

        row = await self._bridge.run(change)
        return None if row is None else _rows.provider(row)

    async def delete(
        self, provider_id: uuid.UUID, *, account_id: uuid.UUID | None = None
    ) -> bool:
        """Delete the provider; rules that name it go with it."""

        async def remove(conn: Connection) -> Any:
            return await conn.fetchval(
                """DELETE FROM esp_providers
                   WHERE id = $1 AND ($2::uuid IS NULL OR account_id = $2) RETURNING id""",
                provider_id, account_id,
            )

        return await self._bridge.run(remove) is not None
