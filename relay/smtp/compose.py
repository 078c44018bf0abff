"""What the submission server changes in a message before queueing it (RFC 6409 §8).

Only the header block is examined (up to the first empty line); the body is never
parsed or copied more than once. We prepend a ``Received:`` trace header (RFC 5321
§4.4) — without a ``for`` clause, which would reveal Bcc recipients — add
``Date:`` and ``Message-ID:`` when the client left them out, and remove ``Bcc:``.

Strategy: this runs for every message, so it works on the header block as bytes and
never hands the message to the ``email`` package (whose header parsing was about a
fifth of ``relay smtp``'s CPU under load). The block is split into lines once and the
lines grouped into fields (a line starting with SP or HT continues the field before
it, RFC 5322 §2.2.3); field names are compared case-insensitively. Only the ``From:``
values are tokenized (``_from_domains``): a small RFC 5322 §3.4 address-list scanner
that skips comments, keeps quoted strings and domain literals whole, and understands
angle addresses, groups and obsolete routes. It does not decode encoded words
(RFC 2047): they can only stand in a display name, and the domain we want is in the
addr-spec. The stored message is one ``b"".join`` of the new trace field, the header
fields kept, the added fields and a view of the body.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import functools
import re
from collections.abc import Iterator

import attrs


@attrs.frozen
class Prepared:
    raw: bytes
    message_id: str | None
    #: Domains of the addresses in ``From:`` (lower case), empty when there is none.
    from_domains: tuple[str, ...]


#: Octets of header block we examine (Postfix's header_size_limit): the scanner is
#: pure Python, so an unbounded block would let one message stall every session.
MAX_HEADER_BLOCK = 102_400


class HeaderTooLarge(ValueError):
    """The header block is longer than ``MAX_HEADER_BLOCK``; refuse the message."""


def _header_end(raw: bytes | bytearray) -> int:
    """The length of the header block: the fields, each with its CRLF, without the
    empty line that ends the block (the whole message when it has no empty line).

    Raises:
        HeaderTooLarge: no empty line within ``MAX_HEADER_BLOCK`` octets.
    """
    if raw.startswith(b"\r\n"):
        return 0
    # The block is the fields with their CRLFs, so its empty line (the CRLF after the
    # last field's) must end within MAX_HEADER_BLOCK + 2 octets.
    end = raw.find(b"\r\n\r\n", 0, MAX_HEADER_BLOCK + 2)
    if end != -1:
        return end + 2
    if len(raw) > MAX_HEADER_BLOCK:
        raise HeaderTooLarge(f"the header block exceeds {MAX_HEADER_BLOCK} octets")
    return len(raw)


@attrs.frozen
class _Field:
    #: The field name, lower case, without the white space before the colon (RFC
    #: 5322 §3.6.8 has none, obsolete syntax §4.5 allows it); ``b""`` for a line
    #: without a colon or a continuation line before the first field.
    name: bytes
    #: The whole field as received, continuation lines and final CRLF included.
    source: bytes


def _fields(block: bytes) -> Iterator[_Field]:
    """The header fields of ``block``, in order, each with its continuation lines."""
    lines = block.split(b"\r\n")
    if lines[-1] == b"":
        lines.pop()
    start = 0
    count = len(lines)
    while start < count:
        stop = start + 1
        while stop < count and lines[stop][:1] in (b" ", b"\t"):
            stop += 1
        first = lines[start]
        colon = first.find(b":")
        name = b"" if colon == -1 or first[:1] in (b" ", b"\t") else first[:colon].rstrip(b" \t").lower()
        # (A message of header fields without a final CRLF gets one: the fields
        # added after it must start on a line of their own.)
        yield _Field(name, b"\r\n".join(lines[start:stop]) + b"\r\n")
        start = stop


def _unfolded_value(field: _Field) -> bytes:
    """The field body after the colon with the folding CRLFs removed (RFC 5322 §2.2.3)."""
    return field.source.partition(b":")[2].replace(b"\r\n", b"")


#: Names of the fields removed (RFC 5322 §3.6.3, §3.6.6).
_BCC_NAMES = frozenset((b"bcc", b"resent-bcc"))


@functools.lru_cache(maxsize=8)
def _date_text(second: dt.datetime) -> str:
    """RFC 5322 date-time of a whole second: the same text for every message of that
    second, formatted once (``email.utils.format_datetime`` was ~2 % of the SMTP
    service's CPU under load)."""
    return email.utils.format_datetime(second)


def prepare(
    raw: bytes | bytearray,
    *,
    ehlo_name: str,
    client_ip: str,
    hostname: str,
    queue_id: str,
    tls: bool,
    authenticated: bool,
    now: dt.datetime,
) -> Prepared:
    """The message as it will be queued.

    ``raw`` is not modified; the body is copied once, into the result.

    Raises:
        HeaderTooLarge: the header block is too long to examine.
    """
    # Over 40 lines only by its eight arguments and docstring: the body is one pass over the header.
    end = _header_end(raw)
    view = memoryview(raw)
    block = bytes(view[:end])
    fields = list(_fields(block)) if block else []
    names = {f.name for f in fields}
    # RFC 5322 §3.6.3 / RFC 6409 §8: the Bcc recipients are in the envelope; the
    # field itself must not reach the other recipients, so it is removed here, once,
    # and every provider gets the same bytes.
    if names & _BCC_NAMES:
        fields = [f for f in fields if f.name not in _BCC_NAMES]
        kept: list[bytes | memoryview] = [f.source for f in fields]
    else:
        kept = [view[:end]]
        if block and not block.endswith(b"\r\n"):
            kept.append(b"\r\n")  # header fields without a final CRLF: end the last one
    added = []
    message_id = _existing_message_id(fields)
    if message_id is None:
        message_id = f"<{queue_id}@{hostname}>"
        added.append(f"Message-ID: {message_id}\r\n".encode("ascii", "replace"))
    date = _date_text(now.replace(microsecond=0))
    if b"date" not in names:
        added.append(f"Date: {date}\r\n".encode("ascii"))
    received = _received(ehlo_name, client_ip, hostname, queue_id, tls, authenticated, date)
    from_domains = tuple(
        domain for f in fields if f.name == b"from" for domain in _from_domains(_unfolded_value(f))
    )
    # One copy of the body, whatever was changed: the message may be megabytes and
    # every copy counts against smtp.memory_budget. New fields go at the end of the
    # header block (after the existing fields).
    return Prepared(
        raw=b"".join((received, *kept, *added, view[end:])),
        message_id=message_id,
        from_domains=from_domains,
    )


def _existing_message_id(fields: list[_Field]) -> str | None:
    """The first ``Message-ID:`` field's value, unfolded; ``None`` if there is none."""
    for f in fields:
        if f.name == b"message-id":
            return _unfolded_value(f).decode("utf-8", "replace").strip()
    return None


def _received(
    ehlo_name: str, client_ip: str, hostname: str, queue_id: str, tls: bool, authenticated: bool, date: str
) -> bytes:
    """Our trace field (RFC 5321 4.4), the client's words made safe to write."""
    # RFC 3848: ESMTP, plus S with TLS, plus A when authenticated.
    protocol = "ESMTP" + ("S" if tls else "") + ("A" if authenticated else "")
    return (
        f"Received: from {_safe(ehlo_name)} ([{_safe(client_ip)}])\r\n"
        f"\tby {_safe(hostname)} (relay) with {protocol} id {queue_id};\r\n"
        f"\t{date}\r\n"
    ).encode("ascii", "replace")


# One token of an address list (RFC 5322 §3.2–3.4): white space, a quoted string or
# a domain literal (each running to the end if unterminated), the start of a comment,
# a special, or a run of anything else (atoms, dots, encoded words, stray octets).
# Every octet is matched by some alternative, so the scanner cannot get stuck.
_TOKEN = re.compile(
    rb"""
      (?P<ws>[ \t\r\n]+)
    | (?P<quoted>"(?:[^"\\]|\\[\s\S])*(?:"|\\?\Z))
    | (?P<literal>\[(?:[^\]\\]|\\[\s\S])*(?:\]|\\?\Z))
    | (?P<comment>\()
    | (?P<special>[<>,:;@])
    | (?P<atom>(?:[^ \t\r\n"\[(<>,:;@\\]|\\[\s\S]?)+)
    """,
    re.VERBOSE,
)
_COMMENT_STOP = re.compile(rb"[()\\]")


def _skip_comment(value: bytes, pos: int) -> int:
    """The index after the comment opened at ``pos - 1`` (nested, with quoted pairs;
    an unterminated comment runs to the end)."""
    depth = 1
    while depth:
        m = _COMMENT_STOP.search(value, pos)
        if m is None:
            return len(value)
        c = m.group()
        if c == b"\\":
            pos = m.end() + 1
            continue
        depth += 1 if c == b"(" else -1
        pos = m.end()
    return pos


def _from_domains(value: bytes) -> Iterator[str]:
    """The domains of the addresses in one unfolded ``From:`` value, lower case.

    Handles angle addresses (the domain is taken from inside ``<…>``, whatever the
    display name holds), groups (``name: a@x, b@y;``), comments anywhere, quoted
    local parts holding ``@`` or ``,``, obsolete routes (``<@r1,@r2:a@x>``) and white
    space or comments around the dots of an obsolete domain. Addresses without ``@``
    yield nothing (as before). On malformed input it stays conservative: the domain is
    everything after the *first* ``@`` of an addr-spec, so ``a@good@evil`` yields
    ``good@evil``, which no allowed domain matches; two angle addresses in one
    mailbox both count. Never raises; undecodable octets become U+FFFD.
    """
    # Kept whole: one scanner loop whose three pieces of state every token may change.
    tokens: list[bytes] = []  # the current mailbox outside angle brackets
    angle: list[bytes] | None = None  # inside <…>: the addr-spec so far
    had_angle = False  # the current mailbox had an angle address
    pos, n = 0, len(value)
    while pos < n:
        m = _TOKEN.match(value, pos)
        assert m is not None  # every octet starts some token
        pos = m.end()
        kind, text = m.lastgroup, m.group()
        if kind == "ws":
            continue
        if kind == "comment":
            pos = _skip_comment(value, pos)
            continue
        if angle is not None:
            if text == b">":
                yield from _domain(angle)
                angle, had_angle = None, True
            elif text in (b":", b"<"):
                angle = []  # an obsolete route ends at ":"; "<<" restarts
            elif text != b",":  # "," only separates obsolete route entries here
                angle.append(text)
            continue
        if text == b"<":
            angle = []
        elif text in (b",", b";"):
            if not had_angle:
                yield from _domain(tokens)
            tokens, had_angle = [], False
        elif text == b":":
            tokens, had_angle = [], False  # what came before is a group's display name
        else:
            tokens.append(text)
    if angle is not None:
        yield from _domain(angle)  # unterminated angle address
    elif not had_angle:
        yield from _domain(tokens)


def _domain(addr_spec: list[bytes]) -> Iterator[str]:
    """The domain of an addr-spec given as tokens (nothing if it has no ``@``)."""
    try:
        at = addr_spec.index(b"@")
    except ValueError:
        return
    yield b"".join(addr_spec[at + 1 :]).decode("utf-8", "replace").lower()


_UNSAFE = re.compile(r"[^\x21-\x7e]")


def _safe(text: str) -> str:
    """No CR, LF or non-ASCII in a trace field."""
    return _UNSAFE.sub("?", text)[:255] or "unknown"


def domain_allowed(domain: str, allowed: tuple[str, ...]) -> bool:
    """``example.com`` allows exactly that domain; ``*.example.com`` allows it and
    every subdomain. Comparison is case-insensitive."""
    domain = domain.lower().rstrip(".")
    for entry in allowed:
        entry = entry.lower().rstrip(".")
        if entry.startswith("*."):
            base = entry[2:]
            if domain == base or domain.endswith("." + base):
                return True
        elif domain == entry:
            return True
    return False
