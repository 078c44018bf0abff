"""Readers: command lines, DATA bodies, BDAT chunks (one per server state).

Strategy for DATA: only ``<CRLF>.<CRLF>`` ends a message (RFC 5321 4.1.1.4), where the
DATA command's own CRLF counts as the first CRLF. This is the hot path for large
messages, so everything is done with bytes-level ``find``/``rfind``/``replace`` over
whole buffers, never a Python loop per byte or per line, and with as few passes as
possible: one ``find`` loop over the ``<CRLF>.`` positions both finds the terminator
and dot-unstuffs, and the pieces between stuffed dots are joined once. The reader
carries the last two octets already handed on as context, so that a terminator or a
``<CRLF>.`` split across reads is seen, and holds back at most four octets (a
possible start of the terminator). Line structure is CRLF only: a dot after a bare
CR or LF is plain data, which is what makes the SMTP smuggling sequences
(CVE-2023-51764 and kin) inert here. ``BodyFilter`` then sees the unstuffed body: it
detects (and under ``normalize`` rewrites) bare line endings with two ``memchr``-driven
``replace`` calls and a compare (``_has_bare_line_end``), measures lines by hopping
from CRLF to CRLF about once per ``max_text_line`` octets, tracks the size, and stops
handing bytes on once the message is known to be refused.
``tests/proto/data_reference.py`` keeps the previous (split/replace based) reader as
an oracle that ``test_data_reader_equivalence.py`` compares against.
"""

from __future__ import annotations

from ._events import BdatChunk, Data, EndOfData, Event, ProtocolViolation, Reply
from ._receivebuffer import ReceiveBuffer

__all__ = ["BdatReader", "BodyFilter", "DataReader", "LineError", "decode_command_line"]

_TERMINATOR = b"\r\n.\r\n"

#: Stuffed dots removed one ``find`` at a time in one read before the rest of the read
#: is done with a terminator search and a ``replace`` (bounded work per octet even for
#: a body of nothing but dot lines).
_BULK_UNSTUFF = 32


class LineError(ValueError):
    """A command line that must not reach the caller as text."""


def decode_command_line(line: bytes) -> str:
    """Check one framed line (LF included) and decode it.

    Raises:
        LineError: A bare LF or CR, a NUL, or invalid UTF-8 (RFC 5321 2.3.8, 4.1.1).
    """
    if not line.endswith(b"\r\n"):
        raise LineError("bare LF in command line; lines end with CRLF")
    body = line[:-2]
    if b"\r" in body:
        raise LineError("bare CR in command line")
    if b"\0" in body:
        raise LineError("NUL in command line")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise LineError("command line is not valid UTF-8") from None


def _has_bare_line_end(piece: bytes) -> bool:
    """Whether ``piece`` holds a CR or LF that is not part of a CRLF.

    Deleting every CR and then writing every LF as CRLF gives ``piece`` back exactly
    when each CR is followed by an LF and each LF preceded by a CR. Both ``replace``
    calls are ``memchr`` loops and the comparison a ``memcmp``: cheaper than splitting
    into lines or counting CRLFs, far cheaper than a regular expression.
    """
    return piece.replace(b"\r", b"").replace(b"\n", b"\r\n") != piece


