"""Serializers: replies for the server side, commands and body bytes for the client.

Strategy: the writers never trust their input to be wire-safe. Reply text was checked
for line breaks when the ``Reply`` was built; lengths are checked here against RFC 5321
4.5.3.1.5. The body writer normalizes every bare CR or LF to CRLF before dot-stuffing,
so nothing proto sends can end a message early at a receiver that accepts bare line
endings (SMTP smuggling, CVE-2023-51764 and kin). Lines too long for RFC 5321 4.5.3.1.6
can be broken by ``LineSplitter``, which runs after normalization and before stuffing:
it sees only CRLF pairs, so it can never split one, and a piece that starts with a dot
is stuffed like any other line.
"""

from __future__ import annotations

from ._errors import LocalProtocolError
from ._events import Reply

__all__ = [
    "MAX_REPLY_LINE",
    "DotStuffer",
    "LineEndingNormalizer",
    "LineSplitter",
    "normalize_line_endings",
    "write_command",
    "write_reply",
]

#: RFC 5321 4.5.3.1.5: the maximum total length of a reply line including the reply
#: code and the CRLF.
MAX_REPLY_LINE = 512


def write_reply(reply: Reply, *, enhanced: bool) -> bytes:
    """Serialize ``reply`` as RFC 5321 4.2.1 lines (``250-...`` then ``250 ...``).

    Args:
        reply: The reply.
        enhanced: Prefix each line with ``reply.enhanced`` (RFC 2034 3), if it has one.

    Raises:
        LocalProtocolError: A line would exceed 512 octets.
    """
    prefix = f"{reply.enhanced} " if enhanced and reply.enhanced else ""
    last = len(reply.text) - 1
    out = []
    for i, line in enumerate(reply.text):
        text = f"{prefix}{line}" if line else prefix.rstrip(" ")
        wire = f"{reply.code}{' ' if i == last else '-'}{text}\r\n".encode()
        if len(wire) > MAX_REPLY_LINE:
            raise LocalProtocolError(
                f"reply line of {len(wire)} octets exceeds {MAX_REPLY_LINE} (RFC 5321 4.5.3.1.5)"
            )
        out.append(wire)
    return b"".join(out)


def write_command(line: str, *, max_length: int) -> bytes:
    """Serialize one command line, CRLF added.

    Raises:
        LocalProtocolError: The line holds a CR, LF or NUL, or is longer than
            ``max_length`` octets with its CRLF (RFC 5321 4.5.3.1.4).
    """
    if "\r" in line or "\n" in line or "\0" in line:
        raise LocalProtocolError(f"command {line!r} holds a line break or NUL")
    wire = line.encode() + b"\r\n"
    if len(wire) > max_length:
        raise LocalProtocolError(f"command line of {len(wire)} octets exceeds {max_length}")
    return wire


def normalize_line_endings(data: bytes) -> bytes:
    """Turn every bare CR and bare LF into CRLF; CRLF stays as it is."""
    crlf = data.count(b"\r\n")
    if data.count(b"\n") == crlf and data.count(b"\r") == crlf:
        return data
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


class LineEndingNormalizer:
    """Streaming ``normalize_line_endings``: a CR at the end of a chunk waits for the
    next chunk, because it may be the first half of a CRLF."""

    def __init__(self) -> None:
        self._cr = False

    def feed(self, data: bytes) -> bytes:
        """Return the normalized bytes that are final so far."""
        if self._cr:
            data = b"\r" + data
            self._cr = False
        if data.endswith(b"\r"):
            data = data[:-1]
            self._cr = True
        return normalize_line_endings(data)

    def finish(self) -> bytes:
        """Flush a held-back CR (it was bare, so it becomes CRLF)."""
        held, self._cr = self._cr, False
        return b"\r\n" if held else b""


class LineSplitter:
    """Break lines longer than ``max_line`` octets (CRLF not counted) by inserting a
    CRLF, as Postfix's smtp client does for lines over ``smtp_line_length_limit``.

    The input must be normalized (every CR and LF in a CRLF pair, a trailing CR held
    back: ``LineEndingNormalizer``'s output), so the split never lands inside a CRLF
    and never makes a bare CR or LF. It cuts at exactly ``max_line`` octets, whatever
    the octets are (a UTF-8 sequence may be cut in two, as Postfix does), so where the
    input is cut into pieces does not change the output.

    Args:
        max_line: The most octets of content per line, at least 1 (RFC 5321 4.5.3.1.6:
            998, i.e. 1000 with the CRLF).

    Raises:
        ValueError: ``max_line`` is under 1.
    """

    def __init__(self, max_line: int) -> None:
        if max_line < 1:
            raise ValueError(f"max_line must be at least 1, not {max_line}")
        self._max = max_line
        self._col = 0  # octets in the unfinished last line

    def feed(self, data: bytes) -> bytes:
        """Return ``data`` (normalized) with a CRLF inserted wherever a line is too long."""
        limit = self._max
        lines = data.split(b"\r\n")
        if len(lines) == 1:
            if self._col + len(data) <= limit:
                self._col += len(data)
                return data
        elif self._col + len(lines[0]) <= limit and max(map(len, lines)) <= limit:
            self._col = len(lines[-1])
            return data
        out: list[bytes] = []
        col = self._col
        for i, line in enumerate(lines):
            if i:
                out.append(b"\r\n")
                col = 0
            while col + len(line) > limit:
                cut = limit - col
                out += (line[:cut], b"\r\n")
                line = line[cut:]
                col = 0
            out.append(line)
            col += len(line)
        self._col = col
        return b"".join(out)


class DotStuffer:
    """Body writer for DATA (RFC 5321 4.5.2): normalize line ends, double a leading
    dot on every line, and end with ``.<CRLF>`` after a CRLF.

    Args:
        max_line: If set, break lines longer than this many octets (CRLF not counted)
            with ``LineSplitter`` before stuffing; ``None`` sends lines as they are.
    """

    def __init__(self, max_line: int | None = None) -> None:
        self._normalizer = LineEndingNormalizer()
        self._splitter = LineSplitter(max_line) if max_line is not None else None
        self._line_start = True  # the DATA command's CRLF starts the first line

    def _stuff(self, data: bytes) -> bytes:
        if not data:
            return data
        if self._line_start and data[:1] == b".":
            data = b"." + data
        self._line_start = data.endswith(b"\r\n")
        return data.replace(b"\r\n.", b"\r\n..")

    def feed(self, data: bytes) -> bytes:
        """Return the wire bytes for ``data``, a piece of the message."""
        data = self._normalizer.feed(data)
        if self._splitter is not None:
            data = self._splitter.feed(data)
        return self._stuff(data)

    def finish(self) -> bytes:
        """Return the wire bytes that end the message, ``.<CRLF>`` included."""
        tail = self._normalizer.finish()
        if self._splitter is not None:
            tail = self._splitter.feed(tail)
        tail = self._stuff(tail)
        return tail + (b".\r\n" if self._line_start else b"\r\n.\r\n")
