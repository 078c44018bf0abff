"""Text lines over RFC 5321 4.5.3.1.6's 1000 octets: refused or accepted by the server
(``long_line_policy``), split by the client (``long_line_policy="split"``).

Limits are tested at limit-1, limit and limit+1: 999, 1000 and 1001 octets with the
CRLF on the server; 997, 998 and 999 octets of content on the client.
"""

from __future__ import annotations

import pytest
from helpers import ENVELOPE, ConnectionPair, message, run

import proto
from proto._writers import DotStuffer, LineSplitter

LIMIT = 998  # octets of content: 1000 with the CRLF


def line(total: int, fill: bytes = b"y") -> bytes:
    """A text line of ``total`` octets, CRLF included."""
    return fill * (total - 2) + b"\r\n"


# ------------------------------------------------------------------ server


@pytest.mark.parametrize("total, too_long", [(999, False), (1000, False), (1001, True)])
def test_accept_policy_hands_long_lines_on_and_reports_them(total: int, too_long: bool) -> None:
    body = b"short\r\n" + line(total) + b"short\r\n"
    t = run(message(body + b".\r\nNOOP\r\n"), long_line_policy="accept")
    assert t.body == body
    (end,) = t.of(proto.EndOfData)
    assert end == proto.EndOfData(size=len(body), line_too_long=too_long)
    assert t.codes[-2:] == [250, 250]


@pytest.mark.parametrize("total, too_long", [(999, False), (1000, False), (1001, True)])
def test_reject_policy_is_still_the_default(total: int, too_long: bool) -> None:
    t = run(message(line(total) + b".\r\n"))
    (end,) = t.of(proto.EndOfData)
    assert isinstance(end, proto.EndOfData) and end.line_too_long is too_long
    assert (end.refusal is not None) is too_long


def test_accept_policy_streams_a_line_without_any_crlf() -> None:
    body = b"z" * 50_000 + b"\r\n"
    t = run(message(body + b".\r\n"), long_line_policy="accept")
    assert t.body == body
    (end,) = t.of(proto.EndOfData)
    assert isinstance(end, proto.EndOfData) and end.line_too_long and end.refusal is None


def test_accept_policy_still_refuses_for_other_reasons() -> None:
    t = run(message(line(1001) + b"bare\nlf\r\n.\r\n"), long_line_policy="accept")
    (end,) = t.of(proto.EndOfData)
    assert isinstance(end, proto.EndOfData) and end.line_too_long and end.bare_line_endings_seen
    assert end.refusal is not None and end.refusal.code == 550


@pytest.mark.parametrize("total, too_long", [(999, False), (1000, False), (1001, True)])
def test_accept_policy_with_bdat(total: int, too_long: bool) -> None:
    body = line(total)
    t = run(ENVELOPE + b"BDAT %d\r\n" % len(body) + body + b"BDAT 0 LAST\r\n", long_line_policy="accept")
    (chunk,) = t.of(proto.BdatChunk)
    assert chunk == proto.BdatChunk(len(body))
    assert t.of(proto.EndOfData) == [proto.EndOfData(size=len(body), line_too_long=too_long)]
    assert t.body == body


def test_long_line_policy_name_is_checked() -> None:
    with pytest.raises(ValueError, match="long_line_policy"):
        proto.ServerConnection("mx.example", long_line_policy="split")  # type: ignore[arg-type]


# ------------------------------------------------------------------ client: the writers


def stuff(pieces: list[bytes], max_line: int | None = LIMIT) -> bytes:
    stuffer = DotStuffer(max_line)
    return b"".join(stuffer.feed(p) for p in pieces) + stuffer.finish()


def whole_and_bytewise(body: bytes, max_line: int | None = LIMIT) -> bytes:
    """The wire bytes for ``body``; fed whole and one octet at a time they must agree."""
    whole = stuff([body], max_line)
    assert stuff([body[i : i + 1] for i in range(len(body))], max_line) == whole
    return whole


def unstuffed_lines(wire: bytes) -> list[bytes]:
    assert wire.endswith(b"\r\n.\r\n") or wire == b".\r\n"
    body = (b"\r\n" + wire[: -len(b".\r\n")]).replace(b"\r\n.", b"\r\n")[2:]
    assert body.count(b"\r") == body.count(b"\n") == body.count(b"\r\n")  # no bare CR or LF
    return body.split(b"\r\n")[:-1]


@pytest.mark.parametrize("content, pieces", [(997, [997]), (998, [998]), (999, [998, 1]), (2000, [998, 998, 4])])
def test_split_at_limit(content: int, pieces: list[int]) -> None:
    wire = whole_and_bytewise(b"x" * content + b"\r\nnext\r\n")
    assert [len(p) for p in unstuffed_lines(wire)] == [*pieces, 4]
    assert wire.replace(b"\r\n", b"") == b"x" * content + b"next."


@pytest.mark.parametrize("content", [997, 998, 999])
def test_keep_policy_never_splits(content: int) -> None:
    wire = whole_and_bytewise(b"x" * content + b"\r\n", max_line=None)
    assert wire == b"x" * content + b"\r\n.\r\n"


def test_a_piece_that_starts_with_a_dot_is_stuffed() -> None:
    wire = whole_and_bytewise(b"a" * LIMIT + b".b\r\n")
    assert wire == b"a" * LIMIT + b"\r\n..b\r\n.\r\n"
    assert unstuffed_lines(wire) == [b"a" * LIMIT, b".b"]


