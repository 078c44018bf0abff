"""An account created through the API logs in over SMTP with its password at once."""

from __future__ import annotations

import smtplib
import ssl
from pathlib import Path

import pytest
import trio
import trustme

from relay.composition import Runtime
from relay.config import ApiConfig, Config, SmtpConfig, TlsConfig
from relay.smtp.server import serve_smtp

from .conftest import Api

PASSWORD = "api-made-password"


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def config(ca: trustme.CA, tmp_path: Path) -> Config:
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    return Config(
        api=ApiConfig(listen="127.0.0.1:0", rate_limit_per_minute=10_000),
        smtp=SmtpConfig(listen="127.0.0.1:0", hostname="relay.test", auth_failure_delay=0),
        tls=TlsConfig(cert_file=str(cert_file), key_file=str(key_file)),
    )


async def test_account_created_by_api_logs_in_over_smtp(
    api: Api, operator_key: str, runtime: Runtime, ca: trustme.CA
) -> None:
    created = await api.post("/api/v1/accounts", key=operator_key, json={
        "name": "App", "email": "app@api.example", "password": PASSWORD,
        "allowed_domains": ["api.example"]})
    assert created.status == 201, created.body
    context = ssl.create_default_context()
    ca.configure_trust(context)

    def login(password: str) -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=10) as client:
            client.starttls(context=context)
            return client.login("app@api.example", password)

    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(serve_smtp, runtime, shutdown)
        port = bound.ports[0]
        code, _ = await trio.to_thread.run_sync(login, PASSWORD)
        assert code == 235
        with pytest.raises(smtplib.SMTPAuthenticationError):
            await trio.to_thread.run_sync(login, "wrong-password")
        shutdown.set()
