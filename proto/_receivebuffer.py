"""The receive buffer: bytes in, lines or octet runs out, never more than a bound kept.

Strategy: a ``bytearray`` with a remembered search offset (as in h11) so that a line
fed one byte at a time is scanned once. Lines are framed on LF and checked for the CR
afterwards: a bare LF ends a (bad) line instead of gluing two commands together, and
a line that outgrows its limit is discarded up to its LF while the peer is still
sending it, so the buffer never holds more than the limit.
"""

from __future__ import annotations

__all__ = ["OVERLONG", "ReceiveBuffer"]


class _Overlong:
    """Marker returned by ``extract_line`` for a line that exceeded its limit."""

    def __repr__(self) -> str:
        return "OVERLONG"


OVERLONG = _Overlong()


class ReceiveBuffer:
    """Bytes received and not yet consumed."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._search_from = 0
        self._discarding = False
        #: Octets thrown away by ``discard_all`` (STARTTLS) over the buffer's life.
        self.discarded = 0

    def __len__(self) -> int:
        return len(self._data)

    def __bool__(self) -> bool:
        return bool(self._data)

    def append(self, data: bytes | bytearray) -> None:
        """Add received bytes at the end."""
        self._data += data

    def unread(self, data: bytes) -> None:
        """Put ``data`` back in front (what a body reader did not consume)."""
        if data:
            self._data[:0] = data
            self._search_from = 0

    def take(self, n: int) -> bytes:
        """Remove and return up to ``n`` octets from the front."""
        out = bytes(self._data[:n])
        del self._data[:n]
        self._search_from = 0
        return out

    def take_all(self) -> bytes:
        """Remove and return everything."""
        out = bytes(self._data)
        self._data.clear()
        self._search_from = 0
        return out

    def discard_all(self) -> int:
        """Drop everything buffered (STARTTLS, RFC 3207 5) and return how much."""
        n = len(self._data)
        self._data.clear()
        self._search_from = 0
        self._discarding = False
        self.discarded += n
        return n

    def extract_line(self, max_length: int) -> bytes | _Overlong | None:
        """Remove and return one line up to and including its LF.

        Args:
            max_length: The most octets a line may have, line end included.

        Returns:
            The line (its CR, if any, still there for the caller to check);
            ``OVERLONG`` once a line longer than ``max_length`` has been consumed to
            its LF; ``None`` when no complete line is buffered. After ``None`` at most
            ``max_length - 1`` octets are buffered.
        """
        if self._discarding:
            lf = self._data.find(b"\n")
            if lf == -1:
                self._data.clear()
                return None
            del self._data[: lf + 1]
            self._discarding = False
            self._search_from = 0
            return OVERLONG
        lf = self._data.find(b"\n", self._search_from)
        if lf == -1:
            if len(self._data) >= max_length:
                self._data.clear()
                self._search_from = 0
                self._discarding = True
                return self.extract_line(max_length)
            self._search_from = len(self._data)
            return None
        self._search_from = 0
        if lf + 1 > max_length:
            del self._data[: lf + 1]
            return OVERLONG
        line = bytes(self._data[: lf + 1])
        del self._data[: lf + 1]
        return line
