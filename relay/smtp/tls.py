"""TLS for the submission listener: the configured pair, or a generated self-signed one.

A relay that cannot do STARTTLS cannot take AUTH (RFC 8314, our default
``smtp.auth_require_tls``), so when no certificate is configured ``relay serve``
makes a self-signed pair under ``tls.self_signed_dir``: STARTTLS works out of the box,
and clients that verify certificates will (rightly) complain until a real one is set.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import socket
import ssl
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..config import Config

CERT_NAME = "selfsigned.crt"
KEY_NAME = "selfsigned.key"
#: Held (flock) while a process makes the self-signed pair.
LOCK_NAME = ".selfsigned.lock"


@attrs.frozen
class KeyPair:
    cert_file: Path
    key_file: Path
    self_signed: bool


def generate_self_signed(directory: Path, hostname: str, days: int = 825) -> KeyPair:
    """Write a new EC P-256 key and a self-signed certificate for ``hostname``."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path = directory / KEY_NAME
    cert_path = directory / CERT_NAME
    # Each file appears whole (written aside, then renamed), the key before the
    # certificate: whoever sees the certificate finds its key complete.
    fresh_key = directory / f".{KEY_NAME}.{os.getpid()}"
    fd = os.open(fresh_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    os.replace(fresh_key, key_path)
    fresh_cert = directory / f".{CERT_NAME}.{os.getpid()}"
    fresh_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.replace(fresh_cert, cert_path)
    return KeyPair(cert_path, key_path, self_signed=True)


def ensure_key_pair(config: Config) -> KeyPair:
    """The configured pair, else the self-signed one (generated on first use)."""
    if config.tls.cert_file:
        return KeyPair(
            config.resolve_path(config.tls.cert_file),
            config.resolve_path(config.tls.key_file),
            self_signed=False,
        )
    directory = config.resolve_path(config.tls.self_signed_dir)
    cert, key = directory / CERT_NAME, directory / KEY_NAME
    if cert.exists() and key.exists():
        return KeyPair(cert, key, self_signed=True)
    directory.mkdir(parents=True, exist_ok=True)
    # Several relay processes starting together share the directory: one makes the
    # pair under an exclusive lock, the others wait and use it (two writers would
    # leave a key that does not match the certificate).
    with open(directory / LOCK_NAME, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if cert.exists() and key.exists():
            return KeyPair(cert, key, self_signed=True)
        return generate_self_signed(directory, config.smtp.hostname or socket.getfqdn())


class TlsConfigError(Exception):
    """The certificate or key cannot be loaded; the message names the file."""


def server_context(pair: KeyPair) -> ssl.SSLContext:
    """A server context allowing TLS 1.2 and later.

    Raises:
        TlsConfigError: a file is missing or the pair does not match.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(pair.cert_file, pair.key_file)
    except FileNotFoundError as exc:
        raise TlsConfigError(f"tls: {exc.filename}: no such file") from None
    except ssl.SSLError as exc:
        raise TlsConfigError(
            f"tls: cannot load {pair.cert_file} with {pair.key_file}: {exc.reason}"
        ) from None
    return context