class BodyFilter:
    """The checks every message body goes through, for DATA and BDAT alike.

    Args:
        normalize: ``True`` for the ``normalize`` policy (bare CR/LF become CRLF),
            ``False`` for ``reject`` (the message is refused with 550 5.5.2).
        reject_long_lines: ``True`` for the ``reject`` long-line policy (a line over
            ``max_line`` gets the message refused with 500 5.5.6), ``False`` for
            ``accept`` (such lines are handed on; ``too_long`` still records them).
        max_size: ``Limits.max_message_size``.
        max_line: ``Limits.max_text_line`` (CRLF included).
    """

    def __init__(self, *, normalize: bool, max_size: int, max_line: int, reject_long_lines: bool = True) -> None:
        self._normalize = normalize
        self._reject_long_lines = reject_long_lines
        self._max_size = max_size
        self._max_content = max_line - 2
        self._line = 0  # length of the unfinished last line
        self._cr = False  # a CR ended the previous piece; its LF may come next
        self.size = 0
        self.bare = False
        self.oversize = False
        self.too_long = False

    @property
    def refused(self) -> bool:
        """Whether the message is already known to be refused."""
        return (
            self.oversize
            or (self.too_long and self._reject_long_lines)
            or (self.bare and not self._normalize)
        )

    def feed(self, piece: bytes) -> bytes:
        """Check ``piece`` and return the bytes to hand on (``b""`` once refused).

        Once the message is known to be refused only its size is tracked.
        """
        if self._cr:
            piece = b"\r" + piece
            self._cr = False
        if piece.endswith(b"\r"):
            piece = piece[:-1]
            self._cr = True
        if self.refused:
            self.size += len(piece)
            return b""
        if _has_bare_line_end(piece):
            self.bare = True
            if self._normalize:
                piece = piece.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
        self._measure_lines(piece)
        self.size += len(piece)
        if self.size > self._max_size:
            self.oversize = True
        return b"" if self.refused else piece

    def _measure_lines(self, piece: bytes) -> None:
        """Set ``too_long`` if a line (CRLF-delimited, carried over from earlier pieces)
        has more than ``max_line - 2`` octets, and remember the unfinished last line.

        Instead of splitting into lines, hop from line start to line start: the last
        CRLF within ``max_content + 2`` octets of a line's start starts the next line to
        examine, and if there is none the line is too long. About one ``rfind`` per
        kilobyte, each scanning back over one line.
        """
        limit = self._max_content
        n = len(piece)
        start = -self._line  # where the unfinished line began, in piece coordinates
        if not self.too_long and n - start > limit:
            rfind = piece.rfind
            crlf = rfind(b"\r\n", 0, start + limit + 2)
            while True:
                if crlf == -1:
                    self.too_long = True
                    break
                start = crlf + 2
                if n - start <= limit:
                    break
                crlf = rfind(b"\r\n", start, start + limit + 2)
        last = piece.rfind(b"\r\n")
        self._line = self._line + n if last == -1 else n - last - 2

    def finish(self) -> bytes:
        """End of the body: flush a held-back CR (a bare one) and return what remains."""
        if not self._cr:
            return b""
        self._cr = False
        if self.refused:
            self.size += 1
            return b""
        self.bare = True
        if not self._normalize:
            return b""
        self.size += 2
        if self.size > self._max_size:
            self.oversize = True
        return b"" if self.refused else b"\r\n"

    def refusal(self) -> Reply | None:
        """The reply the message has earned, most important reason first."""
        if self.oversize:
            return Reply(552, "Message exceeds fixed maximum message size", "5.3.4")
        if self.bare and not self._normalize:
            return Reply(550, "Message refused: bare CR or LF in the body (RFC 5321 2.3.8)", "5.5.2")
        if self.too_long and self._reject_long_lines:
            return Reply(500, "Line too long (RFC 5321 4.5.3.1.6)", "5.5.6")
        return None

    def end_of_data(self) -> EndOfData:
        """The ``EndOfData`` event for this body."""
        return EndOfData(
            size=self.size,
            bare_line_endings_seen=self.bare,
            oversize=self.oversize,
            line_too_long=self.too_long,
            refusal=self.refusal(),
        )


