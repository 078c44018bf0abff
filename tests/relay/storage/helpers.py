"""Builders for test rows."""

from __future__ import annotations

import uuid

from relay import hashed_secrets, models
from relay.storage import Storage

# A real bcrypt hash, computed once at the cheapest cost: tests store it, never check it.
PASSWORD_HASH = hashed_secrets.hash_password("correct horse", rounds=4)


async def make_account(
    storage: Storage, email: str | None = None, domains: tuple[str, ...] = ("example.com",)
) -> models.Account:
    key = hashed_secrets.new_key(hashed_secrets.ACCOUNT_KEY_PREFIX)
    return await storage.accounts.create(
        name="Test",
        email=email or f"{uuid.uuid4().hex[:8]}@example.com",
        password_hash=PASSWORD_HASH,
        api_key_hash=key.hash,
        api_key_prefix=key.prefix,
        allowed_domains=domains,
    )


def new_message(account: models.Account, body: bytes = b"Subject: hi\r\n\r\nhello\r\n") -> models.NewMessage:
    return models.NewMessage(
        account_id=account.id,
        mail_from="sender@example.com",
        rcpt_to=("a@example.net", "b@example.org"),
        raw=body,
        message_id="<m@example.com>",
        client_ip="127.0.0.1",
        tls=True,
        correlation_id="c-1",
    )
