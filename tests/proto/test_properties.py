"""Property tests: split invariance, dot-stuffing round trip, the fuzz invariant."""

from __future__ import annotations

from helpers import ENVELOPE, accept, drive, greeted, merge_data, message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import proto
from proto._writers import DotStuffer

# Inputs built from protocol-shaped fragments find far more states than raw bytes.
FRAGMENTS = [
    b"\r\n", b"\n", b"\r", b".", b"..", b"\r\n.\r\n", b"\n.\n", b"\x00", b"\xff", b" ",
    b"EHLO x\r\n", b"HELO x\r\n", b"MAIL FROM:<a@b.example>\r\n", b"MAIL FROM:<>\r\n",
    b"RCPT TO:<c@d.example>\r\n", b"DATA\r\n", b"BDAT 3\r\n", b"BDAT 2 LAST\r\n", b"RSET\r\n",
    b"NOOP\r\n", b"STARTTLS\r\n", b"AUTH PLAIN\r\n", b"AUTH LOGIN\r\n", b"AGFAYg==\r\n", b"*\r\n",
    b"QUIT\r\n", b"VRFY x\r\n", b"x" * 600, b"y" * 50,
]
protocolish = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=20)), max_size=40).map(b"".join)

KWARGS = st.fixed_dictionaries({
    "bare_line_ending_policy": st.sampled_from(["reject", "normalize"]),
    "tls_active": st.booleans(),
    "limits": st.builds(proto.Limits, max_message_size=st.integers(1, 200), max_errors=st.integers(1, 20),
                        max_recipients=st.integers(1, 3)),
})


def splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    return [p for p in pieces if p]  # b"" would mean EOF


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=protocolish, cuts=st.lists(st.integers(0, 10_000), max_size=15), kwargs=KWARGS)
def test_any_split_gives_the_same_events(data: bytes, cuts: list[int], kwargs: dict[str, object]) -> None:
    whole = drive(greeted(**kwargs), [data] if data else [])
    pieces = drive(greeted(**kwargs), splits(data, cuts))
    assert merge_data(pieces.events) == merge_data(whole.events)
    assert pieces.output == whole.output


@settings(max_examples=300)
@given(body=st.binary(max_size=300), cuts=st.lists(st.integers(0, 1000), max_size=8))
def test_dot_stuff_then_unstuff_round_trip(body: bytes, cuts: list[int]) -> None:
    """What the client writes, the server reads back; bare CR/LF come back as CRLF."""
    stuffer = DotStuffer()
    wire = b"".join(stuffer.feed(p) for p in splits(body, cuts)) + stuffer.finish()
    t = drive(greeted(), splits(message(wire), cuts))
    expected = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    if expected and not expected.endswith(b"\r\n"):
        expected += b"\r\n"
    (end,) = [e for e in t.events if isinstance(e, proto.EndOfData)]
    assert isinstance(end, proto.EndOfData)
    assert not end.bare_line_endings_seen and end.size == len(expected)
    assert b"".join(e.data for e in t.events if isinstance(e, proto.Data)) == expected


@settings(max_examples=300)
@given(body=st.binary(max_size=300).filter(lambda b: b"\r" not in b and b"\n" not in b))
def test_single_line_body_round_trip(body: bytes) -> None:
    stuffer = DotStuffer()
    wire = stuffer.feed(body + b"\r\n") + stuffer.finish()
    t = drive(greeted(), [message(wire)])
    assert b"".join(e.data for e in t.events if isinstance(e, proto.Data)) == body + b"\r\n"


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=st.lists(st.one_of(protocolish, st.binary(max_size=3000)), max_size=12), kwargs=KWARGS,
       prefix=st.sampled_from([b"", ENVELOPE, ENVELOPE + b"DATA\r\n", ENVELOPE + b"BDAT 100\r\n"]))
def test_random_bytes_only_raise_remote_protocol_error_and_stay_bounded(
    chunks: list[bytes], kwargs: dict[str, object], prefix: bytes
) -> None:
    conn = greeted(**kwargs)
    limits = conn.limits
    bound = max(limits.max_command_line, limits.max_auth_line)
    for chunk in [prefix, *chunks]:
        if not chunk:
            continue
        if conn.state not in (proto.COMMAND, proto.AUTH, proto.DATA, proto.BDAT):
            break
        conn.receive_data(chunk)
        while True:
            try:
                event = conn.next_event()
            except proto.RemoteProtocolError as exc:
                assert exc.reply_hint is not None and exc.reply_hint.code == 421
                conn.send(exc.reply_hint)
                return
            if event is proto.NEED_DATA:
                assert conn.buffered < bound
                if conn.state is proto.COMMAND:
                    assert conn.buffered < limits.max_command_line
                if conn.state is proto.DATA:
                    assert conn.buffered <= 5
                break
            if event is proto.PAUSED:
                if conn.state is proto.TLS_HANDOFF:
                    conn.tls_established()
                    continue
                return
            assert isinstance(event, proto.Event)
            if isinstance(event, proto.Data):
                assert event.data.count(b"\n") == event.data.count(b"\r\n") == event.data.count(b"\r")
            if conn.state is proto.REPLY:
                reply = accept(event, conn)
                assert reply is not None
                conn.send(reply)
