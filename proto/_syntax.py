"""RFC 5321 / 6531 / 4954 / 4616 grammar: paths, ESMTP parameters, strict base64.

Strategy: every parser takes ``str`` that was already decoded strictly from UTF-8 (the
command reader refuses invalid UTF-8 before anything here runs) and raises
``ValueError`` with a message fit for a reply. Non-ASCII is accepted only where RFC 6531
allows it and only when the caller says SMTPUTF8 is in force. Regular expressions are
built once at import time and are immutable. The peer's text appears in a message
only through ``echo()`` (printable ASCII, bounded), since messages become reply text.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re

import attrs

from ._text import echo

__all__ = [
    "MAX_DOMAIN",
    "MAX_LOCAL_PART",
    "MAX_PATH",
    "Address",
    "decode_base64",
    "decode_sasl_plain",
    "encode_base64",
    "parse_mailbox",
    "parse_params",
    "parse_path",
    "split_path_argument",
]

#: RFC 5321 4.5.3.1.1: the maximum total length of a user name or other local-part.
MAX_LOCAL_PART = 64
#: RFC 5321 4.5.3.1.2: the maximum total length of a domain name or number.
MAX_DOMAIN = 255
#: RFC 5321 4.5.3.1.3: the maximum total length of a reverse-path or forward-path,
#: including the angle brackets.
MAX_PATH = 256
#: RFC 1035 2.3.4: a label is at most 63 octets.
_MAX_LABEL = 63

# RFC 6531/6532 allow UTF-8 beyond ASCII; not the C1 controls (U+0080..U+009F, which
# hold NEL) nor LINE and PARAGRAPH SEPARATOR (U+2028, U+2029): RFC 5198 2 bars the
# first and discourages the others, and much software treats all three as line breaks.
_NONASCII = "\u00a0-\u2027\u202a-\U0010ffff"
_ATEXT = "-A-Za-z0-9!#$%&'*+/=?^_`{|}~"
_QTEXT = r"\x20\x21\x23-\x5b\x5d-\x7e"  # escapes for the regex: \x5d is "]"


def _local_part_re(utf8: bool) -> re.Pattern[str]:
    extra = _NONASCII if utf8 else ""
    atom = f"[{_ATEXT}{extra}]+"
    quoted = f'"(?:[{_QTEXT}{extra}]|\\\\[\\x20-\\x7e])*"'
    return re.compile(f"(?:{atom}(?:\\.{atom})*|{quoted})")


def _label_re(utf8: bool) -> re.Pattern[str]:
    extra = _NONASCII if utf8 else ""
    return re.compile(f"[A-Za-z0-9{extra}](?:[A-Za-z0-9{extra}-]*[A-Za-z0-9{extra}])?")


_LOCAL = {False: _local_part_re(False), True: _local_part_re(True)}
_LABEL = {False: _label_re(False), True: _label_re(True)}
_GENERAL_LITERAL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?:[\x21-\x5a\x5e-\x7e]+")
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_VALUE = {False: re.compile(r"[\x21-\x3c\x3e-\x7e]+"), True: re.compile(f"[\\x21-\\x3c\\x3e-\\x7e{_NONASCII}]+")}
# A path runs to the first ">" that is not inside a quoted local part.
_PATH_PREFIX = re.compile(r'<(?:[^">\\]|"(?:[^"\\]|\\.)*")*>')
_BASE64 = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


@attrs.frozen
class Address:
    """A mailbox from a path (RFC 5321 4.1.2), as the peer wrote it.

    Attributes:
        local_part: The local part exactly as written; a quoted local part keeps its
            quotes, because removing them changes the address when it is sent on.
        domain: The domain or address literal (``[192.0.2.1]``) as written; ``""`` for
            the special ``<postmaster>`` recipient.
        raw: The path as received, brackets and any source route included; for logs.
            Not part of equality: ``<@a:u@b>`` and ``<u@b>`` are the same mailbox.
    """

    local_part: str
    domain: str
    raw: str = attrs.field(eq=False, default="")

    @property
    def is_ascii(self) -> bool:
        """True unless the address needs SMTPUTF8 (RFC 6531) to be sent on."""
        return (self.local_part + self.domain).isascii()

    def __str__(self) -> str:
        return f"{self.local_part}@{self.domain}" if self.domain else self.local_part


def _check_domain(domain: str, utf8: bool) -> None:
    if len(domain.encode()) > MAX_DOMAIN:
        raise ValueError(f"domain longer than {MAX_DOMAIN} octets (RFC 5321 4.5.3.1.2)")
    if domain.startswith("["):
        if not domain.endswith("]"):
            raise ValueError("unterminated address literal")
        _check_address_literal(domain[1:-1])
        return
    labels = domain.split(".")
    for label in labels:
        if not _LABEL[utf8].fullmatch(label) or len(label.encode()) > _MAX_LABEL:
            if not utf8 and not label.isascii():
                raise ValueError("non-ASCII domain needs SMTPUTF8 (RFC 6531)")
            raise ValueError(f"invalid domain {echo(domain)}")


def _check_address_literal(literal: str) -> None:
    try:
        if literal[:5].upper() == "IPV6:":
            ipaddress.IPv6Address(literal[5:])
        elif literal[:1].isdigit():
            if not re.fullmatch(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}", literal):
                raise ValueError
            ipaddress.IPv4Address(literal)
        elif not _GENERAL_LITERAL.fullmatch(literal):
            raise ValueError
    except ValueError:
        raise ValueError(f"invalid address literal [{echo(literal)}]") from None


def parse_mailbox(text: str, *, smtputf8: bool = False, raw: str | None = None) -> Address:
    """Parse ``Local-part "@" ( Domain / address-literal )`` (RFC 5321 4.1.2).

    Args:
        text: The mailbox without angle brackets, e.g. ``user@example.org``.
        smtputf8: Accept non-ASCII local parts and U-label domains (RFC 6531 3.3).
        raw: What to record as ``Address.raw``; defaults to ``text``.

    Raises:
        ValueError: ``text`` is not a mailbox; the message says why, fit for reply text.
    """
    at = text.rfind("@")
    if at <= 0:
        raise ValueError(f"{echo(text)} is not a mailbox (local-part@domain)")
    local, domain = text[:at], text[at + 1 :]
    if not _LOCAL[smtputf8].fullmatch(local):
        if not smtputf8 and not local.isascii():
            raise ValueError("non-ASCII local part needs SMTPUTF8 (RFC 6531)")
        raise ValueError(f"invalid local part {echo(local)}")
    if len(local.encode()) > MAX_LOCAL_PART:
        raise ValueError(f"local part longer than {MAX_LOCAL_PART} octets (RFC 5321 4.5.3.1.1)")
    _check_domain(domain, smtputf8)
    return Address(local, domain, text if raw is None else raw)


def parse_path(
    text: str,
    *,
    smtputf8: bool = False,
    allow_null: bool = False,
    allow_postmaster: bool = False,
) -> Address | None:
    """Parse a reverse-path or forward-path with its angle brackets (RFC 5321 4.1.2).

    A source route (``<@a,@b:user@c>``) is accepted and ignored, as RFC 5321 4.1.2
    requires.

    Args:
        text: The path, e.g. ``<user@example.org>``.
        smtputf8: Accept internationalized addresses (RFC 6531).
        allow_null: Accept ``<>`` (a reverse-path) and return ``None`` for it.
        allow_postmaster: Accept ``<postmaster>`` without a domain (a forward-path,
            RFC 5321 4.5.1); it parses to ``Address("postmaster", "")``.

    Raises:
        ValueError: Not a path, or longer than 256 octets (RFC 5321 4.5.3.1.3).
    """
    if len(text.encode()) > MAX_PATH:
        raise ValueError(f"path longer than {MAX_PATH} octets (RFC 5321 4.5.3.1.3)")
    if len(text) < 2 or text[0] != "<" or text[-1] != ">":
        raise ValueError("a path must be enclosed in <>")
    inner = text[1:-1]
    if inner == "":
        if allow_null:
            return None
        raise ValueError("the null path <> is not allowed here")
    if allow_postmaster and inner.lower() == "postmaster":
        return Address(inner, "", text)
    if inner.startswith("@"):
        route, colon, inner = inner.partition(":")
        if not colon:
            raise ValueError("source route without ':'")
        for hop in route.split(","):
            if not hop.startswith("@"):
                raise ValueError(f"invalid source route {echo(route)}")
            _check_domain(hop[1:], smtputf8)
    return parse_mailbox(inner, smtputf8=smtputf8, raw=text)


def split_path_argument(arg: str) -> tuple[str, list[str]]:
    """Split ``<path> [SP params]`` after ``FROM:``/``TO:`` (RFC 5321 4.1.1.2).

    Returns:
        The path text with its brackets and the list of raw parameter words.

    Raises:
        ValueError: No bracketed path, or junk right after it.
    """
    arg = arg.lstrip(" ")  # "MAIL FROM: <a@b>" is common; RFC 5321 3.3 has no space.
    match = _PATH_PREFIX.match(arg)
    if match is None:
        raise ValueError("expected a path in <>")
    rest = arg[match.end() :]
    if rest and rest[0] != " ":
        raise ValueError("junk after the path")
    return match.group(), rest.split()


def parse_params(words: list[str], *, smtputf8: bool = False) -> dict[str, str | None]:
    """Parse ``esmtp-keyword ["=" esmtp-value]`` words (RFC 5321 4.1.2).

    Keywords are upper-cased; a keyword without ``=`` maps to ``None``.

    Raises:
        ValueError: A malformed or repeated parameter.
    """
    params: dict[str, str | None] = {}
    for word in words:
        keyword, eq, value = word.partition("=")
        if not _KEYWORD.fullmatch(keyword):
            raise ValueError(f"invalid parameter {echo(word)}")
        if eq and not _VALUE[smtputf8].fullmatch(value):
            raise ValueError(f"invalid value in parameter {echo(word)}")
        key = keyword.upper()
        if key in params:
            raise ValueError(f"parameter {echo(key)} given twice")
        params[key] = value if eq else None
    return params


def decode_base64(data: bytes | str) -> bytes:
    """Decode base64 strictly, as RFC 4954 4 requires of AUTH responses.

    ``=`` alone is the empty response (RFC 4954 4). Anything but canonical base64 —
    whitespace, missing or extra padding, junk after the padding, non-zero unused
    bits — raises instead of being silently dropped.

    Raises:
        ValueError: Not canonical base64.
    """
    raw = data.encode("ascii", "replace") if isinstance(data, str) else bytes(data)
    if raw == b"=":
        return b""
    if not _BASE64.fullmatch(raw):
        raise ValueError("invalid base64")
    try:
        decoded = binascii.a2b_base64(raw, strict_mode=True)
    except binascii.Error:
        raise ValueError("invalid base64") from None
    if base64.b64encode(decoded) != raw:
        raise ValueError("non-canonical base64")
    return decoded


def encode_base64(data: bytes) -> str:
    """Encode for an AUTH line; the empty string becomes ``=`` (RFC 4954 4)."""
    return base64.b64encode(data).decode("ascii") if data else "="


def decode_sasl_plain(message: bytes) -> tuple[str, str, str]:
    """Split a SASL PLAIN message ``[authzid] NUL authcid NUL passwd`` (RFC 4616 2).

    Returns:
        ``(authzid, authcid, password)``; ``authzid`` may be empty.

    Raises:
        ValueError: Wrong number of fields, an empty identity or password, a field over
            255 octets, or invalid UTF-8.
    """
    parts = message.split(b"\0")
    if len(parts) != 3:
        raise ValueError("PLAIN response must be authzid NUL authcid NUL password")
    if not parts[1] or not parts[2]:
        raise ValueError("PLAIN response has an empty user name or password")
    if any(len(part) > 255 for part in parts):
        raise ValueError("PLAIN field longer than 255 octets (RFC 4616 2)")
    try:
        authzid, authcid, password = (part.decode("utf-8") for part in parts)
    except UnicodeDecodeError:
        raise ValueError("PLAIN response is not UTF-8") from None
    return authzid, authcid, password
