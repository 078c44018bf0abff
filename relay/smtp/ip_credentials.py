"""Which account, if any, a client submits as without AUTH: its IP credential.

Strategy: asked lazily by the policy at the session's first MAIL without AUTH — a
client that AUTHs, or never sends MAIL, costs nothing — and the answer kept for the
session, a "no" included, so a client repeating MAIL cannot turn each one into a
lookup. Across sessions the answer per address, a "no" included, is kept in memory
(``smtp.account_cache_ttl``, a ``relay.change_cache``) until a credential or an
account changes anywhere, which every process hears at once through LISTEN/NOTIFY;
otherwise one indexed query (``network >>= address``, served by the exclusion
constraint's GiST index). Applications that open a connection per message — the
usual client of an IP credential — then cost no database round trip before their
message. Deleting a credential or disabling its account acts on the client's next
connection, as with AUTH.

Only enabled accounts match. The address is the TCP peer, never anything the client
says (``relay.networks.client_address`` maps ``::ffff:a.b.c.d`` to ``a.b.c.d``).
"""

from __future__ import annotations

import attrs

from .. import models, networks
from ..change_cache import ChangeBoundCache
from ..storage import Storage

Found = tuple[models.IpCredential, models.Account] | None
#: Client address (as ``relay.networks.client_address`` spells it) → what it matched.
MatchCache = ChangeBoundCache[str, Found]
#: ``MatchCache.get``'s answer for "not in memory" (``None`` is a cached "no").
_UNKNOWN = object()


@attrs.frozen
class IpCredentialStatistics:
    #: Lookups that went to the database.
    lookups: int
    matches: int


class IpCredentialLookup:
    """Process-wide (owned by the SMTP server); it keeps no per-client state."""

    def __init__(self, storage: Storage, cache: MatchCache | None = None) -> None:
        self._storage = storage
        self._cache = cache
        self._lookups = 0
        self._matches = 0

    async def find(self, client_ip: str) -> Found:
        """The credential whose network holds ``client_ip`` and its enabled account.

        Raises:
            StorageError: the lookup failed (DatabaseUnavailable when the database is
                down); the caller answers with a temporary failure and may ask again.
        """
        address = networks.client_address(client_ip)
        if address is None:
            return None
        if self._cache is None:
            return await self._match(address)
        key = str(address)
        cached = self._cache.get(key, _UNKNOWN)
        if cached is not _UNKNOWN:
            return cached  # type: ignore[return-value]
        epoch = self._cache.epoch()
        found = await self._match(address)
        self._cache.put(key, found, epoch)
        return found

    async def _match(self, address: networks.Address) -> Found:
        self._lookups += 1
        found = await self._storage.ip_credentials.match(address)
        if found is not None:
            self._matches += 1
        return found

    def statistics(self) -> IpCredentialStatistics:
        return IpCredentialStatistics(self._lookups, self._matches)
