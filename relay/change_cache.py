"""Answers read from the database, served from memory until something they depend on changes.

Who may act as which account is read on hot paths: every API request (its key), every
SMTP AUTH (the login's account row) and every session that submits without AUTH (the
client address's IP credential). The answers change rarely, but when they change —
a key rotated, an account disabled, a password or allowed domain changed, an IP
credential deleted — the change must act at once, in every process and on every
machine.

Strategy: an entry is served for at most ``ttl`` seconds, and only while it was made
in the current *epoch* of ``storage.key_changes``: the epoch moves on every committed
change of an API key, an account or an IP credential (announced by LISTEN/NOTIFY in
the writing transaction, from any process), and whenever the listener connects or is
lost. The epoch is read *before* the database lookup whose result is stored
(``epoch()``, then ``put(..., epoch)``), so a change that commits while a lookup is in
flight makes that result stale at once. While the listener is not connected nothing
is served or kept: a change could commit unheard. The TTL is only a backstop.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import attrs

from .storage import KeyChanges

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
D = TypeVar("D")


@attrs.frozen
class CacheStatistics:
    hits: int
    misses: int
    size: int
    #: ``False`` while the invalidation listener is down: every lookup goes to the database.
    serving: bool


@attrs.define
class _Entry(Generic[V]):
    value: V
    expires: float


class ChangeBoundCache(Generic[K, V]):
    """``K`` → ``V``, bounded by ``max_entries`` (oldest dropped) and ``ttl``; ``ttl`` 0 = off."""

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
        self._entries: dict[K, _Entry[V]] = {}
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

    def get(self, key: K, default: V | D = None) -> V | D:  # type: ignore[assignment]
        """The cached value for ``key``, or ``default`` (look it up, then ``put``).

        Pass a sentinel ``default`` when ``None`` is itself a value worth caching.
        """
        if self.epoch() is None:
            return default
        entry = self._entries.get(key)
        if entry is None or entry.expires <= self._clock():
            if entry is not None:
                del self._entries[key]
            self._misses += 1
            return default
        self._hits += 1
        return entry.value

    def put(self, key: K, value: V, epoch: int | None) -> None:
        """Remember ``value``, read by a lookup that started in ``epoch``."""
        if epoch is None or self.epoch() != epoch:
            return  # the listener was lost or something changed during the lookup
        self._entries.pop(key, None)
        while len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = _Entry(value, self._clock() + self._ttl)

    def statistics(self) -> CacheStatistics:
        return CacheStatistics(
            hits=self._hits, misses=self._misses, size=len(self._entries),
            serving=self.enabled and self._changes.listening,
        )


__all__ = ["CacheStatistics", "ChangeBoundCache"]
