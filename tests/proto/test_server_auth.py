"""AUTH PLAIN and LOGIN (RFC 4954, RFC 4616), driven by the connection."""

from __future__ import annotations

import base64

import pytest
from helpers import EHLO, drive, greeted, run

import proto

PLAIN = base64.b64encode(b"\0alice\0s3cret")


def creds(mechanism: str, authcid: str = "alice", password: str = "s3cret", authzid: str = "") -> proto.AuthCredentials:
    return proto.AuthCredentials(mechanism, authzid, authcid, password)


def test_auth_plain_initial_response() -> None:
    conn = greeted(tls_active=True)
    t = drive(conn, [EHLO + b"AUTH PLAIN " + PLAIN + b"\r\n"])
    assert t.events[-1] == creds("PLAIN")
    assert t.output.endswith(b"235 2.7.0 Authentication successful\r\n")
    assert conn.session.authenticated == "alice"


def test_auth_plain_with_authzid() -> None:
    ir = base64.b64encode(b"admin\0alice\0pw")
    t = run(EHLO + b"AUTH PLAIN " + ir + b"\r\n", tls_active=True)
    assert t.events[-1] == creds("PLAIN", password="pw", authzid="admin")


def test_auth_plain_challenge() -> None:
    t = run(EHLO + b"AUTH PLAIN\r\n" + PLAIN + b"\r\n", tls_active=True)
    assert t.events[1] == proto.AuthRequest(proto.Reply(334, ""), "AUTH PLAIN challenge", "PLAIN")
    assert b"334 \r\n" in t.output
    assert t.events[-1] == creds("PLAIN")


def test_auth_login_challenges() -> None:
    t = run(EHLO + b"AUTH LOGIN\r\nYWxpY2U=\r\nczNjcmV0\r\n", tls_active=True)
    assert b"334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n" in t.output
    assert t.events[-1] == creds("LOGIN")


def test_auth_login_initial_response() -> None:
    t = run(EHLO + b"AUTH LOGIN YWxpY2U=\r\nczNjcmV0\r\n", tls_active=True)
    assert t.codes[-2:] == [334, 235] and t.events[-1] == creds("LOGIN")


def test_password_not_in_repr() -> None:
    assert "s3cret" not in repr(creds("PLAIN"))


def test_auth_failure_then_retry() -> None:
    conn = greeted(tls_active=True)
    replies = iter([proto.Reply(535, "Authentication credentials invalid", "5.7.8"), proto.Reply(235, "ok", "2.7.0")])
    t = drive(conn, [EHLO + b"AUTH PLAIN " + PLAIN + b"\r\nAUTH PLAIN " + PLAIN + b"\r\n"],
              respond=lambda e, c: next(replies) if isinstance(e, proto.AuthCredentials) else proto.Reply(250, ""))
    assert t.codes == [250, 535, 235]


def test_auth_cancel_with_star() -> None:
    t = run(EHLO + b"AUTH LOGIN\r\n*\r\nNOOP\r\n", tls_active=True)
    assert t.codes == [250, 334, 501, 250]
    assert b"501 5.7.0 Authentication cancelled" in t.output
    assert not t.of(proto.ProtocolViolation)


def test_auth_before_tls_is_538() -> None:
    t = run(EHLO + b"AUTH PLAIN " + PLAIN + b"\r\n")
    assert t.output.endswith(b"538 5.7.11 Encryption required for requested authentication mechanism\r\n")


def test_auth_without_tls_when_allowed() -> None:
    assert run(EHLO + b"AUTH PLAIN " + PLAIN + b"\r\n", auth_requires_tls=False).codes[-1] == 235


@pytest.mark.parametrize(
    "lines, code",
    [
        (b"AUTH PLAIN " + PLAIN + b"\r\n", 503),  # before EHLO
    ],
)
def test_auth_before_ehlo_is_503(lines: bytes, code: int) -> None:
    assert run(lines, tls_active=True).codes == [code]


def test_auth_not_offered_is_502() -> None:
    assert run(EHLO + b"AUTH PLAIN\r\n", tls_active=True, extensions=proto.Extensions(auth=())).codes[-1] == 502


def test_auth_unknown_mechanism_is_504() -> None:
    assert run(EHLO + b"AUTH CRAM-MD5\r\n", tls_active=True).output.endswith(b"504 5.5.4 Unrecognized authentication type\r\n")
    only_plain = proto.Extensions(auth=("PLAIN",))
    assert run(EHLO + b"AUTH LOGIN\r\n", tls_active=True, extensions=only_plain).codes[-1] == 504


