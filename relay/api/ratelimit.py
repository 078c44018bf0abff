"""Request budgets: token buckets of ``per_minute`` tokens, one per key.

The app keeps two limiters of this one class: requests per API key
(``api.rate_limit_per_minute``, keyed by the key's hash) and failed authentications
per client address (``api.auth_failures_per_minute``, keyed by ``client_key``).

Strategy: each key owns a bucket that holds at most ``per_minute`` tokens and refills
continuously at ``per_minute / 60`` tokens a second; a request takes one token or is
refused with the seconds until one is back (the ``Retry-After`` of the 429). A key
may thus burst its whole minute at once but never exceed the rate over time. A token
taken for work whose outcome is not known yet can be handed back with ``refund`` —
the failure budget takes a token *before* the key lookup, so a burst of concurrent
attempts can never start more lookups than the budget, and refunds it when the key
turns out to be good.

The limiter is in-process state owned by one app: several API processes each apply
the limit on their own. Memory is bounded: buckets that have refilled completely carry
no information and are dropped by ``_sweep``, and at most ``max_keys`` are tracked
(beyond that the oldest are forgotten, which only ever errs towards allowing).
"""

from __future__ import annotations

import ipaddress
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
    """Token buckets keyed by anything hashable (an API key hash, a client address).

    Args:
        per_minute: the budget; also the largest burst.
        clock: seconds on a monotonic clock (``trio.current_time`` in the app).
        max_keys: keys tracked at once.
    """

    def __init__(
        self, per_minute: int, clock: Callable[[], float], *, max_keys: int = 100_000
    ) -> None:
        if per_minute < 1:
            raise ValueError(f"a rate limit must be 1 or more per minute, got {per_minute}")
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[Hashable, _Bucket] = {}
        self._refused = 0
        self._last_sweep = clock()

    @property
    def per_minute(self) -> int:
        return int(self._capacity)

    def set_rate(self, per_minute: int) -> None:
        """A new budget (live reload): buckets refill to it from now on."""
        if per_minute < 1:
            raise ValueError(f"a rate limit must be 1 or more per minute, got {per_minute}")
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        for bucket in self._buckets.values():
            bucket.tokens = min(bucket.tokens, self._capacity)

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

    def refund(self, key: Hashable) -> None:
        """Give back the token a ``take`` spent (never beyond the bucket's capacity).

        A no-op when ``key`` has been forgotten meanwhile: a forgotten bucket is full.
        """
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.tokens = min(self._capacity, bucket.tokens + 1.0)

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


#: IPv6 prefix treated as one client: a /64 is what one subscriber is usually given
#: (RFC 6177), so an attacker cannot get a fresh budget per address inside it.
IPV6_CLIENT_PREFIX = 64


def client_key(address: str | None) -> str:
    """The rate-limit identity of a TCP peer: its IPv4 address or its IPv6 /64.

    Anything that is not an IP address (a Unix socket, no peer at all) shares one key.
    """
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_CLIENT_PREFIX), strict=False))
    return str(ip)
