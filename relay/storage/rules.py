"""Routing rules: per account, ordered by priority (lower first)."""

from __future__ import annotations

import uuid
from typing import Any

from .. import models
from . import _rows
from ._bridge import Bridge
from ._sql import update_set
from .errors import InvalidReference

_UPDATABLE = ("name", "priority", "conditions", "provider_id", "enabled")

# A rule may only name a provider of its own account; checked in the same statement
# so that no race can attach another tenant's provider.
_SAME_ACCOUNT = "EXISTS (SELECT 1 FROM esp_providers p WHERE p.id = {pid} AND p.account_id = {aid})"


class RoutingRuleRepository:
    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge

    async def create(
        self,
        *,
        account_id: uuid.UUID,
        provider_id: uuid.UUID,
        conditions: dict[str, Any],
        priority: int = 100,
        name: str = "",
        enabled: bool = True,
    ) -> models.RoutingRule:
        """Raises: InvalidReference: the provider is not one of this account's."""

        async def insert(conn: Any) -> Any:
            return await conn.fetchrow(
                f"""INSERT INTO routing_rules
                        (id, account_id, name, priority, conditions, provider_id, enabled)
                    SELECT $1, $2, $3, $4, $5, $6, $7
                    WHERE {_SAME_ACCOUNT.format(pid="$6", aid="$2")}
                    RETURNING *""",
                uuid.uuid4(), account_id, name, priority, conditions, provider_id, enabled,
            )

        row = await self._bridge.run(insert)
        if row is None:
            raise InvalidReference("provider_id")
        return _rows.routing_rule(row)

    async def get(
        self, rule_id: uuid.UUID, *, account_id: uuid.UUID | None = None
    ) -> models.RoutingRule | None:
        async def fetch(conn: Any) -> Any:
            return await conn.fetchrow(
                """SELECT * FROM routing_rules
                   WHERE id = $1 AND ($2::uuid IS NULL OR account_id = $2)""",
                rule_id, account_id,
            )

        row = await self._bridge.run(fetch)
        return None if row is None else _rows.routing_rule(row)

    async def list(
        self, *, account_id: uuid.UUID | None = None, enabled_only: bool = False
    ) -> list[models.RoutingRule]:
        """Rules in evaluation order: priority, then age."""

        async def fetch(conn: Any) -> Any:
            return await conn.fetch(
                """SELECT * FROM routing_rules
                   WHERE ($1::uuid IS NULL OR account_id = $1) AND (NOT $2 OR enabled)
                   ORDER BY priority, created_at, id""",
                account_id, enabled_only,
            )

        return [_rows.routing_rule(r) for r in await self._bridge.run(fetch)]

    async def update(
        self, rule_id: uuid.UUID, *, account_id: uuid.UUID | None = None, **fields: Any
    ) -> models.RoutingRule | None:
        """Raises: InvalidReference: a new provider_id is not of the rule's account."""
        assignments, values = update_set(_UPDATABLE, fields, first_param=3)
        check = ""
        if "provider_id" in fields:
            index = 3 + list(fields).index("provider_id")
            check = " AND " + _SAME_ACCOUNT.format(pid=f"${index}", aid="routing_rules.account_id")

        async def change(conn: Any) -> Any:
            async with conn.transaction():
                row = await conn.fetchrow(
                    f"""UPDATE routing_rules SET {assignments}
                        WHERE id = $1 AND ($2::uuid IS NULL OR account_id = $2){check}
                        RETURNING *""",
                    rule_id, account_id, *values,
                )
                if row is None and check:
                    exists = await conn.fetchval(
                        """SELECT 1 FROM routing_rules
                           WHERE id = $1 AND ($2::uuid IS NULL OR account_id = $2)""",
                        rule_id, account_id,
                    )
                    return "bad-provider" if exists else None
                return row

        row = await self._bridge.run(change)
        if row == "bad-provider":
            raise InvalidReference("provider_id")
        return None if row is None else _rows.routing_rule(row)

    async def delete(self, rule_id: uuid.UUID, *, account_id: uuid.UUID | None = None) -> bool:
        async def remove(conn: Any) -> Any:
            return await conn.execute(
                """DELETE FROM routing_rules
                   WHERE id = $1 AND ($2::uuid IS NULL OR account_id = $2)""",
                rule_id, account_id,
            )

        return bool(await self._bridge.run(remove) == "DELETE 1")
