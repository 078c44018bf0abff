"""``relay.dkim``: keys, their encryption at rest, DNS records, and signatures that
dkimpy verifies against those records — both algorithms, oversigned From, rotation."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable

import dkim as dkimpy
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from relay import dkim

MESSAGE = (
    b"Received: from client.test ([127.0.0.1])\r\n\tby relay.test (relay) with ESMTPSA id x;\r\n"
    b"\tFri, 04 Dec 2026 02:00:00 +0000\r\n"
    b"From: Alice <alice@example.com>\r\n"
    b"To: Bob <bob@example.net>,\r\n Carol <carol@example.org>\r\n"
    b"Subject: a signed message\r\n"
    b"Date: Fri, 04 Dec 2026 02:00:00 +0000\r\n"
    b"Message-ID: <1@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"X-Mailer: not signed\r\n"
    b"\r\n"
    b"Hello Bob,  \r\n\r\nwith trailing   white space.\r\n\r\n\r\n"
)


#: A 768-bit RSA key (cryptography refuses to make one under 1024 bits; openssl did).
SHORT_RSA_PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIB5AIBADANBgkqhkiG9w0BAQEFAASCAc4wggHKAgEAAmEAvh29KuJIs8KydzVP\n"
    "2bVspBdvB9vPhtXNSMsUi1B6/N+06WYIQRY+qORcfBkQe1KfWjiL8+1MhyHA4qVl\n"
    "QAAxP+10Ie/AxdWDedxYh9czKB85Dzjqnl+qGW8YLXWRR1ptAgMBAAECYQCbAbBM\n"
    "mLbiKepMm6EBRpTPrXOPmr63lvaLVVjoxbOhHdxpOBGez75DAf4OCHmRsyhk8yY7\n"
    "/xMFs053rPbNe07k/Ma6i9reQAVJi/cTR3N3opfNMqvvtn6Z14ttYk4rrZkCMQDv\n"
    "np2FPJbAxUCX7GbbHx5EISxMDDx84G0pv4MJJQ8MYsEJHC2Bexkn5fln/CXPDVcC\n"
    "MQDLHM4Y9tXQJJSNjLQuFGcVJz46ZADgzDaCn1sW7kh8VMkgTpQSWcVJsrgCr1H4\n"
    "99sCMEG8VuRlYcoSkwzamsEEQW5ZV2ipdrKfcvMgCdepZf503RYdt9IsrhMHASvo\n"
    "vYqW0wIwPkW1lofPJAKjHQbfkyUkOaMPfB1++20A5WlwJwalaKEiDOqqkTm+uAq4\n"
    "SfJwonFzAjALCGNoXT+TtI2WxxXon+fTpCsc+DBP+ULTZOKSi/FSvFd4DJQcRYHw\n"
    "34eUNLpEyjs=\n"
    "-----END PRIVATE KEY-----\n"
)


def dns_for(*records: dkim.DnsRecord) -> Callable[..., bytes | None]:
    """A dnsfunc for dkimpy that answers from the given records only."""
    table = {f"{r.name}.".encode(): r.value.encode() for r in records}

    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        return table.get(name)

    return lookup


def _key(algorithm: str, selector: str = "s1", domain: str = "example.com") -> tuple[dkim.SigningKey, dkim.DnsRecord]:
    pair = dkim.generate(algorithm)
    record = dkim.dns_record(domain=domain, selector=selector, algorithm=algorithm,
                             public_key=pair.public_key)
    return dkim.SigningKey(domain, selector, algorithm, pair.private), record


@pytest.mark.parametrize("algorithm", dkim.ALGORITHMS)
def test_sign_and_verify(algorithm: str) -> None:
    key, record = _key(algorithm)
    fields = dkim.sign(MESSAGE, [key])
    assert fields.startswith(b"DKIM-Signature: v=1; a=" + algorithm.encode())
    assert b"c=relaxed/relaxed" in fields and b"d=example.com" in fields and b"s=s1" in fields
    signed = fields + MESSAGE
    assert dkimpy.verify(signed, dnsfunc=dns_for(record))
    # The body is covered: a changed body fails.
    assert not dkimpy.verify(signed.replace(b"Hello Bob", b"Hello Eve"), dnsfunc=dns_for(record))
    # relaxed/relaxed: re-folding and white space changes in transit do not matter.
    refolded = signed.replace(b"Subject: a signed message", b"Subject:   a signed\r\n  message")
    assert dkimpy.verify(refolded, dnsfunc=dns_for(record))


@pytest.mark.parametrize("algorithm", dkim.ALGORITHMS)
def test_from_is_oversigned(algorithm: str) -> None:
    key, record = _key(algorithm)
    fields = dkim.sign(MESSAGE, [key])
    h = re.search(rb"h=([^;]+);", fields.replace(b"\r\n", b"")).group(1)  # type: ignore[union-attr]
    names = [n.strip() for n in h.split(b":")]
    assert names.count(b"from") == 2
    assert b"x-mailer" not in names and b"received" not in names
    assert set(names) == {b"from", b"to", b"subject", b"date", b"message-id", b"mime-version",
                          b"content-type"}
    # A From: added after signing (above or below the real one) breaks the signature.
    for added in (b"From: Mallory <m@evil.example>\r\n" + fields + MESSAGE,
                  fields + MESSAGE.replace(b"Subject:", b"From: m@evil.example\r\nSubject:")):
        assert not dkimpy.verify(added, dnsfunc=dns_for(record))
    # An added header that is not signed is harmless.
    assert dkimpy.verify(b"X-Spam: no\r\n" + fields + MESSAGE, dnsfunc=dns_for(record))


def test_signature_is_folded_with_crlf() -> None:
    key, record = _key(dkim.RSA_SHA256)
    fields = dkim.sign(MESSAGE, [key])
    lines = fields.split(b"\r\n")
    assert lines[-1] == b"" and b"\n" not in fields.replace(b"\r\n", b"")
    assert len(lines) > 3  # an RSA-2048 b= needs several lines
    assert all(len(line) <= 78 for line in lines)
    assert all(line[:1] in (b" ", b"\t") for line in lines[1:-1])  # continuation lines
    assert dkimpy.verify(fields + MESSAGE, dnsfunc=dns_for(record))


def test_two_keys_two_signatures_both_verify() -> None:
    """A rotation: the old and the new selector sign, each verifies on its own."""
    old, old_record = _key(dkim.RSA_SHA256, "2025")
    new, new_record = _key(dkim.ED25519_SHA256, "2026")
    signed = dkim.sign(MESSAGE, [old, new]) + MESSAGE
    assert signed.count(b"DKIM-Signature:") == 2
    lookup = dns_for(old_record, new_record)
    verifier = dkimpy.DKIM(signed)
    assert verifier.verify(idx=0, dnsfunc=lookup) and verifier.verify(idx=1, dnsfunc=lookup)
    # With only the new record published, the new signature alone verifies.
    only_new = dkimpy.DKIM(signed)
    assert not only_new.verify(idx=0, dnsfunc=dns_for(new_record))
    assert only_new.verify(idx=1, dnsfunc=dns_for(new_record))


def test_no_keys_no_fields() -> None:
    assert dkim.sign(MESSAGE, []) == b""


def test_unparsable_header_is_unsignable() -> None:
    key, _ = _key(dkim.ED25519_SHA256)
    with pytest.raises(dkim.UnsignableMessage, match="cannot be DKIM-signed"):
        dkim.sign(b"From: a@example.com\r\nnot a header\r\n\r\nbody\r\n", [key])


def test_a_damaged_key_fails_without_showing_it() -> None:
    key, _ = _key(dkim.RSA_SHA256)
    damaged = dkim.SigningKey(key.domain, key.selector, key.algorithm, key.private[:200])
    with pytest.raises(dkim.SigningFailed) as info:
        dkim.sign(MESSAGE, [damaged])
    assert "s1" in str(info.value) and key.private[40:80].decode() not in str(info.value)
    assert "private" not in repr(damaged)  # repr=False


# ---------------------------------------------------------------- keys


def test_dns_records() -> None:
    rsa_pair = dkim.generate(dkim.RSA_SHA256)
    record = dkim.dns_record(domain="example.com", selector="s1", algorithm=dkim.RSA_SHA256,
                             public_key=rsa_pair.public_key)
    assert record.name == "s1._domainkey.example.com" and record.type == "TXT"
    assert record.value == f"v=DKIM1; k=rsa; p={rsa_pair.public_key}"
    public = serialization.load_der_public_key(base64.b64decode(rsa_pair.public_key))
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048
    ed = dkim.generate(dkim.ED25519_SHA256)
    assert len(base64.b64decode(ed.public_key)) == 32
    assert dkim.dns_record(domain="example.com", selector="s2", algorithm=dkim.ED25519_SHA256,
                           public_key=ed.public_key).value == f"v=DKIM1; k=ed25519; p={ed.public_key}"


def _pem(key: object, fmt: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8) -> str:
    return key.private_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM, fmt, serialization.NoEncryption()
    ).decode()


@pytest.mark.parametrize("fmt", [serialization.PrivateFormat.PKCS8,
                                 serialization.PrivateFormat.TraditionalOpenSSL])
def test_import_rsa_pem_signs_like_a_generated_key(fmt: serialization.PrivateFormat) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pair = dkim.import_pem(_pem(private, fmt))
    assert pair.algorithm == dkim.RSA_SHA256
    record = dkim.dns_record(domain="example.com", selector="imp", algorithm=pair.algorithm,
                             public_key=pair.public_key)
    signed = dkim.sign(MESSAGE, [dkim.SigningKey("example.com", "imp", pair.algorithm, pair.private)])
    assert dkimpy.verify(signed + MESSAGE, dnsfunc=dns_for(record))


def test_import_ed25519_pem() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    pair = dkim.import_pem(_pem(private))
    assert pair.algorithm == dkim.ED25519_SHA256
    raw_public = private.public_key().public_bytes(serialization.Encoding.Raw,
                                                   serialization.PublicFormat.Raw)
    assert base64.b64decode(pair.public_key) == raw_public


@pytest.mark.parametrize(("pem", "says"), [
    (lambda: SHORT_RSA_PEM, "768 bits"),
    (lambda: _pem(ec.generate_private_key(ec.SECP256R1())), "only RSA and Ed25519"),
    (lambda: "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n", "not a PEM private key"),
    (lambda: "x" * 20_000, "too long"),
    (lambda: ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw")).decode(), "encrypted"),
])
def test_import_refuses_with_a_reason_and_without_the_key(pem: Callable[[], str], says: str) -> None:
    text = pem()
    with pytest.raises(dkim.InvalidKey, match=says) as info:
        dkim.import_pem(text)
    assert text[40:80] not in str(info.value)


def test_rsa_over_4096_bits_is_refused() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=4096 + 8)
    with pytest.raises(dkim.InvalidKey, match="4104 bits"):
        dkim.import_pem(_pem(private))


@pytest.mark.parametrize(("selector", "ok"), [
    ("s1", True), ("2026-a", True), ("a.b", True), ("-a", False), ("a_b", False), ("", False),
    ("a" * 64, False), ("a..b", False),
])
def test_selector_syntax(selector: str, ok: bool) -> None:
    assert dkim.selector_valid(selector) is ok


# ---------------------------------------------------------------- encryption at rest


def test_encrypt_decrypt_roundtrip_bound_to_the_key_id() -> None:
    kek = dkim.KeyEncryption(os.urandom(32))
    pair = dkim.generate(dkim.RSA_SHA256)
    stored = kek.encrypt(pair.private, key_id=b"id-1")
    assert pair.private not in stored and stored != kek.encrypt(pair.private, key_id=b"id-1")
    assert kek.decrypt(stored, key_id=b"id-1") == pair.private
    # The same ciphertext copied onto another row does not decrypt there.
    with pytest.raises(dkim.KeyDecryptionFailed):
        kek.decrypt(stored, key_id=b"id-2")


def test_wrong_kek_fails_clearly() -> None:
    stored = dkim.KeyEncryption(os.urandom(32)).encrypt(b"secret", key_id=b"k")
    with pytest.raises(dkim.KeyDecryptionFailed, match="another key encryption key"):
        dkim.KeyEncryption(os.urandom(32)).decrypt(stored, key_id=b"k")
    with pytest.raises(dkim.KeyDecryptionFailed, match="not in a form"):
        dkim.KeyEncryption(os.urandom(32)).decrypt(b"\x02" + stored[1:], key_id=b"k")


def test_kek_setting() -> None:
    text = base64.b64encode(os.urandom(32)).decode()
    assert dkim.KeyEncryption.from_setting("") is None
    kek = dkim.KeyEncryption.from_setting(text)
    assert kek is not None and text not in repr(kek)
    for bad in ("short", base64.b64encode(os.urandom(16)).decode(), "!!" * 22):
        with pytest.raises(ValueError, match=r"base64 of 32 random octets; make one with python3 -c"):
            dkim.parse_kek(bad)


@pytest.mark.parametrize("message", [
    MESSAGE,
    MESSAGE + b"x" * 998 + b"\r\n",
    MESSAGE + b"x" * 999 + b"\r\n" + b"y" * 1996 + b"\r\n" + b"z" * 2500,
    MESSAGE.replace(b"Subject: a signed message", b"Subject: " + b"s" * 1200),
])
def test_long_lines_are_cut_as_the_smtp_provider_cuts_them(message: bytes) -> None:
    from proto._writers import LineSplitter

    cut = dkim.split_long_lines(message)
    assert cut == LineSplitter(dkim.MAX_LINE).feed(message)
    assert (cut is message) == (max(map(len, message.split(b"\r\n"))) <= dkim.MAX_LINE)
    # Cut once and signed, the provider's cut changes nothing and the signature holds.
    key, record = _key(dkim.ED25519_SHA256)
    try:
        signed = dkim.sign_message(message, [key])
    except dkim.UnsignableMessage:
        assert b"s" * 1200 in message  # a cut header line is no header line: refused
        return
    assert LineSplitter(dkim.MAX_LINE).feed(signed) == signed
    assert dkimpy.verify(signed, dnsfunc=dns_for(record))


# ---------------------------------------------------------------- configuration


def test_kek_setting_is_validated_and_never_shown() -> None:
    from relay.config import ConfigError, load, redacted

    good = base64.b64encode(os.urandom(32)).decode()
    config = load(None, environ={"RELAY_DKIM__KEY_ENCRYPTION_KEY": good})
    assert config.dkim.key_encryption_key == good
    assert good not in repr(config)
    assert redacted(config)["dkim"]["key_encryption_key"] == "***"
    assert redacted(load(None, environ={}))["dkim"]["key_encryption_key"] == ""

    bad = base64.b64encode(os.urandom(31)).decode()
    with pytest.raises(ConfigError) as info:
        load(None, environ={"RELAY_DKIM__KEY_ENCRYPTION_KEY": bad})
    message = str(info.value)
    assert message.startswith("dkim.key_encryption_key: must be the base64 of 32 random octets")
    assert "os.urandom(32)" in message and bad not in message