def test_auth_twice_is_503() -> None:
    t = run(EHLO + b"AUTH PLAIN " + PLAIN + b"\r\nAUTH PLAIN " + PLAIN + b"\r\n", tls_active=True)
    assert t.codes == [250, 235, 503]


def test_auth_during_transaction_is_503() -> None:
    t = run(EHLO + b"MAIL FROM:<>\r\nAUTH PLAIN " + PLAIN + b"\r\n", tls_active=True)
    assert t.codes == [250, 250, 503]


def test_auth_syntax_is_501() -> None:
    assert run(EHLO + b"AUTH\r\nAUTH PLAIN a b\r\n", tls_active=True).codes == [250, 501, 501]


@pytest.mark.parametrize(
    "response",
    [
        b"AGFsaWNlAHMzY3JldA",  # missing padding
        b"AGFsaWNlAHMzY3JldA===",  # extra padding
        b"AGFsaWNlAHMzY3JldA==junk",  # trailing junk after padding
        b"AGFsaWNlAHMzY3JldA==AAAA",  # a second base64 run after padding
        b"AGFsaWNl AHMzY3JldA==",  # whitespace (also: an extra word)
        b"AGFsaWNlAHMzY3JldA=!",  # not in the alphabet
        b"AGFsaWNlAHMzY3JldB==",  # non-zero unused bits (non-canonical)
        b"*GFsaWNlAHMzY3JldA==",
    ],
)
def test_auth_strict_base64_in_initial_response(response: bytes) -> None:
    t = run(EHLO + b"AUTH PLAIN " + response + b"\r\n", tls_active=True)
    assert t.codes[-1] == 501 and not t.of(proto.AuthCredentials)


@pytest.mark.parametrize("response", [b"AGFsaWNlAHMzY3JldA", b"AGFsaWNlAHMzY3JldA==junk", b"\xff"])
def test_auth_strict_base64_in_challenge_response(response: bytes) -> None:
    t = run(EHLO + b"AUTH PLAIN\r\n" + response + b"\r\nNOOP\r\n", tls_active=True)
    assert t.codes == [250, 334, 501, 250]


def test_auth_equals_sign_is_empty_response() -> None:
    # PLAIN with an empty response is malformed (no NULs): 501, not silently accepted.
    t = run(EHLO + b"AUTH PLAIN =\r\n", tls_active=True)
    assert t.codes[-1] == 501 and b"PLAIN" in t.output
    # LOGIN password "" via "=" is a (wrong, but well-formed) password.
    t = run(EHLO + b"AUTH LOGIN YWxpY2U=\r\n=\r\n", tls_active=True)
    assert t.events[-1] == creds("LOGIN", password="")


@pytest.mark.parametrize(
    "message",
    [b"alice\0s3cret", b"\0\0s3cret", b"\0alice\0", b"a\0b\0c\0d", b"\0al\xffice\0pw", b"\0" + b"a" * 256 + b"\0pw"],
)
def test_auth_plain_malformed_message_is_501(message: bytes) -> None:
    t = run(EHLO + b"AUTH PLAIN " + base64.b64encode(message) + b"\r\n", tls_active=True)
    assert t.codes[-1] == 501


@pytest.mark.parametrize("total, ok", [(12_287, True), (12_288, True), (12_289, False)])
def test_auth_line_limit_12288(total: int, ok: bool) -> None:
    payload = base64.b64encode(b"\0alice\0" + b"p" * 9200)[: total - 2]
    line = payload + b"=" * (total - 2 - len(payload)) + b"\r\n"
    assert len(line) == total
    t = run(EHLO + b"AUTH PLAIN\r\n" + line + b"NOOP\r\n", tls_active=True)
    assert t.codes[-1] == 250  # in sync either way
    if not ok:
        assert b"500 5.5.6 Authentication exchange line is too long" in t.output


def test_auth_refused_at_challenge_by_policy() -> None:
    conn = greeted(tls_active=True)
    t = drive(conn, [EHLO + b"AUTH LOGIN\r\nNOOP\r\n"], respond=lambda e, c: (
        proto.Reply(454, "Temporary authentication failure", "4.7.0") if isinstance(e, proto.AuthRequest)
        else proto.Reply(250, "")))
    assert t.codes == [250, 454, 250]
    assert conn.state is proto.COMMAND


def test_auth_request_code_must_be_334_or_error() -> None:
    conn = greeted(tls_active=True)
    drive(conn, [EHLO + b"AUTH LOGIN\r\n"], respond=lambda e, c: proto.Reply(250, "") if isinstance(e, proto.Ehlo) else None)
    with pytest.raises(proto.LocalProtocolError):
        conn.send(proto.Reply(235, "ok"))
