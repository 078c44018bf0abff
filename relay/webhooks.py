"""Webhook signatures and the rules a webhook URL must follow.

Signature: each request carries three headers::

    Relay-Webhook-Id: <event id>             (the same on every redelivery)
    Relay-Webhook-Timestamp: <unix seconds>  (when this attempt was signed)
    Relay-Webhook-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>

The timestamp is inside the signed text so a captured request cannot be replayed
later with a fresh timestamp; a receiver refuses timestamps far from its clock
(``verify``'s ``tolerance``) and drops event ids it has seen (at-least-once). The
secret is the whole ``whsec_…`` string, used as UTF-8 bytes; README shows the
receiving side in a few lines of Python.

URL rules (``check_url`` at the API, ``check_address`` when connecting): ``https``
only unless ``webhooks.allow_http``; and, unless ``webhooks.allow_private_networks``,
no address that is not globally routable — loopback, private, link-local (cloud
metadata services live at 169.254.169.254), unique-local, multicast, reserved — so
a tenant cannot make the relay call into the network it runs in (SSRF). The address
check runs on every address the name resolves to at delivery time, and the request
then goes to the checked address, so a DNS answer that changes between the check
and the connection (rebinding) cannot slip through.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import socket
import time
from urllib.parse import urlsplit

import attrs

__all__ = [
    "ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "InvalidUrl",
    "UrlPolicy",
    "new_secret",
    "sign",
    "verify",
]

ID_HEADER = "Relay-Webhook-Id"
TIMESTAMP_HEADER = "Relay-Webhook-Timestamp"
SIGNATURE_HEADER = "Relay-Webhook-Signature"
SECRET_PREFIX = "whsec_"
#: Seconds a receiver should accept between the timestamp and its own clock.
DEFAULT_TOLERANCE = 300


def new_secret() -> str:
    """A fresh signing secret: 32 random bytes, URL-safe base64, with a prefix that
    makes it recognisable in a secret scanner."""
    return SECRET_PREFIX + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Relay-Webhook-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(
    secret: str, *, timestamp: str, signature: str, body: bytes,
    tolerance: float = DEFAULT_TOLERANCE, now: float | None = None,
) -> bool:
    """What a receiver does: the timestamp is recent and one ``v1=`` value matches.

    Several comma-separated values are accepted, so a receiver can hold an old and a
    new secret across a rotation by calling this once per secret.
    """
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance:
        return False
    expected = sign(secret, sent, body)
    return any(hmac.compare_digest(expected, value.strip()) for value in signature.split(","))


class InvalidUrl(ValueError):
    """``str()`` says what is wrong with the URL and which setting would allow it."""


def _blocked(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


def _literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host name spells, in any form the resolver accepts as one
    (``10.0.0.1.``, ``127.1``, ``2130706433``, ``0x7f.1``), else None."""
    host = host.rstrip(".")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


@attrs.frozen
class UrlPolicy:
    allow_http: bool = False
    allow_private_networks: bool = False

    def check_url(self, url: str) -> str:
        """The URL, if an endpoint may have it.

        Raises:
            InvalidUrl: not http(s), http while ``webhooks.allow_http`` is off, no
                host, credentials in it, or a literal address that is not public.
        """
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise InvalidUrl(f"not a URL: {exc}") from None
        if parts.scheme not in ("https", "http"):
            raise InvalidUrl("must start with https://")
        if parts.scheme == "http" and not self.allow_http:
            raise InvalidUrl(
                "must be https:// (set webhooks.allow_http = true to allow plain http, for development)"
            )
        if not parts.hostname:
            raise InvalidUrl("has no host name")
        if parts.username is not None or parts.password is not None:
            raise InvalidUrl("must not carry a user name or password; authenticate with the signature")
        if parts.fragment:
            raise InvalidUrl("must not have a #fragment")
        if port == 0:
            raise InvalidUrl("port 0 is not a port")
        literal = _literal_address(parts.hostname)
        if literal is not None:
            self.check_address(literal)
        return url

    def check_address(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
        """Raises: InvalidUrl when the address is not public and private ones are not allowed."""
        if not self.allow_private_networks and _blocked(address):
            raise InvalidUrl(
                f"{address} is not a public address (loopback, private, link-local or reserved);"
                " set webhooks.allow_private_networks = true to allow it"
            )
