"""What the submission server changes in a message before queueing it (RFC 6409 §8).

Only the header block is examined (up to the first empty line); the body is never
parsed or copied more than once. We prepend a ``Received:`` trace header (RFC 5321
§4.4) — without a ``for`` clause, which would reveal Bcc recipients — add
``Date:`` and ``Message-ID:`` when the client left them out, and remove ``Bcc:``.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from email.parser import BytesHeaderParser
from email.policy import SMTP as SMTP_POLICY

import attrs

_HEADER_END = re.compile(rb"\r\n\r\n")


@attrs.frozen
class Prepared:
    raw: bytes
    message_id: str | None
    #: Domains of the addresses in ``From:`` (lower case), empty when there is none.
    from_domains: tuple[str, ...]


#: Octets of header block we parse (Postfix's header_size_limit): the header parser
#: is pure Python, so an unbounded block would let one message stall every session.
MAX_HEADER_BLOCK = 102_400


class HeaderTooLarge(ValueError):
    """The header block is longer than ``MAX_HEADER_BLOCK``; refuse the message."""


def _header_block(raw: bytes | bytearray) -> bytes:
    """The header fields (up to the empty line), each with its CRLF.

    Raises:
        HeaderTooLarge: no empty line within ``MAX_HEADER_BLOCK`` octets.
    """
    if raw.startswith(b"\r\n"):
        return b""
    # The block is the fields with their CRLFs, so its empty line (the CRLF after the
    # last field's) must end within MAX_HEADER_BLOCK + 2 octets.
    match = _HEADER_END.search(raw, 0, MAX_HEADER_BLOCK + 2)
    if match is not None:
        return bytes(raw[: match.start() + 2])
    if len(raw) > MAX_HEADER_BLOCK:
        raise HeaderTooLarge(f"the header block exceeds {MAX_HEADER_BLOCK} octets")
    return bytes(raw)


# A Bcc or Resent-Bcc field with its folded continuation lines (RFC 5322 §2.2.3).
_BCC_FIELD = re.compile(rb"(?im)^(?:resent-)?bcc[ \t]*:.*\r\n(?:[ \t].*\r\n)*")


def _has_header(block: bytes, name: bytes) -> bool:
    return re.search(rb"(?im)^" + re.escape(name) + rb"[ \t]*:", block) is not None


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

    Raises:
        HeaderTooLarge: the header block is too long to examine.
    """
    original = _header_block(raw)
    # RFC 5322 §3.6.3 / RFC 6409 §8: the Bcc recipients are in the envelope; the
    # field itself must not reach the other recipients, so it is removed here, once,
    # and every provider gets the same bytes.
    block = _BCC_FIELD.sub(b"", original)
    parsed = BytesHeaderParser(policy=SMTP_POLICY).parsebytes(block + b"\r\n")
    added = []
    message_id = parsed.get("Message-ID")
    if not _has_header(block, b"Message-ID"):
        message_id = f"<{queue_id}@{hostname}>"
        added.append(f"Message-ID: {message_id}\r\n".encode("ascii"))
    if not _has_header(block, b"Date"):
        added.append(f"Date: {email.utils.format_datetime(now)}\r\n".encode("ascii"))
    # RFC 3848: ESMTP, plus S with TLS, plus A when authenticated.
    protocol = "ESMTP" + ("S" if tls else "") + ("A" if authenticated else "")
    received = (
        f"Received: from {_safe(ehlo_name)} ([{_safe(client_ip)}])\r\n"
        f"\tby {_safe(hostname)} (relay) with {protocol} id {queue_id};\r\n"
        f"\t{email.utils.format_datetime(now)}\r\n"
    ).encode("ascii", "replace")
    from_domains = tuple(
        addr.rpartition("@")[2].lower()
        for _, addr in email.utils.getaddresses([str(v) for v in parsed.get_all("From", [])])
        if "@" in addr
    )
    # One copy of the body, whatever was changed: the message may be megabytes and
    # every copy counts against smtp.memory_budget. New fields go at the end of the
    # header block (after the existing fields).
    body = memoryview(raw)[len(original):]
    return Prepared(
        raw=b"".join((received, block, *added, body)),
        message_id=None if message_id is None else str(message_id).strip(),
        from_domains=from_domains,
    )


def _safe(text: str) -> str:
    """No CR, LF or non-ASCII in a trace field."""
    return re.sub(r"[^\x21-\x7e]", "?", text)[:255] or "unknown"


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
