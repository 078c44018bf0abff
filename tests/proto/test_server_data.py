"""DATA: dot-unstuffing, the end of data, the bare-line-ending policies, limits.

The SMTP smuggling tests (CVE-2023-51764, CVE-2023-51765, CVE-2023-51766 and kin) each
send a would-be end of data followed by a would-be second message; only the real
``<CRLF>.<CRLF>`` may end the message, and nothing after a fake one may become a
command.
"""

from __future__ import annotations

import pytest
from helpers import ENVELOPE, drive, greeted, message, run

import proto

SMUGGLED = b"MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nspoofed\r\n"


def test_simple_message() -> None:
    t = run(message(b"Subject: hi\r\n\r\nbody\r\n.\r\n"))
    assert t.body == b"Subject: hi\r\n\r\nbody\r\n"
    (end,) = t.of(proto.EndOfData)
    assert end == proto.EndOfData(size=len(t.body))


def test_empty_message_uses_data_lines_crlf() -> None:
    t = run(message(b".\r\n"))
    assert t.body == b"" and t.of(proto.EndOfData) == [proto.EndOfData(size=0)]


def test_dot_unstuffing() -> None:
    t = run(message(b"..leading\r\nmid.dle\r\n...\r\n..\r\n.\r\n"))
    assert t.body == b".leading\r\nmid.dle\r\n..\r\n.\r\n"


def test_dot_stuffed_first_line() -> None:
    assert run(message(b"..x\r\n.\r\n")).body == b".x\r\n"


def test_pipelined_command_after_end_of_data() -> None:
    t = run(message(b"hi\r\n.\r\nQUIT\r\n"))
    assert t.events[-1] == proto.Quit()
    assert t.codes[-2:] == [250, 221]


def test_terminator_split_across_reads_at_every_point() -> None:
    data = message(b"line one\r\n.\r\nNOOP\r\n")
    start = len(message(b""))
    for cut in range(start, len(data)):
        t = drive(greeted(), [data[:cut], data[cut:]])
        assert b"".join(e.data for e in t.events if isinstance(e, proto.Data)) == b"line one\r\n"
        assert t.events[-1] == proto.Noop(), cut


def test_data_buffer_stays_tiny() -> None:
    conn = greeted()
    drive(conn, [message(b"")])
    for piece in (b"x" * 100_000, b"\r\n.", b"\r"):
        conn.receive_data(piece)
        while (event := conn.next_event()) is not proto.NEED_DATA:
            assert isinstance(event, proto.Data)
        assert conn.buffered <= 5


def test_nul_and_8bit_bytes_pass_through() -> None:
    body = b"caf\xc3\xa9 \x00 \xff\xfe\r\n"
    assert run(message(body + b".\r\n")).body == body


def test_peer_close_mid_data_drops_message() -> None:
    conn = greeted()
    t = drive(conn, [message(b"half a message\r\n"), b""])
    assert not t.of(proto.EndOfData)
    assert t.events[-1] == proto.ConnectionClosed()


# ------------------------------------------------------------------ smuggling


def smuggle(fake_end: bytes, policy: str) -> proto.EndOfData:
    """Send a message with ``fake_end`` + a second envelope inside, then the real end."""
    t = run(
        message(b"first line" + fake_end + SMUGGLED + b".\r\nQUIT\r\n"),
        bare_line_ending_policy=policy,
    )
    assert len(t.of(proto.MailFrom)) == 1, "a smuggled MAIL FROM was parsed"
    assert len(t.of(proto.DataStart)) == 1
    ends = t.of(proto.EndOfData)
    assert len(ends) == 1 and isinstance(ends[0], proto.EndOfData)
    assert t.events[-1] == proto.Quit()
    for chunk in t.raw:
        if not isinstance(chunk, proto.Data):
            continue
        assert chunk.data.count(b"\n") == chunk.data.count(b"\r\n") == chunk.data.count(b"\r")
    if policy == "normalize":
        assert b"MAIL FROM:<evil@attacker.example>" in t.body  # it is data, not a command
    else:
        assert ends[0].refusal == proto.Reply(
            550, "Message refused: bare CR or LF in the body (RFC 5321 2.3.8)", "5.5.2")
        assert t.codes[-2:] == [550, 221]
    return ends[0]


