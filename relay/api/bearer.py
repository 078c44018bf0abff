"""Who is calling: ``Authorization: Bearer <key>`` resolved to an operator or an account.

Strategy: the key's prefix says which table to look in (``rk_admin_`` operator keys,
``rk_live_`` account keys), so a malformed or foreign key is refused without a
database round trip. Only the SHA-256 of a key is stored and looked up: the secret
itself is never compared, logged or kept, and a lookup by hash leaks nothing a timing
attacker could use. A verified key may be served from a short-lived cache
(``keycache``, ``api.key_cache_ttl``) that every committed rotation, revocation or
account disable clears in every process, so those still take effect on the next request.

A missing or unknown key is 401 with ``WWW-Authenticate: Bearer`` (RFC 6750 §3); a
valid key of a disabled account is 403, because asking again with the same key
cannot help.
"""

from __future__ import annotations

from .. import hashed_secrets
from ..storage import Storage
from .caller import Caller
from .keycache import KeyCache
from .problems import Problem

__all__ = ["Caller", "authenticate", "bearer_token", "key_kind", "verify_hash", "verify_key"]

#: RFC 6750 §2.1: the b64token syntax, bounded: our keys are about 52 characters.
MAX_KEY_LENGTH = 200


def _unauthorized(detail: str, error: str = "invalid_token") -> Problem:
    challenge = f'Bearer realm="relay", error="{error}"' if error else 'Bearer realm="relay"'
    return Problem(401, detail, kind="unauthorized", headers={"WWW-Authenticate": challenge})


def bearer_token(header: str | None) -> str:
    """The key in an Authorization header.

    Raises:
        Problem: 401 when there is no Bearer key.
    """
    if not header:
        raise _unauthorized(
            "send an API key as 'Authorization: Bearer <key>'", error=""
        )
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized(
            "use the Bearer scheme: 'Authorization: Bearer <key>'", error="invalid_request"
        )
    if len(token) > MAX_KEY_LENGTH or not token.isascii():
        raise _unauthorized("the API key is not valid")
    return token


async def authenticate(
    storage: Storage, header: str | None, cache: KeyCache | None = None
) -> Caller:
    """Resolve the Authorization header to a caller, from ``cache`` when it holds the key.

    Raises:
        Problem: 401 for a missing, malformed, unknown, revoked or rotated key;
            403 for the key of a disabled account.
        DatabaseUnavailable: the keys could not be looked up.
    """
    return await verify_key(storage, bearer_token(header), cache)


def key_kind(token: str) -> str | None:
    """``"operator"`` or ``"account"`` by the key's prefix; ``None``: not one of ours."""
    if token.startswith(hashed_secrets.OPERATOR_KEY_PREFIX):
        return "operator"
    if token.startswith(hashed_secrets.ACCOUNT_KEY_PREFIX):
        return "account"
    return None


async def verify_key(storage: Storage, token: str, cache: KeyCache | None = None) -> Caller:
    """The caller a key (as the client sent it, without ``Bearer``) belongs to.

    Raises:
        Problem, DatabaseUnavailable: as ``authenticate``.
    """
    kind = key_kind(token)
    if kind is None or len(token) > MAX_KEY_LENGTH or not token.isascii():
        raise _refused()
    return await verify_hash(storage, kind, hashed_secrets.hash_key(token), cache)


async def verify_hash(
    storage: Storage, kind: str, key_hash: bytes, cache: KeyCache | None = None
) -> Caller:
    """The caller whose key has this SHA-256 (what the web console keeps in its
    session instead of the key), checked as a key is: a rotated or revoked key or a
    disabled account is refused.

    Raises:
        Problem, DatabaseUnavailable: as ``authenticate``.
    """
    if cache is None:
        return await _look_up(storage, kind, key_hash)
    if (cached := cache.get(key_hash)) is not None and cached.kind == kind:
        return cached
    epoch = cache.epoch()  # before the lookup: a change during it makes the result stale
    caller = await _look_up(storage, kind, key_hash)
    cache.put(key_hash, caller, epoch)
    return caller


def _refused() -> Problem:
    return _unauthorized(
        "the API key is not valid (unknown, revoked or rotated); use a current key"
    )


async def _look_up(storage: Storage, kind: str, key_hash: bytes) -> Caller:
    if kind == "operator":
        admin = await storage.admin_keys.find_active(key_hash)
        if admin is not None:
            return Caller("operator", admin.id, key_hash)
    elif kind == "account":
        account = await storage.accounts.get_by_api_key_hash(key_hash)
        if account is not None:
            if account.disabled:
                raise Problem(
                    403, "this account is disabled; ask an operator to enable it",
                    kind="account-disabled",
                )
            return Caller("account", account.id, key_hash, account_id=account.id)
    raise _refused()
