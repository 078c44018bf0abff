"""delivery_logs: one row per attempt at one provider."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import attrs

from .. import models
from . import _rows
from ._bridge import Bridge, Connection
from .query import Query


@attrs.frozen
class AttemptLog:
    """What a worker writes about one try at one provider."""

    outcome: models.DeliveryOutcome
    response: str
    duration_ms: int
    provider_id: uuid.UUID | None = None
    provider_type: str | None = None


async def insert_attempt_logs(
    conn: Connection, logs: Sequence[tuple[uuid.UUID, AttemptLog]]
) -> None:
    """Asyncio side: insert (message id, attempt) rows inside the caller's transaction."""
    if logs:
        await conn.executemany(
            """INSERT INTO delivery_logs
                   (message_id, provider_id, provider_type, outcome, response, duration_ms)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            [
                (message_id, log.provider_id, log.provider_type, str(log.outcome),
                 log.response, log.duration_ms)
                for message_id, log in logs
            ],
        )


class DeliveryLogRepository:
    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge

    def list_for_message(self, message_id: uuid.UUID) -> Query[list[models.DeliveryLog]]:
        """Attempts in the order they happened."""

        async def fetch(conn: Connection) -> list[models.DeliveryLog]:
            rows = await conn.fetch(
                "SELECT * FROM delivery_logs WHERE message_id = $1 ORDER BY id", message_id
            )
            return [_rows.delivery_log(r) for r in rows]

        return Query(self._bridge, fetch)