POLICIES = ["reject", "normalize"]


@pytest.mark.parametrize("policy", POLICIES)
def test_smuggling_lf_dot_lf(policy: str) -> None:
    assert smuggle(b"\n.\n", policy).bare_line_endings_seen


@pytest.mark.parametrize("policy", POLICIES)
def test_smuggling_lf_dot_crlf(policy: str) -> None:
    assert smuggle(b"\n.\r\n", policy).bare_line_endings_seen


@pytest.mark.parametrize("policy", POLICIES)
def test_smuggling_crlf_dot_lf(policy: str) -> None:
    assert smuggle(b"\r\n.\n", policy).bare_line_endings_seen


@pytest.mark.parametrize("policy", POLICIES)
def test_smuggling_cr_dot_cr(policy: str) -> None:
    assert smuggle(b"\r.\r", policy).bare_line_endings_seen


@pytest.mark.parametrize("policy", POLICIES)
def test_smuggling_cr_dot_crlf(policy: str) -> None:
    assert smuggle(b"\r.\r\n", policy).bare_line_endings_seen


@pytest.mark.parametrize("policy", POLICIES)
def test_smuggling_crlf_dot_cr(policy: str) -> None:
    assert smuggle(b"\r\n.\r", policy).bare_line_endings_seen


@pytest.mark.parametrize("policy", POLICIES)
def test_smuggling_crlf_dot_cr_cr_lf(policy: str) -> None:
    assert smuggle(b"\r\n.\r\r\n", policy).bare_line_endings_seen


@pytest.mark.parametrize("policy", POLICIES)
def test_smuggling_cr_cr_lf_dot_cr_cr_lf(policy: str) -> None:
    assert smuggle(b"\r\r\n.\r\r\n", policy).bare_line_endings_seen


@pytest.mark.parametrize("policy", POLICIES)
def test_smuggling_lf_dot_cr(policy: str) -> None:
    assert smuggle(b"\n.\r", policy).bare_line_endings_seen


@pytest.mark.parametrize("policy", POLICIES)
def test_smuggling_crlf_dot_nul_crlf(policy: str) -> None:
    t = run(message(b"x\r\n.\x00\r\n" + SMUGGLED + b".\r\n"), bare_line_ending_policy=policy)
    assert len(t.of(proto.MailFrom)) == 1 and len(t.of(proto.EndOfData)) == 1
    assert b"x\r\n\x00\r\nMAIL FROM:<evil" in t.body  # a stuffed-looking dot line is data


@pytest.mark.parametrize("policy", POLICIES)
def test_smuggling_crlf_dot_space_crlf(policy: str) -> None:
    t = run(message(b"x\r\n. \r\n" + SMUGGLED + b".\r\n"), bare_line_ending_policy=policy)
    assert len(t.of(proto.MailFrom)) == 1 and len(t.of(proto.EndOfData)) == 1


def test_reject_policy_stops_handing_on_body_after_a_bare_lf() -> None:
    t = run(message(b"clean\r\nline\nmore\r\n.\r\n"))
    handed_on = b"".join(e.data for e in t.raw if isinstance(e, proto.Data))
    assert b"\n" not in handed_on.replace(b"\r\n", b"")
    assert t.of(proto.EndOfData)[0] == proto.EndOfData(
        size=len(b"clean\r\nline\nmore\r\n"), bare_line_endings_seen=True,
        refusal=proto.Reply(550, "Message refused: bare CR or LF in the body (RFC 5321 2.3.8)", "5.5.2"),
    )


def test_reject_policy_session_stays_in_sync() -> None:
    t = run(message(b"a\nb\r\n.\r\n") + b"MAIL FROM:<x@y.example>\r\n")
    assert t.codes[-2:] == [550, 250]


