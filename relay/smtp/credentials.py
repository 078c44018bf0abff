"""AUTH verification: bcrypt off the event loop, a short cache, uniform failures.

Strategy:
- The account row is read on every AUTH, so a disabled account or a changed
  password takes effect at once, in every process.
- bcrypt runs in a worker thread (≈234 ms of CPU at cost 12 here). Every failure
  path — unknown user, wrong password, password over bcrypt's 72 bytes, damaged
  stored hash, disabled account — costs exactly one bcrypt computation, so timing
  does not tell an attacker which one it was.
- A verified login is cached for ``ttl`` seconds under (account id, stored hash),
  holding an HMAC of the password under a per-process random key: never the
  password itself, and useless outside this process. A new password hash means a
  new cache key, so a changed password never matches an old entry.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

import bcrypt
import trio

from .. import auth, models
from ..storage import Storage


def _bcrypt_check(password: bytes, stored: bytes, dummy: bytes) -> bool:
    """One bcrypt computation whatever the input (runs in a worker thread)."""
    if len(password) > auth.BCRYPT_MAX_BYTES:
        bcrypt.checkpw(password[: auth.BCRYPT_MAX_BYTES], dummy)
        return False
    try:
        return bcrypt.checkpw(password, stored)
    except ValueError:  # damaged or foreign hash
        bcrypt.checkpw(password, dummy)
        return False


class Authenticator:
    def __init__(self, storage: Storage, *, ttl: float, rounds: int = auth.BCRYPT_ROUNDS) -> None:
        self._storage = storage
        self._ttl = ttl
        self._rounds = rounds
        self._hmac_key = secrets.token_bytes(32)
        self._cache: dict[tuple[uuid.UUID, str], tuple[bytes, float]] = {}
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
        account = await self._storage.accounts.get_by_email(username) if username else None
        dummy = await self._dummy_hash()
        if account is None:
            await trio.to_thread.run_sync(_bcrypt_check, encoded, dummy, dummy, limiter=self._limiter)
            return None
        key = (account.id, account.password_hash)
        fingerprint = self._fingerprint(encoded)
        cached = self._cache.get(key)
        now = trio.current_time()
        if cached is not None and cached[1] > now and hmac.compare_digest(cached[0], fingerprint):
            return None if account.disabled else account
        ok = await trio.to_thread.run_sync(
            _bcrypt_check, encoded, account.password_hash.encode("ascii", "replace"), dummy,
            limiter=self._limiter,
        )
        if not ok or account.disabled:
            return None
        if self._ttl > 0:
            self._prune(now)
            self._cache[key] = (fingerprint, now + self._ttl)
        return account

    def _prune(self, now: float) -> None:
        if len(self._cache) > 10_000:
            for key in [k for k, (_, exp) in self._cache.items() if exp <= now]:
                del self._cache[key]
