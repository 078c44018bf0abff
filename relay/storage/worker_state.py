"""What the delivery worker keeps beside the queue: provider health and partial deliveries.

Strategy: each worker process runs its own circuit breakers in memory (a decision
must not cost a database round trip) and writes every *transition* here in one
batch, so that other worker processes start from the same state and the API can
show which providers are being skipped and why. Last writer wins: breakers are
advisory, and a stale row only means one extra probe or one extra skip.

``narrow_recipients`` exists because a message is one row with one recipient list:
when an upstream accepted some recipients and temporarily refused others, the retry
must go to the refused ones only, or the accepted ones get the message twice.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Sequence
from typing import Any

import attrs

from ._bridge import Bridge, Connection, Record
from .query import Query


class HealthState(enum.StrEnum):
    """A provider's circuit-breaker state."""

    #: In use; failures are being counted.
    CLOSED = "closed"
    #: Skipped until ``opened_until`` after ``consecutive_failures`` failures in a row.
    OPEN = "open"
    #: The cool-off ended; the next delivery is a probe that closes or reopens it.
    HALF_OPEN = "half_open"


@attrs.frozen
class ProviderHealth:
    provider_id: uuid.UUID
    state: HealthState
    consecutive_failures: int = 0
    opened_until: dt.datetime | None = None
    #: The remote's words (or ours, for a timeout) from the last failure.
    last_error: str | None = None
    last_failure_at: dt.datetime | None = None
    last_success_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


def _health(row: Record) -> ProviderHealth:
    return ProviderHealth(
        provider_id=row["provider_id"],
        state=HealthState(row["state"]),
        consecutive_failures=row["consecutive_failures"],
        opened_until=row["opened_until"],
        last_error=row["last_error"],
        last_failure_at=row["last_failure_at"],
        last_success_at=row["last_success_at"],
        updated_at=row["updated_at"],
    )


class WorkerStateRepository:
    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge

    async def save_health(self, states: Sequence[ProviderHealth]) -> None:
        """Upsert breaker states in one crossing; rows of deleted providers are skipped."""
        if not states:
            return
        rows = [
            (s.provider_id, str(s.state), s.consecutive_failures, s.opened_until,
             s.last_error, s.last_failure_at, s.last_success_at)
            for s in states
        ]

        async def upsert(conn: Connection) -> None:
            async with conn.transaction():
                await conn.executemany(
                    """INSERT INTO provider_health
                           (provider_id, state, consecutive_failures, opened_until,
                            last_error, last_failure_at, last_success_at, updated_at)
                       SELECT $1, $2, $3, $4, $5, $6, $7, now()
                       WHERE EXISTS (SELECT 1 FROM esp_providers WHERE id = $1)
                       ON CONFLICT (provider_id) DO UPDATE SET
                           state = EXCLUDED.state,
                           consecutive_failures = EXCLUDED.consecutive_failures,
                           opened_until = EXCLUDED.opened_until,
                           last_error = EXCLUDED.last_error,
                           last_failure_at = EXCLUDED.last_failure_at,
                           last_success_at = EXCLUDED.last_success_at,
                           updated_at = now()""",
                    rows,
                )

        await self._bridge.run(upsert)

    def health(
        self,
        *,
        account_id: uuid.UUID | None = None,
        provider_ids: Sequence[uuid.UUID] | None = None,
    ) -> Query[list[ProviderHealth]]:
        """Known states; a provider with no row has never failed (closed)."""

        async def fetch(conn: Connection) -> list[ProviderHealth]:
            rows = await conn.fetch(
                """SELECT h.* FROM provider_health h JOIN esp_providers p ON p.id = h.provider_id
                   WHERE ($1::uuid IS NULL OR p.account_id = $1)
                     AND ($2::uuid[] IS NULL OR h.provider_id = ANY($2::uuid[]))
                   ORDER BY h.provider_id""",
                account_id, None if provider_ids is None else list(provider_ids),
            )
            return [_health(r) for r in rows]

        return Query(self._bridge, fetch)

    async def narrow_recipients(
        self, worker_id: str, message_id: uuid.UUID, rcpt_to: Sequence[str]
    ) -> bool:
        """Keep only ``rcpt_to`` on a message this worker still holds.

        Call it before ``messages.finish`` defers a partly delivered message; if the
        worker dies in between, the reclaimed message already has the shorter list.
        Returns False (and changes nothing) when the claim was lost.

        Raises:
            ValueError: ``rcpt_to`` is empty (a message keeps at least one recipient).
        """
        if not rcpt_to:
            raise ValueError("a message keeps at least one recipient; finish it instead")

        async def update(conn: Connection) -> Any:
            return await conn.fetchval(
                """UPDATE messages SET rcpt_to = $3, updated_at = now()
                   WHERE id = $1 AND locked_by = $2 AND status = 'sending' RETURNING id""",
                message_id, worker_id, list(rcpt_to),
            )

        return await self._bridge.run(update) is not None