class DataReader:
    """Reads a DATA body from the buffer; see the module docstring."""

    def __init__(self, body: BodyFilter) -> None:
        self._body = body
        self._ctx = b"\r\n"  # the last two octets handed on; the DATA command's CRLF first

    def read(self, buf: ReceiveBuffer) -> list[Event] | None:
        """Consume what can be consumed.

        One ``find`` loop over the ``<CRLF>.`` positions (a dot at a line start) does
        both jobs: a dot followed by CRLF ends the message, any other such dot is
        removed (RFC 5321 4.5.2). The pieces between removed dots are joined once.

        Returns:
            ``[Data]``, ``[EndOfData]`` or ``[Data, EndOfData]``; ``None`` if more
            bytes are needed (then at most four octets stay buffered).
        """
        if not buf:
            return None
        data = buf.take_all()
        # Hand on all but the last four octets (a possible start of the terminator),
        # and never split a CRLF between two reads; unless the terminator comes first.
        cut = len(data) - 4
        if cut > 0 and data[cut - 1] == 13:  # CR
            cut -= 1
        kept, end = self._unstuff(data, cut)
        if end != -1:
            return self._end_message(buf, data, kept, end)
        return self._hand_on(buf, data, kept, cut)

    def _unstuff(self, data: bytes, cut: int) -> tuple[list[bytes | memoryview], int]:
        """Find the terminator and the stuffing dots before it (or before ``cut``).

        Returns:
            The pieces of the content up to the terminator (or ``cut``) with the
            stuffing dots removed, empty when no dot was removed; and the index of
            the terminator's dot, or -1.
        """
        n = len(data)
        kept: list[bytes | memoryview] = []
        view = memoryview(data)
        pos = 0  # start of what is not yet in ``kept``
        end = -1  # the terminator's dot, once found
        removed = 0
        dot = self._first_dot(data)
        while dot != -1 and dot < n:
            if data[dot + 1 : dot + 3] == b"\r\n":  # <CRLF>.<CRLF>: the end
                end = dot
                break
            if dot >= cut:
                break  # held back: looked at again with the next read
            if removed == _BULK_UNSTUFF:
                # Many stuffed dots (an odd or hostile body): finish this read with
                # one terminator search and one replace rather than a Python step per
                # line. Here dot >= 2 and data[dot - 2 : dot] is CRLF.
                term = data.find(_TERMINATOR, dot - 2)
                stop = cut if term == -1 else term + 2
                kept.append(view[pos : dot - 2])
                kept.append(data[dot - 2 : stop].replace(b"\r\n.", b"\r\n"))
                pos = stop
                if term != -1:
                    end = stop
                break
            kept.append(view[pos:dot])
            pos = dot + 1
            removed += 1
            dot = data.find(b"\r\n.", dot + 1)
            if dot != -1:
                dot += 2
        if kept:
            kept.append(view[pos : end if end != -1 else cut])
        return kept, end

    def _end_message(self, buf: ReceiveBuffer, data: bytes, kept: list[bytes | memoryview], end: int) -> list[Event]:
        """The terminator is at ``end``: the last content, the end of data, and what
        follows the terminator back to the buffer (a pipelined command)."""
        buf.unread(data[end + 3 :])
        out = self._body.feed(b"".join(kept) if kept else data[:end])
        out += self._body.finish()
        eod = self._body.end_of_data()
        return [Data(out), eod] if out else [eod]

    def _hand_on(self, buf: ReceiveBuffer, data: bytes, kept: list[bytes | memoryview], cut: int) -> list[Event] | None:
        """No terminator yet: hand on the content before ``cut``, keep the rest buffered."""
        if cut <= 0:
            buf.unread(data)
            return None
        buf.unread(data[cut:])
        self._ctx = (self._ctx + data[:cut])[-2:] if cut < 2 else data[cut - 2 : cut]
        out = self._body.feed(b"".join(kept) if kept else data[:cut])
        return [Data(out)] if out else None

    def _first_dot(self, data: bytes) -> int:
        """The index of the first dot that starts a line, counting the context, or -1."""
        seam = self._ctx + data[:2]
        if seam.startswith(b"\r\n."):
            return 0
        if seam[1:4] == b"\r\n.":
            return 1
        dot = data.find(b"\r\n.")
        return dot if dot == -1 else dot + 2


class BdatReader:
    """Reads the ``size`` octets of one BDAT chunk (RFC 3030 2).

    Args:
        size: The chunk size from the BDAT command.
        last: The command had LAST.
        body: The transaction's body filter, or ``None`` to discard the chunk.
        fault: The reply owed after a discarded chunk (RFC 3030 2: the octets are
            read even when the command is refused, to stay in sync).
    """

    def __init__(self, size: int, last: bool, body: BodyFilter | None, fault: Reply | None) -> None:
        self.size = size
        self._remaining = size
        self._last = last
        self._body = body
        self._fault = fault

    def read(self, buf: ReceiveBuffer) -> list[Event] | None:
        """Consume chunk octets; return the events, or ``None`` if more are needed."""
        events: list[Event] = []
        if self._remaining and buf:
            piece = buf.take(self._remaining)
            self._remaining -= len(piece)
            if self._body is not None:
                out = self._body.feed(piece)
                if out:
                    events.append(Data(out))
        if self._remaining:
            return events or None
        if self._body is None:
            assert self._fault is not None
            events.append(ProtocolViolation(self._fault, "BDAT refused"))
        elif self._last:
            out = self._body.finish()
            if out:
                events.append(Data(out))
            events.append(self._body.end_of_data())
        else:
            events.append(BdatChunk(self.size, self._body.refusal()))
        return events
