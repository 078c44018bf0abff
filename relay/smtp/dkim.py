"""DKIM signing at submission: which keys sign an account's message, and signing it.

Strategy: the keys of an account are read in one query the first time the account
sends, decrypted once, and kept for ``dkim.key_cache_ttl`` seconds (5 by default) —
an account without keys is remembered too, so no message pays a database round trip
of its own. A key enabled, disabled or deleted through the API therefore signs (or
stops signing) within that many seconds. At most ``MAX_CACHED_ACCOUNTS`` accounts are
kept; past it the oldest entry goes. Concurrent sessions of one account whose entry
has expired share one load.

At start (``check_keys``) every enabled key is decrypted once: an enabled key the
process cannot use (no ``dkim.key_encryption_key``, or not the one it was encrypted
with) answers its account's every message 451, so the operator hears about it in
the startup log, not from the senders.

Signing is CPU work (RSA-2048 in dkimpy is about 10 ms, a 5 MB body a few hundred
ms of canonicalisation; ``bench/dkim_sign.py``), so it runs in a worker thread
(``trio.to_thread.run_sync``) behind a small limiter. dkimpy holds the message about
``SIGNING_COPIES`` times over while it works; the policy reserves that much of
``smtp.memory_budget`` first.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import attrs
import trio

from .. import dkim, models
from ..logging import get_logger
from ..storage import Storage, StorageError

log = get_logger("relay.smtp.dkim")

#: Unusable keys named one by one in the startup log (the rest are counted).
MAX_REPORTED_KEY_PROBLEMS = 10

#: Accounts whose keys are cached at most (one small tuple each).
MAX_CACHED_ACCOUNTS = 10_000
#: Copies of the message held while it is signed: the prepared message, one more
#: when its long lines are cut, and what dkimpy makes of it (its parsed lines, the
#: body, the canonicalised body) — measured at 3.64 times the message
#: (``bench/dkim_sign.py``); rounded up.
SIGNING_COPIES = 6
#: Messages signed at once in worker threads (signing holds the GIL for much of its
#: time; more threads only queue).
MAX_SIGNING_THREADS = 2


class KeysUnavailable(Exception):
    """The account's keys could not be loaded (database down, KEK missing or wrong).
    The message says which; it never holds key material."""


@attrs.frozen
class _Entry:
    expires: float
    keys: tuple[dkim.SigningKey, ...]


@attrs.define
class _Load:
    done: trio.Event = attrs.Factory(trio.Event)
    entry: _Entry | None = None
    error: KeysUnavailable | None = None


@attrs.frozen
class DkimStatistics:
    loads: int
    cached_accounts: int
    signed: int


class DkimSigner:
    """Process-wide (owned by the SMTP server)."""

    def __init__(self, storage: Storage, *, kek: dkim.KeyEncryption | None, ttl: float) -> None:
        self._storage = storage
        self._kek = kek
        self._ttl = ttl
        self._cache: dict[uuid.UUID, _Entry] = {}
        self._loading: dict[uuid.UUID, _Load] = {}
        self._limiter = trio.CapacityLimiter(MAX_SIGNING_THREADS)
        self._loads = 0
        self._signed = 0

    async def keys_for(self, account_id: uuid.UUID, domain: str) -> tuple[dkim.SigningKey, ...]:
        """The enabled keys of ``account_id`` for ``domain`` (lower case), decrypted.

        Raises:
            KeysUnavailable: the keys could not be read or decrypted; nothing is
                cached, the next message asks again.
        """
        now = trio.current_time()
        entry = self._cache.get(account_id)
        if entry is None or entry.expires <= now:
            entry = await self._load(account_id)
        return tuple(k for k in entry.keys if k.domain == domain)

    async def _load(self, account_id: uuid.UUID) -> _Entry:
        flight = self._loading.get(account_id)
        if flight is not None:
            await flight.done.wait()
            if flight.error is not None:
                raise KeysUnavailable(str(flight.error))
            if flight.entry is not None:
                return flight.entry
            # The loading task was cancelled: load ourselves.
        flight = self._loading[account_id] = _Load()
        try:
            flight.entry = await self._read(account_id)
            return flight.entry
        except KeysUnavailable as exc:
            flight.error = exc
            raise
        finally:
            del self._loading[account_id]
            flight.done.set()

    async def _read(self, account_id: uuid.UUID) -> _Entry:
        self._loads += 1
        try:
            rows = await self._storage.dkim_keys.enabled_for_account(account_id)
        except StorageError as exc:
            raise KeysUnavailable(f"reading the DKIM keys failed: {exc}") from None
        keys = tuple(self._decrypt(row) for row in rows)
        entry = _Entry(trio.current_time() + self._ttl, keys)
        self._cache.pop(account_id, None)
        while len(self._cache) >= MAX_CACHED_ACCOUNTS:
            del self._cache[next(iter(self._cache))]  # the oldest entry
        self._cache[account_id] = entry
        return entry

    async def check_keys(self) -> list[str]:
        """Decrypt every enabled key once; log (as errors) and return what cannot be
        used. Never raises: a database problem is logged, and signing asks again."""
        try:
            rows = [row for row in await self._storage.dkim_keys.list() if row.enabled]
        except StorageError as exc:
            log.warning("could not check the DKIM keys at start", error=str(exc))
            return []
        problems = []
        for row in rows:
            try:
                self._decrypt(row)
            except KeysUnavailable as exc:
                problems.append(str(exc))
        for problem in problems[:MAX_REPORTED_KEY_PROBLEMS]:
            log.error("DKIM key unusable: mail of its account is answered 451 until this is fixed",
                      problem=problem)
        if len(problems) > MAX_REPORTED_KEY_PROBLEMS:
            log.error("more DKIM keys unusable", count=len(problems) - MAX_REPORTED_KEY_PROBLEMS)
        return problems

    def _decrypt(self, row: models.DkimKey) -> dkim.SigningKey:
        if self._kek is None:
            raise KeysUnavailable(
                f"the account has an enabled DKIM key ({row.selector}._domainkey.{row.domain})"
                " but dkim.key_encryption_key is not set in this SMTP process; set it to the"
                " value the API encrypted the key with, or disable the key"
            )
        try:
            private = self._kek.decrypt(row.private_key, key_id=row.id.bytes)
        except dkim.KeyDecryptionFailed as exc:
            raise KeysUnavailable(
                f"DKIM key {row.selector}._domainkey.{row.domain} (id {row.id}): {exc}"
            ) from None
        return dkim.SigningKey(row.domain, row.selector, row.algorithm, private)

    async def sign(self, raw: bytes, keys: Sequence[dkim.SigningKey]) -> bytes:
        """``raw`` signed (``relay.dkim.sign_message``: long lines cut, the signature
        fields in front), from a worker thread.

        The thread is not abandoned on cancellation: the caller's memory reservation
        stays held until it has finished with the message.

        Raises:
            relay.dkim.SigningFailed (UnsignableMessage included).
        """
        signed = await trio.to_thread.run_sync(
            dkim.sign_message, raw, tuple(keys), limiter=self._limiter
        )
        self._signed += 1
        return signed

    def statistics(self) -> DkimStatistics:
        return DkimStatistics(self._loads, len(self._cache), self._signed)
