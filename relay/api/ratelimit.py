"""Per-key request budget: a token bucket of ``api.rate_limit_per_minute``.

Strategy: each key owns a bucket that holds at most ``per_minute`` tokens and refills
continuously at ``per_minute / 60`` tokens a second; a request takes one token or is
refused with the seconds until one is back (the ``Retry-After`` of the 429). A key
may thus burst its whole minute at once but never exceed the rate over time.

The limiter is in-process state owned by one app: several API processes each apply
the limit on their own. Memory is bounded: buckets that have refilled completely carry
no information and are dropped by ``_sweep``, and at most ``max_keys`` are tracked
(beyond that the oldest are forgotten, which only ever errs towards allowing).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable

import attrs


@attrs.frozen
class Decision:
    allowed: bool
    #: Whole seconds until a request would be allowed (0 when allowed).
    retry_after: int
    remaining: int


@attrs.frozen
class Statistics:
    keys: int
    refused: int


@attrs.define
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets keyed by API key hash.

    Args:
        per_minute: the budget; also the largest burst.
        clock: seconds on a monotonic clock (``trio.current_time`` in the app).
        max_keys: keys tracked at once.
    """

    def __init__(
        self, per_minute: int, clock: Callable[[], float], *, max_keys: int = 100_000
    ) -> None:
        if per_minute < 1:
            raise ValueError("api.rate_limit_per_minute must be 1 or more")
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[Hashable, _Bucket] = {}
        self._refused = 0
        self._last_sweep = clock()

    def take(self, key: Hashable) -> Decision:
        """Spend one token of ``key``'s budget, or say how long to wait."""
        now = self._clock()
        self._sweep(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._buckets.pop(next(iter(self._buckets)))
            bucket = self._buckets[key] = _Bucket(self._capacity, now)
        else:
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(self._capacity, bucket.tokens + elapsed * self._rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return Decision(True, 0, int(bucket.tokens))
        self._refused += 1
        wait = (1.0 - bucket.tokens) / self._rate
        return Decision(False, max(1, math.ceil(wait)), 0)

    def _sweep(self, now: float) -> None:
        """Forget buckets that are full again: at most once per refill period."""
        period = self._capacity / self._rate
        if now - self._last_sweep < period:
            return
        self._last_sweep = now
        full = [
            key for key, b in self._buckets.items()
            if b.tokens + (now - b.updated) * self._rate >= self._capacity
        ]
        for key in full:
            del self._buckets[key]

    def statistics(self) -> Statistics:
        return Statistics(keys=len(self._buckets), refused=self._refused)
