"""The console's session: a signed cookie that names a key by its hash, never the key.

Strategy: the cookie holds a per-session CSRF token and, once signed in, the key's kind
(operator or account) and its SHA-256 — what the database stores and looks keys up
by — signed with ``console.session_key`` (itsdangerous, with a timestamp checked
against ``console.session_max_age``). The key itself is never written anywhere: each
request looks the hash up again exactly as the API looks up a key
(``relay.api.bearer.verify_hash``, through the API's key cache, which every rotation,
revocation and account disable clears), so a rotated key or a disabled account ends
the session on the next request. A cookie that does not verify (another key, tampered,
expired) is treated as no cookie.

A session exists before sign-in too (identity empty), so the sign-in form has a CSRF
token; signing in issues a new token, so a token planted before sign-in is useless
afterwards.
"""

from __future__ import annotations

import hmac
import secrets

import attrs
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "relay_console"
#: The cookie is sent only to the console's own paths.
COOKIE_PATH = "/console"
_SALT = "relay.console.session"
#: Bytes of randomness in a CSRF token (hex in the form: twice as many characters).
_CSRF_BYTES = 32


@attrs.frozen
class ConsoleSession:
    """What a console cookie says."""

    csrf: str = attrs.field(repr=False)
    #: ``"operator"`` or ``"account"``; ``None`` before sign-in.
    kind: str | None = None
    #: The SHA-256 of the signed-in key.
    key_hash: bytes | None = attrs.field(default=None, repr=False)

    @property
    def signed_in(self) -> bool:
        return self.kind is not None and self.key_hash is not None

    def csrf_matches(self, given: str | None) -> bool:
        """Constant-time comparison with the token a form sent back."""
        if not given:
            return False
        return hmac.compare_digest(self.csrf.encode(), given.encode("utf-8", "replace"))


def new_session(kind: str | None = None, key_hash: bytes | None = None) -> ConsoleSession:
    """A session with a fresh CSRF token."""
    return ConsoleSession(secrets.token_hex(_CSRF_BYTES), kind, key_hash)


def new_secret() -> str:
    """A random signing key for a process whose ``console.session_key`` is empty."""
    return secrets.token_urlsafe(32)


class SessionCodec:
    """Signs sessions into cookie values and reads them back."""

    def __init__(self, secret: str, max_age: float) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt=_SALT)
        self.max_age = max_age

    def dumps(self, session: ConsoleSession) -> str:
        return str(self._serializer.dumps({
            "c": session.csrf,
            "k": session.kind,
            "h": session.key_hash.hex() if session.key_hash is not None else None,
        }))

    def loads(self, value: str | None) -> ConsoleSession | None:
        """The session in a cookie value; ``None`` when it is missing, forged or expired."""
        if not value:
            return None
        try:
            # itsdangerous annotates max_age as int; it only compares the token's age with it.
            data = self._serializer.loads(value, max_age=self.max_age)  # type: ignore[arg-type]
        except BadSignature:  # includes SignatureExpired
            return None
        try:
            csrf, kind, key_hash = data["c"], data["k"], data["h"]
            if not isinstance(csrf, str) or kind not in (None, "operator", "account"):
                return None
            return ConsoleSession(csrf, kind, None if key_hash is None else bytes.fromhex(key_hash))
        except (KeyError, TypeError, ValueError):
            return None
