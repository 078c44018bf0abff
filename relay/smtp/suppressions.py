"""Whether a transaction's account may send to a recipient: its suppression list.

Strategy: most accounts have no suppression entry at all, and for them a lookup per
``RCPT TO`` would be a database round trip per recipient for nothing (it cut SMTP
throughput by about a third: bench/README.md). So each process remembers, per
account, whether it has any live entry, for ``EMPTY_TTL`` seconds: an account
without entries is answered from memory; an account with entries gets one indexed
lookup per ``RCPT TO`` (``storage.suppressions.matching``, the unique index on
``(account_id, lower(address))``), so its entries and lifts count from the next RCPT.
The list is written by other processes (the worker adds bounces, the API adds
entries), so the first entry of an account that had none is honoured by this process
within ``smtp.suppression_cache_ttl`` seconds (2; 0 looks every time). At most ``MAX_ACCOUNTS`` accounts are remembered.

A recipient on the list is refused at RCPT with 550 5.1.1, never accepted and then
dropped: the client learns at once, and the rest of its transaction goes on. A
lookup that fails (database down) is 451 4.3.0, never a 250.
"""

from __future__ import annotations

import uuid

import attrs
import trio

from .. import models
from ..limiting import KeyedStore
from ..storage import Storage

#: Seconds an account found without entries is answered from memory (the default of
#: ``smtp.suppression_cache_ttl``).
EMPTY_TTL = 2.0
#: Accounts remembered at most (one float each).
MAX_ACCOUNTS = 100_000


@attrs.frozen
class SuppressionStatistics:
    lookups: int
    refusals: int


class SuppressionCheck:
    """Process-wide (owned by the SMTP server); it keeps no per-client state."""

    def __init__(self, storage: Storage, *, ttl: float = EMPTY_TTL) -> None:
        self._storage = storage
        self._ttl = ttl
        self._lookups = 0
        self._refusals = 0
        #: account id -> (until when it is known, whether it has live entries).
        self._known: KeyedStore[tuple[float, bool]] = KeyedStore(
            clock=trio.current_time, period=max(ttl, 1.0), max_keys=MAX_ACCOUNTS,
            idle=lambda known, now: known[0] <= now,
        )

    async def _may_have_entries(self, account_id: uuid.UUID) -> bool:
        """False only when the account was seen without entries in the last ``ttl`` seconds."""
        now = self._known.now()
        known = self._known.get(account_id)
        if known is not None and known[0] > now:
            return known[1]
        has = await self._storage.suppressions.has_entries(account_id)
        self._known.discard(account_id)
        if self._ttl > 0:
            self._known.put(account_id, (now + self._ttl, has))
        return has

    async def find(self, account_id: uuid.UUID, address: str) -> models.Suppression | None:
        """The account's live entry for ``address`` (any case), or None.

        Raises:
            StorageError: the lookup failed (DatabaseUnavailable when the database is
                down); the caller answers 451 and the client may try again.
        """
        if not await self._may_have_entries(account_id):
            return None
        self._lookups += 1
        found = (await self._storage.suppressions.matching(account_id, [address])).get(address)
        if found is not None:
            self._refusals += 1
        return found

    def statistics(self) -> SuppressionStatistics:
        return SuppressionStatistics(self._lookups, self._refusals)
