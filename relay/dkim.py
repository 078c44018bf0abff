"""DKIM keys and signatures (RFC 6376; Ed25519 per RFC 8463), shared by the API and SMTP.

Strategy: the cryptography that is not ours to redo stays in libraries — ``cryptography``
makes and reads keys and encrypts them at rest, ``dkimpy`` canonicalises and signs.
This module only decides the policy around them, once, for both services:

- **Keys**: RSA-2048 or Ed25519 generated here, or an RSA (1024 to 4096 bits) or
  Ed25519 PEM private key imported. A key is held as ``KeyPair``: the private key in
  the form dkimpy signs with (an unencrypted PKCS#1 PEM for RSA, the base64 of the
  32-octet seed for Ed25519) and the public key as the base64 of the DNS ``p=`` tag
  (the DER SubjectPublicKeyInfo for RSA, RFC 6376 §3.6.1; the raw 32-octet key for
  Ed25519, RFC 8463 §4).
- **At rest** every private key is encrypted with ``dkim.key_encryption_key`` (the KEK,
  ``KeyEncryption``): AES-256-GCM, see its docstring for why.
- **Signing** (``sign``): relaxed/relaxed, a fixed list of header fields
  (``SIGNED_HEADERS``, those the message has), and ``From`` listed once more than it
  occurs — oversigned (RFC 6376 §8.15), so a ``From:`` added on the way breaks the
  signature. One signature per key given: two during a rotation.

No storage, trio or service import here: the SMTP side calls ``sign`` in a worker
thread, the API calls the key functions. No function puts key material into an
exception message or a ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Sequence

import attrs
import dkim as dkimpy
from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "ALGORITHMS",
    "ED25519_SHA256",
    "RSA_SHA256",
    "SIGNED_HEADERS",
    "DnsRecord",
    "InvalidKey",
    "KeyDecryptionFailed",
    "KeyEncryption",
    "KeyPair",
    "SigningFailed",
    "SigningKey",
    "UnsignableMessage",
    "dns_record",
    "generate",
    "import_pem",
    "selector_valid",
    "sign",
    "sign_message",
    "split_long_lines",
]

RSA_SHA256 = "rsa-sha256"
ED25519_SHA256 = "ed25519-sha256"
ALGORITHMS = (RSA_SHA256, ED25519_SHA256)

#: RSA modulus bounds for imported keys: RFC 8301 §3.2 forbids signing with fewer
#: than 1024 bits; past 4096 the p= value no longer fits comfortably in DNS.
MIN_RSA_BITS = 1024
MAX_RSA_BITS = 4096
#: Generated RSA keys (RFC 8301 §3.2: at least 1024, 2048 recommended).
GENERATED_RSA_BITS = 2048
#: Octets of an imported PEM we look at.
MAX_PEM_LENGTH = 10_000

#: The header fields signed, in this order of preference; each is signed as many
#: times as the message has it, and ``from`` once more (oversigning). Fixed on
#: purpose: it is what receivers expect, and a setting would only let it go wrong.
SIGNED_HEADERS = (
    "from", "to", "cc", "subject", "date", "message-id", "reply-to", "mime-version",
    "content-type", "content-transfer-encoding", "in-reply-to", "references",
)

#: The KEK: base64 of this many random octets (AES-256).
KEK_LENGTH = 32
#: How to make one, for every message that asks for it.
KEK_COMMAND = (
    'python3 -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())"'
)

# RFC 6376 §3.1: selector = sub-domain *("." sub-domain); labels as in a host name.
_SELECTOR_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
#: Selector length we accept (the DNS name must stay under 253 octets with the domain).
MAX_SELECTOR = 63


class InvalidKey(ValueError):
    """An imported private key cannot be used; the message says why (never the key)."""


class KeyDecryptionFailed(Exception):
    """A stored private key does not decrypt under the configured KEK: the KEK is not
    the one it was encrypted with, or the stored bytes were changed."""


class SigningFailed(Exception):
    """dkimpy could not sign with a key (a damaged key, a library fault): temporary
    for the client, a fault for the operator."""


class UnsignableMessage(SigningFailed):
    """The message itself cannot be signed (a header line dkimpy cannot parse)."""


@attrs.frozen
class KeyPair:
    algorithm: str
    #: What dkimpy signs with: an unencrypted PKCS#1 PEM (RSA) or the base64 of the
    #: 32-octet seed (Ed25519). Never logged, never returned by the API.
    private: bytes = attrs.field(repr=False)
    #: The base64 of the DNS record's ``p=`` tag.
    public_key: str


@attrs.frozen
class DnsRecord:
    """The TXT record to publish (RFC 6376 §3.6.2.1)."""

    name: str
    value: str
    type: str = "TXT"


@attrs.frozen
class SigningKey:
    """One enabled key, decrypted, as the SMTP side signs with it."""

    domain: str
    selector: str
    algorithm: str
    private: bytes = attrs.field(repr=False)


# ---------------------------------------------------------------- keys


def generate(algorithm: str) -> KeyPair:
    """A new key pair: RSA-2048 for ``rsa-sha256``, Ed25519 for ``ed25519-sha256``.

    Raises:
        ValueError: an algorithm other than those two.
    """
    if algorithm == RSA_SHA256:
        return _rsa_pair(rsa.generate_private_key(public_exponent=65537, key_size=GENERATED_RSA_BITS))
    if algorithm == ED25519_SHA256:
        return _ed25519_pair(ed25519.Ed25519PrivateKey.generate())
    raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}")


def import_pem(pem: str | bytes) -> KeyPair:
    """The key pair of an unencrypted PEM private key (PKCS#1 or PKCS#8).

    Raises:
        InvalidKey: not a PEM private key, encrypted, of another type, or an RSA key
            shorter than 1024 or longer than 4096 bits. The message never quotes it.
    """
    data = pem.encode("utf-8", "replace") if isinstance(pem, str) else pem
    if len(data) > MAX_PEM_LENGTH:
        raise InvalidKey(f"too long for a private key (at most {MAX_PEM_LENGTH} characters)")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise InvalidKey("the key is encrypted; give it unencrypted (openssl pkey -in key.pem)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidKey(
            "not a PEM private key; expected '-----BEGIN PRIVATE KEY-----' (PKCS#8) or"
            " '-----BEGIN RSA PRIVATE KEY-----' (PKCS#1), RSA or Ed25519"
        ) from None
    if isinstance(key, rsa.RSAPrivateKey):
        if not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
            raise InvalidKey(
                f"an RSA key of {key.key_size} bits; DKIM needs {MIN_RSA_BITS} to"
                f" {MAX_RSA_BITS} bits (RFC 8301 §3.2; 2048 recommended)"
            )
        return _rsa_pair(key)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return _ed25519_pair(key)
    raise InvalidKey("only RSA and Ed25519 keys can sign DKIM (RFC 6376, RFC 8463)")


def _rsa_pair(key: rsa.RSAPrivateKey) -> KeyPair:
    # dkimpy reads PKCS#1 (and PKCS#8) PEM with LF line ends.
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyPair(RSA_SHA256, private, base64.b64encode(public).decode("ascii"))


def _ed25519_pair(key: ed25519.Ed25519PrivateKey) -> KeyPair:
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return KeyPair(ED25519_SHA256, base64.b64encode(seed), base64.b64encode(public).decode("ascii"))


def selector_valid(selector: str) -> bool:
    """RFC 6376 §3.1: dot-separated labels of letters, digits and hyphens."""
    return 0 < len(selector) <= MAX_SELECTOR and all(
        _SELECTOR_LABEL.match(label) for label in selector.split(".")
    )


def dns_record(*, domain: str, selector: str, algorithm: str, public_key: str) -> DnsRecord:
    """The TXT record receivers look the key up in (RFC 6376 §3.6.1; RFC 8463 §4).

    An RSA-2048 value is longer than one DNS character-string (255 octets): zone files
    and DNS providers split it into several strings, which receivers join again.
    """
    kind = "ed25519" if algorithm == ED25519_SHA256 else "rsa"
    return DnsRecord(
        name=f"{selector}._domainkey.{domain}", value=f"v=DKIM1; k={kind}; p={public_key}"
    )


# ---------------------------------------------------------------- encryption at rest


class KeyEncryption:
    """Private keys at rest, encrypted with ``dkim.key_encryption_key`` (the KEK).

    AES-256-GCM rather than Fernet: it uses all 32 octets of the KEK as one key (Fernet
    splits 32 octets into AES-128 plus an HMAC key), and it authenticates *associated
    data* — here the key's id — so a ciphertext copied onto another row (another
    account's key) does not decrypt there. Each encryption has a fresh random 96-bit
    nonce (NIST SP 800-38D §8.2.2; a few keys per account never approach the 2^32
    limit). Stored form: version octet 1, nonce (12), ciphertext with its tag.
    """

    _VERSION = b"\x01"

    def __init__(self, kek: bytes) -> None:
        if len(kek) != KEK_LENGTH:
            raise ValueError(f"the key encryption key must be {KEK_LENGTH} octets")
        self._aead = AESGCM(kek)

    def __repr__(self) -> str:
        return "KeyEncryption(<KEK hidden>)"

    @classmethod
    def from_setting(cls, text: str) -> KeyEncryption | None:
        """The KEK of ``dkim.key_encryption_key``, or None when it is empty.

        Raises:
            ValueError: not the base64 of 32 octets (``relay.config`` checks it first).
        """
        if not text:
            return None
        return cls(parse_kek(text))

    def encrypt(self, private: bytes, *, key_id: bytes) -> bytes:
        nonce = os.urandom(12)
        return self._VERSION + nonce + self._aead.encrypt(nonce, private, key_id)

    def decrypt(self, stored: bytes, *, key_id: bytes) -> bytes:
        """Raises: KeyDecryptionFailed: another KEK, another row's key, or damaged bytes."""
        if stored[:1] != self._VERSION or len(stored) < 1 + 12 + 16:
            raise KeyDecryptionFailed("the stored private key is not in a form this relay wrote")
        try:
            return self._aead.decrypt(stored[1:13], stored[13:], key_id)
        except InvalidTag:
            raise KeyDecryptionFailed(
                "the stored private key does not decrypt with dkim.key_encryption_key: it was"
                " encrypted with another key encryption key (restore that one), or changed"
            ) from None


def parse_kek(text: str) -> bytes:
    """The 32 octets of a base64 KEK.

    Raises:
        ValueError: says what is wrong and how to make a good one.
    """
    try:
        kek = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        kek = b""
    if len(kek) != KEK_LENGTH:
        raise ValueError(
            f"must be the base64 of {KEK_LENGTH} random octets; make one with {KEK_COMMAND}"
        )
    return kek


# ---------------------------------------------------------------- signing


def _header_names(message: bytes) -> list[bytes]:
    """The names of the message's header fields in order, lower case."""
    end = message.find(b"\r\n\r\n")
    block = message if end == -1 else message[: end + 2]
    names = []
    for line in block.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") or b":" not in line:
            continue
        names.append(line.partition(b":")[0].rstrip(b" \t").lower())
    return names


def signed_headers(message: bytes) -> list[bytes]:
    """The ``h=`` list: each field of ``SIGNED_HEADERS`` as often as the message has
    it, then ``from`` once more, so an added ``From:`` fails verification."""
    wanted = {name.encode("ascii") for name in SIGNED_HEADERS}
    present = [name for name in _header_names(message) if name in wanted]
    return [*present, b"from"]


#: RFC 5322 §2.1.1: at most 998 octets per line, CRLF not counted.
MAX_LINE = 998


def split_long_lines(message: bytes) -> bytes:
    """``message`` with every line over ``MAX_LINE`` octets cut every ``MAX_LINE``
    octets by a CRLF; ``message`` itself when it has none.

    The SMTP provider cuts long lines the same way on delivery (proto's
    ``LineSplitter``, like Postfix), and no canonicalisation survives a CRLF put into
    a line, so a message is cut *before* it is signed: then the signature covers what
    is delivered and the provider finds nothing left to cut.
    """
    lines = message.split(b"\r\n")
    if all(len(line) <= MAX_LINE for line in lines):
        return message
    out: list[bytes] = []
    for line in lines:
        if len(line) <= MAX_LINE:
            out.append(line)
        else:
            out.extend(line[i : i + MAX_LINE] for i in range(0, len(line), MAX_LINE))
    return b"\r\n".join(out)


def sign_message(message: bytes, keys: Sequence[SigningKey]) -> bytes:
    """The message as it will be stored and delivered: lines over 998 octets cut
    (``split_long_lines``), with one ``DKIM-Signature:`` per key in front.

    Raises:
        UnsignableMessage, SigningFailed: as ``sign``.
    """
    message = split_long_lines(message)
    return sign(message, keys) + message


def sign(message: bytes, keys: Sequence[SigningKey]) -> bytes:
    """The ``DKIM-Signature:`` fields to put in front of ``message``, one per key.

    ``message`` is the prepared message (CRLF line ends). Each signature covers the
    message as given, so their order does not matter and neither signs the other.
    CPU work (an RSA-2048 signature is pure Python in dkimpy): call it from a worker
    thread in a server.

    Raises:
        UnsignableMessage: dkimpy cannot parse the header block.
        SigningFailed: a key dkimpy refuses, or any other failure inside dkimpy. The
            message names the domain and selector, never key material.
    """
    include = signed_headers(message)
    try:
        # One parse of the message for every key (two during a rotation).
        signer = dkimpy.DKIM(message, linesep=b"\r\n")
    except dkimpy.MessageFormatError as exc:
        raise UnsignableMessage(f"the header block cannot be DKIM-signed ({_short(exc)})") from None
    fields = []
    for key in keys:
        try:
            fields.append(signer.sign(
                key.selector.encode("ascii"), key.domain.encode("ascii"), key.private,
                signature_algorithm=key.algorithm.encode("ascii"),
                canonicalize=(b"relaxed", b"relaxed"), include_headers=include,
            ))
        except Exception as exc:  # noqa: BLE001 - dkimpy raises many types; none may carry the key out
            raise SigningFailed(
                f"signing with selector {key.selector!r} of {key.domain} failed: {type(exc).__name__}"
            ) from None
    return b"".join(fields)


def _short(exc: Exception) -> str:
    """An error's text cut short: dkimpy quotes the offending header line."""
    text = str(exc).replace("\r", " ").replace("\n", " ")
    return text if len(text) <= 120 else text[:117] + "..."
