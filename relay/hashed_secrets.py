"""Secrets: API keys (random, shown once, stored as SHA-256) and bcrypt passwords.

bcrypt is deliberately slow (≈58 ms of CPU at cost 10 on this machine), so the async
helpers run it in a worker thread: the event loop keeps serving other sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import attrs
import bcrypt
import trio

#: Visible prefixes let a leaked key be recognised (and found by secret scanners).
ACCOUNT_KEY_PREFIX = "rk_live_"
OPERATOR_KEY_PREFIX = "rk_admin_"
#: How many characters of a key are stored in clear to identify it.
VISIBLE_CHARS = 16
BCRYPT_ROUNDS = 12
#: bcrypt only looks at the first 72 bytes; bcrypt 5 raises on longer input.
BCRYPT_MAX_BYTES = 72


@attrs.frozen
class NewKey:
    """A freshly generated key: ``secret`` is shown once and never stored."""

    secret: str = attrs.field(repr=False)
    prefix: str
    hash: bytes = attrs.field(repr=False)


def hash_key(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


def new_key(kind_prefix: str) -> NewKey:
    """32 random bytes from ``secrets``, URL-safe, after a visible prefix."""
    secret = kind_prefix + secrets.token_urlsafe(32)
    return NewKey(secret=secret, prefix=secret[:VISIBLE_CHARS], hash=hash_key(secret))


def keys_equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison of two key hashes."""
    return hmac.compare_digest(a, b)


class PasswordTooLong(ValueError):
    """bcrypt cannot hash more than 72 bytes; refuse instead of truncating silently."""


def hash_password(password: str, rounds: int = BCRYPT_ROUNDS) -> str:
    """Raises: PasswordTooLong."""
    encoded = password.encode("utf-8")
    if len(encoded) > BCRYPT_MAX_BYTES:
        raise PasswordTooLong(f"passwords are limited to {BCRYPT_MAX_BYTES} bytes in UTF-8")
    return bcrypt.hashpw(encoded, bcrypt.gensalt(rounds)).decode("ascii")


def check_password(password: str, password_hash: str) -> bool:
    """False for a wrong password, an over-long one, or a damaged hash; never raises."""
    encoded = password.encode("utf-8")
    if len(encoded) > BCRYPT_MAX_BYTES:
        return False
    try:
        return bcrypt.checkpw(encoded, password_hash.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return False


async def hash_password_async(password: str, rounds: int = BCRYPT_ROUNDS) -> str:
    """``hash_password`` in a worker thread. Raises: PasswordTooLong."""
    return await trio.to_thread.run_sync(hash_password, password, rounds)


async def check_password_async(password: str, password_hash: str) -> bool:
    return await trio.to_thread.run_sync(check_password, password, password_hash)
