"""Routing rules: per account, ordered by priority (lower first)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Literal

from .. import models
from . import _rows
from ._bridge import Bridge, Connection, Record
from ._sql import update_set
from .errors import InvalidReference
from .query import Query

_UPDATABLE = (
    "name", "priority", "conditions", "provider_id", "fallback_provider_ids", "enabled"
)

# Every provider a rule names must belong to the rule's account; checked inside the
# writing transaction so that no race can attach another tenant's provider.
_OWNED = """SELECT count(DISTINCT id) = cardinality(array(SELECT DISTINCT unnest($1::uuid[])))
            FROM esp_providers WHERE id = ANY($1::uuid[]) AND account_id = $2"""


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
        fallback_provider_ids: Sequence[uuid.UUID] = (),
    ) -> models.RoutingRule:
        """Raises: InvalidReference: a provider is not one of this account's."""
        fallbacks = list(fallback_provider_ids)

        async def insert(conn: Connection) -> Record | None:
            async with conn.transaction():
                if not await conn.fetchval(_OWNED, [provider_id, *fallbacks], account_id):
                    return None
                return await conn.fetchrow(
                    """INSERT INTO routing_rules (id, account_id, name, priority, conditions,
                                                  provider_id, enabled, fallback_provider_ids)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *""",
                    uuid.uuid4(), account_id, name, priority, conditions, provider_id,
                    enabled, fallbacks,
                )

        row = await self._bridge.run(insert)
        if row is None:
            raise InvalidReference("provider_id")
        return _rows.routing_rule(row)

    def get(
        self, rule_id: uuid.UUID, *, account_id: uuid.UUID | None = None
    ) -> Query[models.RoutingRule | None]:
        async def fetch(conn: Connection) -> models.RoutingRule | None:
            row = await conn.fetchrow(
                """SELECT * FROM routing_rules
                   WHERE id = $1 AND ($2::uuid IS NULL OR account_id = $2)""",
                rule_id, account_id,
            )
            return None if row is None else _rows.routing_rule(row)

        return Query(self._bridge, fetch)

    def list(
        self, *, account_id: uuid.UUID | None = None, enabled_only: bool = False,
        limit: int | None = None,
    ) -> Query[list[models.RoutingRule]]:
        """Rules in evaluation order: priority, then age; ``limit`` ``None`` = all."""

        async def fetch(conn: Connection) -> list[models.RoutingRule]:
            rows = await conn.fetch(
                """SELECT * FROM routing_rules
                   WHERE ($1::uuid IS NULL OR account_id = $1) AND (NOT $2 OR enabled)
                   ORDER BY priority, created_at, id LIMIT $3""",
                account_id, enabled_only, limit,
            )
            return [_rows.routing_rule(r) for r in rows]

        return Query(self._bridge, fetch)

    async def update(
        self, rule_id: uuid.UUID, *, account_id: uuid.UUID | None = None, **fields: Any
    ) -> models.RoutingRule | None:
        """Raises: InvalidReference: a new provider is not of the rule's account."""
        if "fallback_provider_ids" in fields:
            fields["fallback_provider_ids"] = list(fields["fallback_provider_ids"])
        assignments, values = update_set(_UPDATABLE, fields, first_param=2)

        async def change(conn: Connection) -> Record | Literal["bad-provider"] | None:
            async with conn.transaction():
                current = await conn.fetchrow(
                    """SELECT * FROM routing_rules
                       WHERE id = $1 AND ($2::uuid IS NULL OR account_id = $2) FOR UPDATE""",
                    rule_id, account_id,
                )
                if current is None:
                    return None
                primary = fields.get("provider_id", current["provider_id"])
                fallbacks = fields.get("fallback_provider_ids", current["fallback_provider_ids"])
                if not await conn.fetchval(_OWNED, [primary, *fallbacks], current["account_id"]):
                    return "bad-provider"
                return await conn.fetchrow(
                    f"UPDATE routing_rules SET {assignments} WHERE id = $1 RETURNING *",
                    rule_id, *values,
                )

        row = await self._bridge.run(change)
        if row == "bad-provider":
            raise InvalidReference("provider_id")
        return None if row is None else _rows.routing_rule(row)

    async def delete(self, rule_id: uuid.UUID, *, account_id: uuid.UUID | None = None) -> bool:
        async def remove(conn: Connection) -> Any:
            return await conn.fetchval(
                """DELETE FROM routing_rules
                   WHERE id = $1 AND ($2::uuid IS NULL OR account_id = $2) RETURNING id""",
                rule_id, account_id,
            )

        return await self._bridge.run(remove) is not None
