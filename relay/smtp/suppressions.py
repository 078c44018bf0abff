"""Whether a transaction's account may send to a recipient: its suppression list.

Strategy: one indexed lookup per ``RCPT TO`` (``storage.suppressions.matching``,
served by the unique index on ``(account_id, lower(address))``), no cache. A cache
would save that round trip, but the list is written by other processes (the worker
adds bounces, the API adds and lifts entries) and this process would hear of it only
when its cache expired; without one, an entry counts from the first RCPT after it
commits, in every SMTP process, and a lifted one likewise. The cost is measured in
``bench/README.md`` ("Suppression lookup at RCPT").

A recipient on the list is refused at RCPT with 550 5.1.1, never accepted and then
dropped: the client learns at once, and the rest of its transaction goes on. A
lookup that fails (database down) is 451 4.3.0, never a 250.
"""

from __future__ import annotations

import uuid

import attrs

from .. import models
from ..storage import Storage


@attrs.frozen
class SuppressionStatistics:
    lookups: int
    refusals: int


class SuppressionCheck:
    """Process-wide (owned by the SMTP server); it keeps no per-client state."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._lookups = 0
        self._refusals = 0

    async def find(self, account_id: uuid.UUID, address: str) -> models.Suppression | None:
        """The account's live entry for ``address`` (any case), or None.

        Raises:
            StorageError: the lookup failed (DatabaseUnavailable when the database is
                down); the caller answers 451 and the client may try again.
        """
        self._lookups += 1
        found = (await self._storage.suppressions.matching(account_id, [address])).get(address)
        if found is not None:
            self._refusals += 1
        return found

    def statistics(self) -> SuppressionStatistics:
        return SuppressionStatistics(self._lookups, self._refusals)