def test_a_lone_dot_after_the_split_does_not_end_the_message() -> None:
    wire = whole_and_bytewise(b"a" * LIMIT + b".\r\nrest\r\n")
    assert wire == b"a" * LIMIT + b"\r\n..\r\nrest\r\n.\r\n"
    assert wire.find(b"\r\n.\r\n") == len(wire) - 5


def test_the_split_never_separates_cr_from_lf() -> None:
    # 998 octets then the CRLF in the next piece, the CR and LF in pieces of their own.
    assert stuff([b"a" * LIMIT, b"\r", b"\n", b"b"]) == b"a" * LIMIT + b"\r\nb\r\n.\r\n"
    assert stuff([b"a" * LIMIT + b"\r", b"\nb"]) == b"a" * LIMIT + b"\r\nb\r\n.\r\n"


@pytest.mark.parametrize("ending", [b"\r", b"\n"])
def test_bare_line_endings_at_the_limit_become_one_crlf(ending: bytes) -> None:
    wire = whole_and_bytewise(b"a" * LIMIT + ending + b"b")
    assert wire == b"a" * LIMIT + b"\r\nb\r\n.\r\n"


def test_the_cut_is_at_the_limit_whatever_the_octets() -> None:
    """Like Postfix: a UTF-8 sequence across the limit is cut in two; where the input
    was cut into pieces does not matter."""
    e_acute = "\u00e9".encode()
    wire = whole_and_bytewise(b"c" * (LIMIT - 1) + e_acute + b"d\r\n")
    assert unstuffed_lines(wire) == [b"c" * (LIMIT - 1) + e_acute[:1], e_acute[1:] + b"d"]
    wire = whole_and_bytewise(b"\x80" * 1500 + b"\r\n")
    assert [len(p) for p in unstuffed_lines(wire)] == [LIMIT, 502]


def test_tiny_limits_still_progress() -> None:
    wire = whole_and_bytewise(b".\xc3\xa9.\xc3\xa9", max_line=1)
    assert unstuffed_lines(wire) == [b".", b"\xc3", b"\xa9", b".", b"\xc3", b"\xa9"]


def test_splitter_limit_is_checked() -> None:
    with pytest.raises(ValueError):
        LineSplitter(0)


# ------------------------------------------------------------------ client: the connection


@pytest.mark.parametrize("content", [997, 998, 999, 5000])
@pytest.mark.parametrize("method", ["DATA", "BDAT"])
def test_client_split_reaches_a_rejecting_server_within_the_limit(content: int, method: str) -> None:
    client = proto.ClientConnection(long_line_policy="split")
    pair = ConnectionPair(client=client)  # the server keeps long_line_policy="reject"
    pair.replies()
    pair.exchange(proto.Ehlo("relay.example"))
    body = b"Subject: long\r\n\r\n" + b"." + b"q" * (content - 1) + b"\r\n"
    alice, bob = proto.Address("alice", "example.org"), proto.Address("bob", "example.net")
    if method == "DATA":
        pair.exchange(proto.MailFrom(alice), proto.RcptTo(bob), proto.DataStart())
        pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
        (end,) = pair.exchange(*(proto.Data(p) for p in pieces), proto.EndOfData())
    else:
        pair.exchange(proto.MailFrom(alice), proto.RcptTo(bob))
        (*_, end) = pair.exchange(proto.Bdat(body[:500]), proto.Bdat(body[500:], last=True))
    assert end.reply.code == 250
    (eod,) = [e for e in pair.server_events if isinstance(e, proto.EndOfData)]
    assert isinstance(eod, proto.EndOfData) and not eod.line_too_long and eod.refusal is None
    received = b"".join(e.data for e in pair.server_events if isinstance(e, proto.Data))
    assert max(map(len, received.split(b"\r\n"))) <= LIMIT
    assert received.replace(b"\r\n", b"") == body.replace(b"\r\n", b"")


def test_client_keep_policy_sends_long_lines_as_they_are() -> None:
    server = proto.ServerConnection("mx.example", auth_requires_tls=False, long_line_policy="accept")
    pair = ConnectionPair(server=server)
    pair.replies()
    pair.exchange(proto.Ehlo("relay.example"))
    pair.exchange(proto.MailFrom(None), proto.RcptTo(proto.Address("bob", "example.net")), proto.DataStart())
    pair.exchange(proto.Data(b"w" * 1500 + b"\r\n"), proto.EndOfData())
    (eod,) = [e for e in pair.server_events if isinstance(e, proto.EndOfData)]
    assert isinstance(eod, proto.EndOfData) and eod.line_too_long and eod.refusal is None


def test_client_split_policy_follows_max_text_line() -> None:
    client = proto.ClientConnection(long_line_policy="split", limits=proto.Limits(max_text_line=12))
    pair = ConnectionPair(client=client)
    pair.replies()
    pair.exchange(proto.Ehlo("relay.example"))
    pair.exchange(proto.MailFrom(None), proto.RcptTo(proto.Address("bob", "example.net")), proto.DataStart())
    pair.exchange(proto.Data(b"0123456789abcdef\r\n"), proto.EndOfData())
    received = b"".join(e.data for e in pair.server_events if isinstance(e, proto.Data))
    assert received == b"0123456789\r\nabcdef\r\n"


def test_client_policy_is_checked() -> None:
    with pytest.raises(ValueError, match="long_line_policy"):
        proto.ClientConnection(long_line_policy="reject")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_text_line"):
        proto.ClientConnection(long_line_policy="split", limits=proto.Limits(max_text_line=2))
