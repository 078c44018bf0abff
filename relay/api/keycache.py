"""Verified API keys, remembered for a short time so a request costs no key lookup.

Strategy: an entry maps a key's SHA-256 to the ``Caller`` it was verified as, and is
served for at most ``api.key_cache_ttl`` seconds, and only while it was made in the
current *epoch* of ``storage.key_changes``: the epoch moves on every committed key
rotation, operator key revocation, account disable/enable/delete (announced by
LISTEN/NOTIFY in the writing transaction, from any process), and whenever the
listener connects or is lost. The epoch is read *before* the database lookup whose
result is stored, so a change that commits while a lookup is in flight makes that
result stale at once. While the listener is not connected nothing is served or kept:
a change could commit unheard.

Only good keys are kept: an unknown key or a disabled account is looked up every
time (refusals are budgeted per address by ``api.auth_failures_per_minute``).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from ..storage import KeyChanges
from .caller import Caller


@attrs.frozen
class KeyCacheStatistics:
    hits: int
    misses: int
    size: int
    #: ``False`` while the invalidation listener is down: every lookup goes to the database.
    serving: bool


@attrs.define
class _Entry:
    caller: Caller
    expires: float


class KeyCache:
    """Key hash → ``Caller``, bounded by ``max_entries`` (oldest dropped) and ``ttl``."""

    def __init__(
        self,
        changes: KeyChanges,
        *,
        ttl: float,
        max_entries: int,
        clock: Callable[[], float],
    ) -> None:
        self._changes = changes
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[bytes, _Entry] = {}
        self._epoch = -1
        self._hits = 0
        self._misses = 0

    @property
    def enabled(self) -> bool:
        return self._ttl > 0

    def epoch(self) -> int | None:
        """The epoch to tag a lookup that starts now with; ``None``: do not cache.

        Starts the listener on first use (the cache is bypassed until it is ready).
        """
        if not self.enabled:
            return None
        self._changes.start()
        if not self._changes.listening:
            self._entries.clear()
            return None
        if self._changes.epoch != self._epoch:
            self._entries.clear()
            self._epoch = self._changes.epoch
        return self._epoch

    def get(self, key_hash: bytes) -> Caller | None:
        """The cached caller for this key, or ``None`` (look it up)."""
        if self.epoch() is None:
            return None
        entry = self._entries.get(key_hash)
        if entry is None or entry.expires <= self._clock():
            if entry is not None:
                del self._entries[key_hash]
            self._misses += 1
            return None
        self._hits += 1
        return entry.caller

    def put(self, key_hash: bytes, caller: Caller, epoch: int | None) -> None:
        """Remember ``caller``, verified by a lookup that started in ``epoch``."""
        if epoch is None or self.epoch() != epoch:
            return  # the listener was lost or a key changed during the lookup
        self._entries.pop(key_hash, None)
        while len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[key_hash] = _Entry(caller, self._clock() + self._ttl)

    def statistics(self) -> KeyCacheStatistics:
        return KeyCacheStatistics(
            hits=self._hits, misses=self._misses, size=len(self._entries),
            serving=self.enabled and self._changes.listening,
        )
