"""Verified API keys, remembered for a short time so a request costs no key lookup.

An entry maps a key's SHA-256 to the ``Caller`` it was verified as, for at most
``api.key_cache_ttl`` seconds and only until a key, an account or an IP credential
changes anywhere (``relay.change_cache`` says how that is heard at once, from every
process).

Only good keys are kept: an unknown key or a disabled account is looked up every
time (refusals are budgeted per address by ``api.auth_failures_per_minute``).
"""

from __future__ import annotations

from ..change_cache import CacheStatistics, ChangeBoundCache
from .caller import Caller

#: What ``KeyCache.statistics()`` returns.
KeyCacheStatistics = CacheStatistics


class KeyCache(ChangeBoundCache[bytes, Caller]):
    """Key hash → ``Caller``."""


__all__ = ["KeyCache", "KeyCacheStatistics"]
