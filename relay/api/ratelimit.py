"""Request budgets: ``relay.limiting.TokenBuckets`` of ``per_minute`` tokens, one per key.

The app keeps two limiters of that one class: requests per API key
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
no information and are swept, and at most ``max_keys`` are tracked (beyond that the
oldest are forgotten, which only ever errs towards allowing) — ``relay.limiting``.
This module adds what is the API's own: which client a TCP peer is.
"""

from __future__ import annotations

import functools
import ipaddress

from ..limiting import TokenBuckets

__all__ = ["IPV6_CLIENT_PREFIX", "TokenBuckets", "client_key"]


#: IPv6 prefix treated as one client: a /64 is what one subscriber is usually given
#: (RFC 6177), so an attacker cannot get a fresh budget per address inside it.
IPV6_CLIENT_PREFIX = 64


@functools.lru_cache(maxsize=4096)
def client_key(address: str | None) -> str:
    """The rate-limit identity of a TCP peer: its IPv4 address or its IPv6 /64.

    Anything that is not an IP address (a Unix socket, no peer at all) shares one key.
    Remembered for the last 4,096 addresses: it runs on every request, and parsing
    an address costs more than the rest of the rate check.
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
