"""Which account, if any, a client submits as without AUTH: its IP credential.

Strategy: one indexed query (``network >>= address``, served by the exclusion
constraint's GiST index) per session, made lazily by the policy at the session's
first MAIL without AUTH — a client that AUTHs, or never sends MAIL, costs nothing —
and its answer kept for the session, a "no" included, so a client repeating MAIL
cannot turn each one into a database round trip. That matches AUTH, whose account
row is read once, at AUTH: deleting a credential or disabling its account acts on
the client's next connection.

Only enabled accounts match. The address is the TCP peer, never anything the client
says (``relay.networks.client_address`` maps ``::ffff:a.b.c.d`` to ``a.b.c.d``).
"""

from __future__ import annotations

import attrs

from .. import models, networks
from ..storage import Storage


@attrs.frozen
class IpCredentialStatistics:
    lookups: int
    matches: int


class IpCredentialLookup:
    """Process-wide (owned by the SMTP server); it keeps no per-client state."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._lookups = 0
        self._matches = 0

    async def find(self, client_ip: str) -> tuple[models.IpCredential, models.Account] | None:
        """The credential whose network holds ``client_ip`` and its enabled account.

        Raises:
            StorageError: the lookup failed (DatabaseUnavailable when the database is
                down); the caller answers with a temporary failure and may ask again.
        """
        address = networks.client_address(client_ip)
        if address is None:
            return None
        self._lookups += 1
        found = await self._storage.ip_credentials.match(address)
        if found is not None:
            self._matches += 1
        return found

    def statistics(self) -> IpCredentialStatistics:
        return IpCredentialStatistics(self._lookups, self._matches)
