"""AUTH verification: bcrypt off the event loop, a short cache, uniform failures.

Strategy:
- The account row behind a login is kept in memory (``smtp.account_cache_ttl``, a
  ``relay.change_cache``): every committed change of an account, from any process,
  is heard through LISTEN/NOTIFY and drops it, so a disabled account or a changed
  password still takes effect at once, in every process — and a client that opens a
  connection per message does not pay a database round trip per login.
- bcrypt runs in a worker thread (≈234 ms of CPU at cost 12 here). Every failure
  path — unknown user, wrong password, password over bcrypt's 72 bytes, damaged
  stored hash, disabled account — costs exactly one bcrypt computation, so timing
  does not tell an attacker which one it was.
- A verified login is cached for ``ttl`` seconds under (account id, stored hash),
  holding an HMAC of the password under a per-process random key: never the
  password itself, and useless outside this process. A new password hash means a
  new cache key, so a changed password never matches an old entry. Concurrent
  logins with the same credentials share one bcrypt computation.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

import attrs
import bcrypt
import trio

from .. import hashed_secrets, models
from ..change_cache import ChangeBoundCache
from ..storage import Storage

#: Login (as the client typed it) → its account row.
AccountCache = ChangeBoundCache[str, models.Account]


def _bcrypt_check(password: bytes, stored: bytes, dummy: bytes) -> bool:
    """One bcrypt computation whatever the input (runs in a worker thread)."""
    if len(password) > hashed_secrets.BCRYPT_MAX_BYTES:
        bcrypt.checkpw(password[: hashed_secrets.BCRYPT_MAX_BYTES], dummy)
        return False
    try:
        return bcrypt.checkpw(password, stored)
    except ValueError:  # damaged or foreign hash
        bcrypt.checkpw(password, dummy)
        return False


@attrs.define
class _Flight:
    done: trio.Event = attrs.field(factory=trio.Event)
    #: None until known (or when the computing task was cancelled).
    ok: bool | None = None


@attrs.frozen
class AuthenticatorStatistics:
    bcrypt_checks: int
    cache_hits: int
    cached_logins: int


class Authenticator:
    def __init__(
        self,
        storage: Storage,
        *,
        ttl: float,
        accounts: AccountCache | None = None,
        rounds: int = hashed_secrets.BCRYPT_ROUNDS,
    ) -> None:
        self._storage = storage
        self._accounts = accounts
        self._ttl = ttl
        self._rounds = rounds
        self._hmac_key = secrets.token_bytes(32)
        self._cache: dict[tuple[uuid.UUID, str], tuple[bytes, float]] = {}
        self._in_flight: dict[tuple[uuid.UUID, str, bytes], _Flight] = {}
        self._bcrypt_checks = 0
        self._cache_hits = 0
        self._dummy: bytes | None = None
        # bcrypt is CPU-bound: more threads than cores only queue inside the GIL-free C
        # code; a small limiter keeps a login flood from starving other thread work.
        self._limiter = trio.CapacityLimiter(4)

    def _fingerprint(self, password: bytes) -> bytes:
        return hmac.new(self._hmac_key, password, hashlib.sha256).digest()

    async def prepare(self) -> None:
        """Compute the dummy hash up front so the first login is not slower."""
        await self._dummy_hash()

    async def _dummy_hash(self) -> bytes:
        if self._dummy is None:
            self._dummy = await trio.to_thread.run_sync(
                bcrypt.hashpw, secrets.token_bytes(16), bcrypt.gensalt(self._rounds)
            )
        return self._dummy

    async def verify(self, username: str, password: str) -> models.Account | None:
        """The account when the login is right and the account enabled, else None.

        Raises:
            DatabaseUnavailable: the account could not be read (the caller answers 454).
        """
        encoded = password.encode("utf-8", "surrogateescape")
        account = await self._account(username) if username else None
        dummy = await self._dummy_hash()
        if account is None:
            self._bcrypt_checks += 1
            await trio.to_thread.run_sync(_bcrypt_check, encoded, dummy, dummy, limiter=self._limiter)
            return None
        key = (account.id, account.password_hash)
        fingerprint = self._fingerprint(encoded)
        cached = self._cache.get(key)
        now = trio.current_time()
        if cached is not None and cached[1] > now and hmac.compare_digest(cached[0], fingerprint):
            self._cache_hits += 1
            return None if account.disabled else account
        ok = await self._check_once(
            (account.id, account.password_hash, fingerprint),
            encoded, account.password_hash.encode("ascii", "replace"), dummy,
        )
        if not ok or account.disabled:
            return None
        if self._ttl > 0:
            self._prune(now)
            self._cache[key] = (fingerprint, now + self._ttl)
        return account

    async def _account(self, username: str) -> models.Account | None:
        """The account whose login is ``username``: from memory, else one read (kept
        only when found: an unknown login costs a read, as it costs a bcrypt)."""
        if self._accounts is None:
            return await self._storage.accounts.get_by_email(username)
        account = self._accounts.get(username)
        if account is None:
            epoch = self._accounts.epoch()
            account = await self._storage.accounts.get_by_email(username)
            if account is not None:
                self._accounts.put(username, account, epoch)
        return account

    async def _check_once(
        self, key: tuple[uuid.UUID, str, bytes], password: bytes, stored: bytes, dummy: bytes
    ) -> bool:
        """One bcrypt computation shared by concurrent logins with the same credentials.

        An application that opens many connections at once with one login would
        otherwise pay bcrypt once per connection before the first result is cached.
        """
        flight = self._in_flight.get(key)
        if flight is not None:
            await flight.done.wait()
            if flight.ok is not None:
                return flight.ok
        flight = _Flight()
        self._in_flight[key] = flight
        self._bcrypt_checks += 1
        try:
            flight.ok = await trio.to_thread.run_sync(
                _bcrypt_check, password, stored, dummy, limiter=self._limiter
            )
            return flight.ok
        finally:
            if self._in_flight.get(key) is flight:
                del self._in_flight[key]
            flight.done.set()

    def statistics(self) -> AuthenticatorStatistics:
        return AuthenticatorStatistics(self._bcrypt_checks, self._cache_hits, len(self._cache))

    def _prune(self, now: float) -> None:
        if len(self._cache) > 10_000:
            for key in [k for k, (_, exp) in self._cache.items() if exp <= now]:
                del self._cache[key]