def test_normalize_policy_rewrites_bare_line_endings() -> None:
    t = run(message(b"a\nb\rc\r\r\nd\r\n.\r\n"), bare_line_ending_policy="normalize")
    assert t.body == b"a\r\nb\r\nc\r\n\r\nd\r\n"
    (end,) = t.of(proto.EndOfData)
    assert isinstance(end, proto.EndOfData)
    assert end.bare_line_endings_seen and end.refusal is None and end.size == len(t.body)


def test_normalize_policy_dot_after_bare_lf_is_data_not_unstuffed() -> None:
    t = run(message(b"a\n..b\r\n.\r\n"), bare_line_ending_policy="normalize")
    assert t.body == b"a\r\n..b\r\n"


def test_clean_message_not_flagged_under_either_policy() -> None:
    for policy in POLICIES:
        (end,) = run(message(b"a\r\nb\r\n.\r\n"), bare_line_ending_policy=policy).of(proto.EndOfData)
        assert end == proto.EndOfData(size=6)


# ------------------------------------------------------------------ limits


def test_size_limit_552_after_consuming_the_data() -> None:
    limits = proto.Limits(max_message_size=10)
    t = run(message(b"0123456789\r\n" * 50 + b".\r\nNOOP\r\n"), limits=limits)
    (end,) = t.of(proto.EndOfData)
    assert isinstance(end, proto.EndOfData) and end.oversize
    assert end.refusal == proto.Reply(552, "Message exceeds fixed maximum message size", "5.3.4")
    assert len(t.body) <= 10  # not stored
    assert t.codes[-2:] == [552, 250]  # the NOOP after the message is still a command


@pytest.mark.parametrize("size, oversize", [(9, False), (10, False), (11, True)])
def test_size_limit_at_edges(size: int, oversize: bool) -> None:
    body = b"x" * (size - 2) + b"\r\n"
    (end,) = run(message(body + b".\r\n"), limits=proto.Limits(max_message_size=10)).of(proto.EndOfData)
    assert isinstance(end, proto.EndOfData) and end.oversize is oversize


@pytest.mark.parametrize("total, too_long", [(999, False), (1000, False), (1001, True)])
def test_text_line_limit_1000(total: int, too_long: bool) -> None:
    line = b"y" * (total - 2) + b"\r\n"
    t = run(message(b"short\r\n" + line + b"short\r\n.\r\n"))
    (end,) = t.of(proto.EndOfData)
    assert isinstance(end, proto.EndOfData) and end.line_too_long is too_long
    if too_long:
        assert end.refusal == proto.Reply(500, "Line too long (RFC 5321 4.5.3.1.6)", "5.5.6")
        assert t.codes[-1] == 500


def test_text_line_limit_counts_after_unstuffing() -> None:
    line = b".." + b"y" * 997 + b"\r\n"  # 1001 on the wire, 1000 after unstuffing
    (end,) = run(message(line + b".\r\n")).of(proto.EndOfData)
    assert isinstance(end, proto.EndOfData) and not end.line_too_long


def test_long_line_without_any_crlf_is_detected_while_streaming() -> None:
    conn = greeted()
    drive(conn, [message(b"")])
    conn.receive_data(b"z" * 5000)
    assert conn.next_event() is proto.NEED_DATA  # nothing handed on: already refused
    conn.receive_data(b"\r\n.\r\n")
    end = conn.next_event()
    assert isinstance(end, proto.EndOfData) and end.line_too_long


def test_refused_354_keeps_transaction() -> None:
    conn = greeted()
    t = drive(conn, [ENVELOPE + b"DATA\r\n"], respond=lambda e, c: (
        proto.Reply(451, "try later", "4.3.0") if isinstance(e, proto.DataStart)
        else proto.Reply(250, "") if isinstance(e, proto.Ehlo) else proto.Reply(250, "OK")))
    assert t.codes == [250, 250, 250, 451]
    assert conn.state is proto.COMMAND and conn.transaction is not None
