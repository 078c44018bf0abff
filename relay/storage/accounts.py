"""The accounts table: tenants, their login and their API key."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Literal

from .. import models
from . import _rows
from ._bridge import Bridge, Connection, Record
from ._sql import returned_row, update_set
from .errors import InvalidReference
from .key_changes import KeyChanges, notify
from .query import Query

_UPDATABLE = (
    "name", "email", "password_hash", "allowed_domains", "disabled",
    "messages_per_minute", "recipients_per_hour", "default_provider_id",
)
#: Columns that decide who may authenticate as the account and what it may send:
#: caches of keys, logins and IP credentials (``relay.change_cache``) hold them, so a
#: change to any of them is announced. A rename or a new default provider is not.
_ANNOUNCED = frozenset({
    "email", "password_hash", "allowed_domains", "disabled",
    "messages_per_minute", "recipients_per_hour",
})


class AccountRepository:
    def __init__(self, bridge: Bridge, key_changes: KeyChanges) -> None:
        self._bridge = bridge
        self._key_changes = key_changes

    async def create(
        self,
        *,
        name: str,
        email: str,
        password_hash: str,
        api_key_hash: bytes,
        api_key_prefix: str,
        allowed_domains: Sequence[str] = (),
        disabled: bool = False,
        messages_per_minute: int | None = None,
        recipients_per_hour: int | None = None,
    ) -> models.Account:
        """Insert an account, limits and all, in one statement.

        Raises:
            Conflict: the email (compared case-insensitively) or key hash is taken.
        """

        async def insert(conn: Connection) -> Record:
            return await returned_row(
                conn,
                """INSERT INTO accounts (id, name, email, password_hash, api_key_hash,
                                         api_key_prefix, allowed_domains, disabled,
                                         messages_per_minute, recipients_per_hour)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING *""",
                uuid.uuid4(), name, email, password_hash, api_key_hash,
                api_key_prefix, list(allowed_domains), disabled,
                messages_per_minute, recipients_per_hour,
            )

        return _rows.account(await self._bridge.run(insert))

    def get(self, account_id: uuid.UUID) -> Query[models.Account | None]:
        async def fetch(conn: Connection) -> models.Account | None:
            row = await conn.fetchrow("SELECT * FROM accounts WHERE id = $1", account_id)
            return None if row is None else _rows.account(row)

        return Query(self._bridge, fetch)

    async def get_by_email(self, email: str) -> models.Account | None:
        """Case-insensitive lookup by login."""

        async def fetch(conn: Connection) -> Record | None:
            return await conn.fetchrow(
                "SELECT * FROM accounts WHERE lower(email) = lower($1)", email
            )

        row = await self._bridge.run(fetch)
        return None if row is None else _rows.account(row)

    async def get_by_api_key_hash(self, key_hash: bytes) -> models.Account | None:
        async def fetch(conn: Connection) -> Record | None:
            return await conn.fetchrow(
                "SELECT * FROM accounts WHERE api_key_hash = $1", key_hash
            )

        row = await self._bridge.run(fetch)
        return None if row is None else _rows.account(row)

    async def list(
        self, *, limit: int = 100, after: uuid.UUID | None = None
    ) -> list[models.Account]:
        """Accounts ordered by id; ``after`` is the last id of the previous page."""

        async def fetch(conn: Connection) -> list[Record]:
            return await conn.fetch(
                """SELECT * FROM accounts WHERE $1::uuid IS NULL OR id > $1
                   ORDER BY id LIMIT $2""",
                after, limit,
            )

        return [_rows.account(r) for r in await self._bridge.run(fetch)]

    async def update(self, account_id: uuid.UUID, **fields: Any) -> models.Account | None:
        """Change the given columns; ``None`` when the account does not exist.

        Raises:
            Conflict: the new email is taken.
            InvalidReference: ``default_provider_id`` is not one of this account's providers.
        """
        if "allowed_domains" in fields:
            fields["allowed_domains"] = list(fields["allowed_domains"])
        assignments, values = update_set(_UPDATABLE, fields, first_param=2)

        default_provider = fields.get("default_provider_id")

        async def change(conn: Connection) -> Record | Literal["bad-provider"] | None:
            async with conn.transaction():
                if default_provider is not None and not await conn.fetchval(
                    "SELECT 1 FROM esp_providers WHERE id = $1 AND account_id = $2",
                    default_provider, account_id,
                ):
                    exists = await conn.fetchval("SELECT 1 FROM accounts WHERE id = $1", account_id)
                    return "bad-provider" if exists else None
                row = await conn.fetchrow(
                    f"UPDATE accounts SET {assignments} WHERE id = $1 RETURNING *",
                    account_id, *values,
                )
                if row is not None and announced:
                    # Every process forgets cached keys, logins and IP credentials now
                    # (a disabled account's key: 403 at once).
                    await notify(conn, f"account:{account_id}")
                return row

        announced = not _ANNOUNCED.isdisjoint(fields)
        try:
            row = await self._bridge.run(change)
        finally:
            if announced:
                self._key_changes.changed()
        if row == "bad-provider":
            raise InvalidReference("default_provider_id")
        return None if row is None else _rows.account(row)

    async def set_api_key(
        self, account_id: uuid.UUID, *, api_key_hash: bytes, api_key_prefix: str
    ) -> bool:
        """Replace the API key; the old one stops matching at once, in every process
        (the change is announced to key caches in the same transaction)."""

        async def change(conn: Connection) -> bool:
            async with conn.transaction():
                changed = await conn.fetchval(
                    """UPDATE accounts SET api_key_hash = $2, api_key_prefix = $3,
                              updated_at = now() WHERE id = $1 RETURNING id""",
                    account_id, api_key_hash, api_key_prefix,
                )
                if changed is not None:
                    await notify(conn, f"account:{account_id}")
                return changed is not None

        try:
            return await self._bridge.run(change)
        finally:
            self._key_changes.changed()

    async def delete(self, account_id: uuid.UUID) -> bool:
        """Delete the account with its providers, rules and messages."""

        async def remove(conn: Connection) -> bool:
            async with conn.transaction():
                deleted = await conn.fetchval(
                    "DELETE FROM accounts WHERE id = $1 RETURNING id", account_id
                )
                if deleted is not None:
                    await notify(conn, f"account:{account_id}")
                return deleted is not None

        try:
            return await self._bridge.run(remove)
        finally:
            self._key_changes.changed()
