"""Reply serialization and the client's body writer."""

from __future__ import annotations

import pytest

import proto
from proto._writers import DotStuffer, normalize_line_endings, write_reply


def test_single_and_multi_line_replies() -> None:
    assert write_reply(proto.Reply(250, "OK"), enhanced=False) == b"250 OK\r\n"
    assert write_reply(proto.Reply(250, ["a", "b", "c"], "2.0.0"), enhanced=True) == (
        b"250-2.0.0 a\r\n250-2.0.0 b\r\n250 2.0.0 c\r\n"
    )
    assert write_reply(proto.Reply(334, ""), enhanced=True) == b"334 \r\n"
    assert write_reply(proto.Reply(250, "", "2.0.0"), enhanced=True) == b"250 2.0.0\r\n"


@pytest.mark.parametrize("text", ["a\r\nb", "a\nb", "a\rb", "nul\0", "tab\there"])
def test_reply_text_cannot_hold_line_breaks_or_controls(text: str) -> None:
    with pytest.raises(ValueError):
        proto.Reply(250, text)


@pytest.mark.parametrize("code", [199, 600, 0])
def test_reply_code_range(code: int) -> None:
    with pytest.raises(ValueError):
        proto.Reply(code, "x")


@pytest.mark.parametrize("code, enhanced", [(250, "5.0.0"), (550, "5.0"), (550, "5.1000.0"), (450, "x")])
def test_enhanced_code_must_match(code: int, enhanced: str) -> None:
    with pytest.raises(ValueError):
        proto.Reply(code, "x", enhanced)


def test_reply_line_over_512_is_local_error() -> None:
    write_reply(proto.Reply(250, "x" * 506), enhanced=False)  # 512 with code and CRLF
    with pytest.raises(proto.LocalProtocolError, match="512"):
        write_reply(proto.Reply(250, "x" * 507), enhanced=False)


def test_normalize_line_endings() -> None:
    assert normalize_line_endings(b"a\nb\rc\r\nd\r\r\n") == b"a\r\nb\r\nc\r\nd\r\n\r\n"


@pytest.mark.parametrize(
    "pieces, wire",
    [
        ([b""], b".\r\n"),
        ([b"a\r\n"], b"a\r\n.\r\n"),
        ([b"a"], b"a\r\n.\r\n"),
        ([b".a\r\n.\r\n"], b"..a\r\n..\r\n.\r\n"),
        ([b"a\r", b"\n.b"], b"a\r\n..b\r\n.\r\n"),
        ([b"a\r\n", b".", b"b"], b"a\r\n..b\r\n.\r\n"),
        ([b"x\n.\n"], b"x\r\n..\r\n.\r\n"),  # bare LF normalized, then stuffed
        ([b"x\r"], b"x\r\n.\r\n"),
    ],
)
def test_dot_stuffer(pieces: list[bytes], wire: bytes) -> None:
    stuffer = DotStuffer()
    assert b"".join(stuffer.feed(p) for p in pieces) + stuffer.finish() == wire
