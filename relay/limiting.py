"""Every rate limit in relay: per-key state with bounded memory, on an injected clock.

Two algorithms share one store, because what makes a limiter safe against a hostile
client is the same for both — the client chooses the keys (addresses, account ids,
API keys), so the number of keys must be bounded and keys that carry no information
any more must go:

* ``KeyedStore`` holds per-key state: at most ``max_keys`` keys (past that the oldest
  is forgotten, which only ever errs towards allowing), and at most once per
  ``period`` a sweep drops every key its ``idle`` test says is spent.
* ``SlidingWindow`` counts events per key in the last ``window`` seconds (SMTP:
  connections per address, failed logins, messages and recipients per account; the
  counts are what ``relay.smtp.shared_limits`` exchanges between processes).
* ``TokenBuckets`` gives each key a bucket of ``per_minute`` tokens refilled
  continuously (the API: requests per key, failed authentications per address), with
  the seconds until the next token for ``Retry-After`` and ``refund`` for a token
  taken before the outcome was known.

The clock is a function returning seconds on a monotonic clock: ``trio.current_time``
in the services, so tests drive every limit with trio's ``MockClock``.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import attrs

__all__ = ["Decision", "KeyedStore", "SlidingWindow", "Statistics", "TokenBuckets"]

V = TypeVar("V")
Clock = Callable[[], float]
#: Keys tracked at once by one limiter unless told otherwise.
MAX_KEYS = 100_000


class KeyedStore(Generic[V]):
    """Per-key values, bounded in number, swept of idle ones at most once per ``period``."""

    def __init__(
        self, *, clock: Clock, period: float, idle: Callable[[V, float], bool],
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.period = period
        self._clock = clock
        self._idle = idle
        self._max_keys = max_keys
        self._values: dict[Hashable, V] = {}
        self._last_sweep = clock()

    def now(self) -> float:
        """The clock's reading, sweeping first when a period has passed since the last sweep."""
        now = self._clock()
        if now - self._last_sweep >= self.period:
            self._last_sweep = now
            for key in [k for k, v in self._values.items() if self._idle(v, now)]:
                del self._values[key]
        return now

    def get(self, key: Hashable) -> V | None:
        return self._values.get(key)

    def put(self, key: Hashable, value: V) -> V:
        """Store ``value`` for a new ``key``, forgetting the oldest key when full."""
        if key not in self._values and len(self._values) >= self._max_keys:
            self._values.pop(next(iter(self._values)))
        self._values[key] = value
        return value

    def values(self) -> list[V]:
        return list(self._values.values())

    def discard(self, key: Hashable) -> None:
        self._values.pop(key, None)

    def __len__(self) -> int:
        return len(self._values)


class SlidingWindow:
    """Counts events per key within the last ``window`` seconds.

    Memory is bounded by the events inside the window and by ``max_keys``: old
    timestamps are dropped on every touch of a key, and at most once per window every
    key whose events have all expired is forgotten — so 5,000 addresses seen once
    leave nothing behind a window later, touched again or not.
    """

    def __init__(self, window: float, clock: Clock, *, max_keys: int = MAX_KEYS) -> None:
        self._store: KeyedStore[collections.deque[tuple[float, int]]] = KeyedStore(
            clock=clock, period=window, max_keys=max_keys,
            idle=lambda events, now: not events or events[-1][0] <= now - self.window,
        )

    @property
    def window(self) -> float:
        return self._store.period

    @window.setter
    def window(self, seconds: float) -> None:
        self._store.period = seconds

    def _events(self, key: Hashable, now: float) -> collections.deque[tuple[float, int]]:
        events = self._store.get(key)
        if events is None:
            return self._store.put(key, collections.deque())
        horizon = now - self.window
        while events and events[0][0] <= horizon:
            events.popleft()
        return events

    def count(self, key: Hashable) -> int:
        events = self._events(key, self._store.now())
        if not events:
            self._store.discard(key)
            return 0
        return sum(n for _, n in events)

    def add(self, key: Hashable, n: int = 1) -> None:
        now = self._store.now()
        self._events(key, now).append((now, n))

    def __len__(self) -> int:
        return len(self._store)


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


class TokenBuckets:
    """A bucket of ``per_minute`` tokens per key, refilled at ``per_minute / 60`` a second.

    A key may burst its whole minute at once but never exceed the rate over time.
    Buckets that have refilled completely carry no information and are swept.
    """

    def __init__(self, per_minute: int, clock: Clock, *, max_keys: int = MAX_KEYS) -> None:
        self._set(per_minute)
        self._refused = 0
        self._store: KeyedStore[_Bucket] = KeyedStore(
            clock=clock, period=self._capacity / self._rate, max_keys=max_keys,
            idle=lambda b, now: b.tokens + (now - b.updated) * self._rate >= self._capacity,
        )

    def _set(self, per_minute: int) -> None:
        if per_minute < 1:
            raise ValueError(f"a rate limit must be 1 or more per minute, got {per_minute}")
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0

    @property
    def per_minute(self) -> int:
        return int(self._capacity)

    def set_rate(self, per_minute: int) -> None:
        """A new budget (live reload): buckets refill to it from now on."""
        self._set(per_minute)
        self._store.period = self._capacity / self._rate
        for bucket in self._store.values():
            bucket.tokens = min(bucket.tokens, self._capacity)

    def take(self, key: Hashable) -> Decision:
        """Spend one token of ``key``'s budget, or say how long to wait."""
        now = self._store.now()
        bucket = self._store.get(key)
        if bucket is None:
            bucket = self._store.put(key, _Bucket(self._capacity, now))
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

    def refund(self, key: Hashable) -> None:
        """Give back the token a ``take`` spent (never beyond the bucket's capacity).

        A no-op when ``key`` has been forgotten meanwhile: a forgotten bucket is full.
        """
        bucket = self._store.get(key)
        if bucket is not None:
            bucket.tokens = min(self._capacity, bucket.tokens + 1.0)

    def statistics(self) -> Statistics:
        return Statistics(keys=len(self._store), refused=self._refused)
