"""Who an authenticated request comes from: an operator key or an account key.

A module of its own because both ``auth``, which resolves a key to a ``Caller``, and
``keycache``, which remembers the ``Caller`` a key was verified as, need the type, and
``auth`` uses the cache.
"""

from __future__ import annotations

import uuid

import attrs


@attrs.frozen
class Caller:
    """An authenticated caller. ``account_id`` is ``None`` for an operator."""

    #: ``"operator"`` or ``"account"``.
    kind: str
    #: The operator key's id, or the account's id: what logs name, never the key.
    id: uuid.UUID
    #: Rate-limit identity: per key, so a rotated key starts a fresh budget.
    key_hash: bytes = attrs.field(repr=False)
    account_id: uuid.UUID | None = None

    @property
    def is_operator(self) -> bool:
        return self.account_id is None

    def label(self) -> str:
        return f"{self.kind}:{self.id}"
