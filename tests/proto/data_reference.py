"""The DATA reader as it was before the single-pass rewrite (commit a33a9f8), kept as a
test oracle: ``test_data_reader_equivalence.py`` checks that the current reader and
body filter produce exactly the same events, byte for byte and chunk for chunk.

Do not "fix" this file: it is the reference the rewrite promised to match.
"""

from __future__ import annotations

from proto._events import Data, EndOfData, Event, Reply
from proto._receivebuffer import ReceiveBuffer

_TERMINATOR = b"\r\n.\r\n"

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
        # One split serves both checks: after it, any CR or LF left is a bare one.
        lines = piece.split(b"\r\n")
        rest = b"".join(lines) if len(lines) > 1 else piece
        if b"\r" in rest or b"\n" in rest:
            self.bare = True
            if self._normalize:
                piece = piece.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
                lines = piece.split(b"\r\n")
        if len(lines) == 1:
            self._line += len(piece)
        else:
            if self._line + len(lines[0]) > self._max_content or max(map(len, lines)) > self._max_content:
                self.too_long = True
            self._line = len(lines[-1])
        if self._line > self._max_content:
            self.too_long = True
        self.size += len(piece)
        if self.size > self._max_size:
            self.oversize = True
        return b"" if self.refused else piece

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


def _unstuff(work: bytes) -> bytes:
    """Remove the leading dot of every line (RFC 5321 4.5.2) and the 2-octet context.

    A ``<CRLF>.`` can start in the context (index 0), so unstuff before slicing.
    """
    if b"\r\n." in work:
        work = work.replace(b"\r\n.", b"\r\n")
    return work[2:]


class DataReader:
    """Reads a DATA body from the buffer; see the module docstring."""

    def __init__(self, body: BodyFilter) -> None:
        self._body = body
        self._ctx = b"\r\n"  # the DATA command's CRLF is the first CRLF

    def read(self, buf: ReceiveBuffer) -> list[Event] | None:
        """Consume what can be consumed.

        Returns:
            ``[Data]``, ``[EndOfData]`` or ``[Data, EndOfData]``; ``None`` if more
            bytes are needed (then at most four octets stay buffered).
        """
        if not buf:
            return None
        work = self._ctx + buf.take_all()
        end = work.find(_TERMINATOR)
        if end != -1:
            buf.unread(work[end + 5 :])
            out = self._body.feed(_unstuff(work[: end + 2]))
            out += self._body.finish()
            eod = self._body.end_of_data()
            return [Data(out), eod] if out else [eod]
        cut = len(work) - 4
        if work[cut - 1 : cut] == b"\r":
            cut -= 1  # never split a CRLF between two reads
        if cut <= 2:
            buf.unread(work[2:])
            return None
        buf.unread(work[cut:])
        self._ctx = work[cut - 2 : cut]
        out = self._body.feed(_unstuff(work[:cut]))
        return [Data(out)] if out else None


