"""/healthz and /readyz: liveness without the database, readiness with its checks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from relay.api.health import check_certificate
from relay.config import ApiConfig, Config, TlsConfig
from relay.storage import DatabaseUnavailable, Storage

from .conftest import Api


def write_expired(path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(days=30))
            .not_valid_after(now - dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Config:
    make_cert = getattr(request, "param", None)
    tls = TlsConfig()
    if make_cert is not None:
        cert = make_cert(tmp_path)
        tls = TlsConfig(cert_file=str(cert), key_file=str(cert))
    return Config(api=ApiConfig(listen="127.0.0.1:0"), tls=tls)


def valid_cert(tmp_path: Path) -> Path:
    cert = trustme.CA().issue_cert("localhost")
    path = tmp_path / "cert.pem"
    cert.cert_chain_pems[0].write_to_path(str(path))
    return path


async def test_healthz_needs_no_database(api: Api, storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    async def down() -> None:
        raise DatabaseUnavailable("down")

    monkeypatch.setattr(storage, "ping", down)
    for path in ("/healthz", "/api/v1/healthz"):
        reply = await api.get(path)
        assert reply.status == 200 and reply.json == {"status": "ok"}


async def test_ready_without_certificate_skips_that_check(api: Api) -> None:
    for path in ("/readyz", "/api/v1/readyz"):
        reply = await api.get(path)
        assert reply.status == 200, reply.body
        assert reply.json["checks"]["database"] == {"ok": True}
        assert reply.json["checks"]["tls_certificate"]["skipped"] is True


@pytest.mark.parametrize("config", [valid_cert], indirect=True)
async def test_ready_with_valid_certificate(api: Api) -> None:
    reply = await api.get("/readyz")
    assert reply.status == 200, reply.body
    check = reply.json["checks"]["tls_certificate"]
    assert check["ok"] is True and "not_after" in check


@pytest.mark.parametrize("config", [lambda tmp: write_expired(tmp / "old.pem")], indirect=True)
async def test_expired_certificate_is_503(api: Api) -> None:
    reply = await api.get("/readyz")
    assert reply.status == 503
    assert reply.json["checks"]["tls_certificate"]["ok"] is False
    assert "expired" in reply.json["checks"]["tls_certificate"]["detail"]
    assert "tls_certificate" in reply.json["detail"]


@pytest.mark.parametrize("config", [lambda tmp: tmp / "missing.pem"], indirect=True)
async def test_unreadable_certificate_is_503(api: Api) -> None:
    reply = await api.get("/readyz")
    assert reply.status == 503
    assert "cannot be read" in reply.json["checks"]["tls_certificate"]["detail"]


async def test_database_down_is_503(api: Api, storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    async def down() -> None:
        raise DatabaseUnavailable("database unavailable: OSError")

    monkeypatch.setattr(storage, "ping", down)
    reply = await api.get("/readyz")
    assert reply.status == 503
    assert reply.json["checks"]["database"] == {"ok": False, "detail": "database unavailable: OSError"}
    assert reply.json["detail"] == "not ready: database failing"


def test_check_certificate_not_yet_valid_and_garbage(tmp_path: Path) -> None:
    path = valid_cert(tmp_path)
    assert check_certificate(path, dt.datetime(1990, 1, 1, tzinfo=dt.UTC))["ok"] is False
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    assert check_certificate(garbage, dt.datetime.now(dt.UTC))["detail"].endswith("not a PEM certificate")
