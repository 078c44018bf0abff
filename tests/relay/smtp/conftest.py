"""A real relay SMTP service on 127.0.0.1:0 with a trustme certificate, per test."""

from __future__ import annotations

import functools
import smtplib
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trustme

from relay import composition, hashed_secrets, models
from relay.config import Config, load
from relay.storage import Storage

PASSWORD = "correct horse battery"


@attrs.frozen
class Relay:
    port: int
    started: composition.Started
    client_context: ssl.SSLContext
    account: models.Account

    @property
    def storage(self) -> Storage:
        return self.started.runtime.storage

    def smtp(self) -> smtplib.SMTP:
        """A blocking smtplib client (use from a thread)."""
        return smtplib.SMTP("127.0.0.1", self.port, local_hostname="client.test", timeout=10)

    def login(self, client: smtplib.SMTP, password: str = PASSWORD, user: str | None = None) -> None:
        client.ehlo()
        client.starttls(context=self.client_context)
        client.ehlo()
        client.login(user or self.account.email, password)


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_files(ca: trustme.CA, tmp_path: Path) -> tuple[Path, Path]:
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    return cert_file, key_file


@pytest.fixture
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    """The server side of ``ca``'s trust, for servers a test builds itself."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    return context


@pytest.fixture
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def smtp_env() -> dict[str, str]:
    """Per-test overrides: tests update this before requesting ``relay``."""
    return {}


@pytest.fixture
def relay_config(database_url: str, tls_files: tuple[Path, Path], smtp_env: dict[str, str]) -> Config:
    env = {
        "RELAY_DATABASE__URL": database_url,
        "RELAY_DATABASE__MIGRATE_ON_START": "false",
        "RELAY_DATABASE__POOL_MIN_SIZE": "1",
        "RELAY_SMTP__LISTEN": "127.0.0.1:0",
        "RELAY_SMTP__HOSTNAME": "relay.test",
        "RELAY_SMTP__AUTH_FAILURE_DELAY": "0",
        "RELAY_TLS__CERT_FILE": str(tls_files[0]),
        "RELAY_TLS__KEY_FILE": str(tls_files[1]),
        **smtp_env,
    }
    return load(None, environ=env)


async def create_account(
    storage: Storage, email: str = "app@example.com", domains: tuple[str, ...] = ("example.com",),
    password: str = PASSWORD, **changes: Any,
) -> models.Account:
    key = hashed_secrets.new_key(hashed_secrets.ACCOUNT_KEY_PREFIX)
    account = await storage.accounts.create(
        name="App", email=email, password_hash=await hashed_secrets.hash_password_async(password, rounds=4),
        api_key_hash=key.hash, api_key_prefix=key.prefix, allowed_domains=domains,
    )
    if changes:
        account = await storage.accounts.update(account.id, **changes)
    return account


@pytest.fixture
async def relay(
    nursery: trio.Nursery, relay_config: Config, client_context: ssl.SSLContext
) -> AsyncIterator[Relay]:
    started: composition.Started = await nursery.start(
        functools.partial(composition.serve, relay_config, services=("smtp",), handle_signals=False)
    )
    account = await create_account(started.runtime.storage)
    yield Relay(started.smtp.ports[0], started, client_context, account)
    started.shutdown.set()


async def in_thread(fn: Callable[[], Any]) -> Any:
    return await trio.to_thread.run_sync(fn)
