"""Addresses (RFC 5321 4.1.2, RFC 6531), ESMTP parameters, strict base64."""

from __future__ import annotations

import pytest

import proto
from proto._syntax import decode_sasl_plain, parse_params, split_path_argument


@pytest.mark.parametrize(
    "path, local, domain",
    [
        ("<user@example.org>", "user", "example.org"),
        ("<first.last+tag@sub.example.org>", "first.last+tag", "sub.example.org"),
        ('<"john doe"@example.org>', '"john doe"', "example.org"),
        ('<"a\\"b"@example.org>', '"a\\"b"', "example.org"),
        ("<user@[192.0.2.1]>", "user", "[192.0.2.1]"),
        ("<user@[IPv6:2001:db8::1]>", "user", "[IPv6:2001:db8::1]"),
        ("<@relay.example,@other.example:user@example.org>", "user", "example.org"),
        ("<x@a-b.c0>", "x", "a-b.c0"),
    ],
)
def test_valid_paths(path: str, local: str, domain: str) -> None:
    address = proto.parse_path(path)
    assert address == proto.Address(local, domain)
    assert address is not None and address.raw == path
    assert str(address) == f"{local}@{domain}"


@pytest.mark.parametrize(
    "path",
    [
        "user@example.org",  # no brackets
        "<user>",  # no domain
        "<@example.org>",
        "<user@>",
        "<.user@example.org>",
        "<user.@example.org>",
        "<us..er@example.org>",
        "<user@-example.org>",
        "<user@example-.org>",
        "<user@example..org>",
        "<user@[300.0.0.1]>",
        "<user@[IPv6:zz::1]>",
        "<user@[1.2.3]>",
        '<"unterminated@example.org>',
        "<us er@example.org>",
        "<" + "a" * 65 + "@example.org>",  # local part over 64
        "<a@" + "b" * 64 + ".org>",  # label over 63
        "<a@" + ".".join(["abcdefgh"] * 30) + ">",  # path over 256
        "<@relay.example user@example.org>",
        "<>",
    ],
)
def test_invalid_paths(path: str) -> None:
    with pytest.raises(ValueError):
        proto.parse_path(path)


def test_null_and_postmaster_only_when_allowed() -> None:
    assert proto.parse_path("<>", allow_null=True) is None
    assert proto.parse_path("<Postmaster>", allow_postmaster=True) == proto.Address("Postmaster", "")
    with pytest.raises(ValueError):
        proto.parse_path("<postmaster>")


def test_local_part_limit_at_64() -> None:
    assert proto.parse_mailbox("a" * 64 + "@example.org").local_part == "a" * 64
    with pytest.raises(ValueError, match="64"):
        proto.parse_mailbox("a" * 65 + "@example.org")


def test_internationalized_addresses_need_smtputf8() -> None:
    with pytest.raises(ValueError, match="SMTPUTF8"):
        proto.parse_mailbox("j\u00f6rg@example.org")
    with pytest.raises(ValueError, match="SMTPUTF8"):
        proto.parse_mailbox("joerg@b\u00fccher.example")
    address = proto.parse_mailbox("j\u00f6rg@b\u00fccher.example", smtputf8=True)
    assert not address.is_ascii and str(address) == "j\u00f6rg@b\u00fccher.example"
    assert proto.parse_mailbox("\u7528\u6237@\u4f8b\u5b50.\u5e7f\u544a", smtputf8=True).domain == "\u4f8b\u5b50.\u5e7f\u544a"


def test_raw_is_not_part_of_equality() -> None:
    assert proto.parse_path("<@a.example:u@b.example>") == proto.parse_path("<u@b.example>")


def test_split_path_argument_handles_quoted_spaces_and_gt() -> None:
    assert split_path_argument('<"a >b"@example.org> SIZE=1') == ('<"a >b"@example.org>', ["SIZE=1"])
    assert split_path_argument(" <a@b.example>") == ("<a@b.example>", [])
    with pytest.raises(ValueError):
        split_path_argument("<a@b.example>SIZE=1")


def test_params() -> None:
    assert parse_params(["size=10", "SMTPUTF8", "Body=8BITMIME"]) == {"SIZE": "10", "SMTPUTF8": None, "BODY": "8BITMIME"}
    for bad in (["=x"], ["SIZE="], ["SIZE=a=b"], ["-X=1"], ["A=1", "a=2"]):
        with pytest.raises(ValueError):
            parse_params(bad)


@pytest.mark.parametrize("data", [b"", b"a", b"ab", b"abc", b"\0\xff" * 17])
def test_base64_round_trip(data: bytes) -> None:
    assert proto.decode_base64(proto.encode_base64(data)) == data


@pytest.mark.parametrize("text", ["YQ", "YQ=", "YQ===", "Y Q==", "YQ==YQ==", "YR==", "YWI=\n", "?"])
def test_base64_strict(text: str) -> None:
    with pytest.raises(ValueError):
        proto.decode_base64(text)


def test_sasl_plain() -> None:
    assert decode_sasl_plain(b"z\0u\0p") == ("z", "u", "p")
    with pytest.raises(ValueError):
        decode_sasl_plain(b"u\0p")
