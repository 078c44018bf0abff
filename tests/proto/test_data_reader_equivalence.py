"""The single-pass DATA reader (unstuffing, terminator search, bare CR/LF and line
length checks) against the reader it replaced (``data_reference.py``): same events,
chunk for chunk, for bodies built from the fragments that matter — CRLF, bare CR and
LF, dots at line starts, terminators, lines around the length limit — fed in any
pieces, under both bare-line-ending and both long-line policies."""

from __future__ import annotations

import data_reference
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proto import _readers
from proto._readers import BodyFilter, DataReader, _has_bare_line_end
from proto._receivebuffer import ReceiveBuffer

FRAGMENTS = [
    b"\r\n", b"\r", b"\n", b".", b"..", b"\r\n.", b"\r\n.\r\n", b".\r\n", b"\r\r\n", b"\n\r",
    b"x", b"ab", b"\x00", b"y" * 7, b"z" * 8, b"w" * 9, b"\r\n..\r\n",
]
bodies = st.lists(st.sampled_from(FRAGMENTS), max_size=60).map(b"".join)
cut_points = st.lists(st.integers(0, 400), max_size=12)
filters = st.fixed_dictionaries({
    "normalize": st.booleans(),
    "reject_long_lines": st.booleans(),
    "max_size": st.integers(1, 300),
    "max_line": st.integers(2, 12),
})


def drive(reader_cls: type, filter_cls: type, pieces: list[bytes], kwargs: dict[str, object]) -> tuple[list, bytes]:
    buf = ReceiveBuffer()
    reader = reader_cls(filter_cls(**kwargs))
    events: list = []
    for piece in pieces:
        buf.append(piece)
        while True:
            got = reader.read(buf)
            if got is None:
                break
            events.extend(got)
            if events and type(events[-1]).__name__ == "EndOfData":
                return events, buf.take_all()
    return events, buf.take_all()


def pieces_of(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [p for p in (data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)) if p]


@pytest.mark.parametrize("bulk", [_readers._BULK_UNSTUFF, 1, 2], ids=["default", "bulk-after-1", "bulk-after-2"])
@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(body=bodies, cuts=cut_points, kwargs=filters, tail=st.sampled_from([b"", b".\r\n", b"\r\n.\r\nNOOP\r\n"]))
def test_same_events_as_the_reference_reader(bulk: int, body: bytes, cuts: list[int], kwargs: dict[str, object],
                                             tail: bytes) -> None:
    """``bulk``: the stuffed dots per read after which the reader switches to one
    ``replace`` for the rest of the read (lowered to reach that path with short bodies)."""
    pieces = pieces_of(body + tail, cuts)
    default, _readers._BULK_UNSTUFF = _readers._BULK_UNSTUFF, bulk
    try:
        new = drive(DataReader, BodyFilter, pieces, kwargs)
    finally:
        _readers._BULK_UNSTUFF = default
    old = drive(data_reference.DataReader, data_reference.BodyFilter, pieces, kwargs)
    assert new == old


def test_a_body_of_dot_lines() -> None:
    """100,000 stuffed dot lines, read almost entirely by the bulk path (``replace``):
    the same events as the reference."""
    body = b"..\r\n" * 100_000 + b"x\r\n"
    kwargs = {"normalize": False, "max_size": 10**7, "max_line": 1000}
    pieces = pieces_of(body + b".\r\n", list(range(65_536, len(body), 65_536)))
    new = drive(DataReader, BodyFilter, pieces, kwargs)
    assert new == drive(data_reference.DataReader, data_reference.BodyFilter, pieces, kwargs)
    assert b"".join(e.data for e in new[0] if type(e).__name__ == "Data") == b".\r\n" * 100_000 + b"x\r\n"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(body=bodies, cuts=cut_points, kwargs=filters)
def test_body_filter_alone_matches_the_reference(body: bytes, cuts: list[int], kwargs: dict[str, object]) -> None:
    """As BDAT uses it: pieces straight into the filter, then ``finish``."""
    results = []
    for cls in (BodyFilter, data_reference.BodyFilter):
        f = cls(**kwargs)
        out = [f.feed(p) for p in pieces_of(body, cuts)] + [f.finish()]
        results.append((out, f.end_of_data()))
    assert results[0] == results[1]


@settings(max_examples=1000)
@given(piece=st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"x", b"\n\r", b""]), max_size=12).map(b"".join))
def test_bare_line_end_check_is_the_definition(piece: bytes) -> None:
    """A CR or LF outside a CRLF: the CR, LF and CRLF counts differ."""
    expected = not (piece.count(b"\r") == piece.count(b"\n") == piece.count(b"\r\n"))
    assert _has_bare_line_end(piece) is expected
