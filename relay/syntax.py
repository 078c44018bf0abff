"""Domain names and email addresses as relay's settings accept them, on proto's grammar.

Strategy: the RFC 5321 grammar lives once, in ``proto`` (``parse_mailbox``); this
module narrows it to what an operator should type into a setting: ASCII host names
with at least one dot (internationalized names in their xn-- form), at most 253
characters, no address literals, and dot-atom local parts (no quoted strings).
Used by the API's validators and by the provider configs the worker reads too, which
is why it is not inside ``relay.api``.
"""

from __future__ import annotations

import proto

__all__ = ["MAX_DOMAIN", "MAX_EMAIL", "MAX_LOCAL_PART", "check_domain", "check_email", "is_host_name"]

#: RFC 1035 2.3.4 / RFC 5321 4.5.3.1.2: a host name, without the trailing dot's root.
MAX_DOMAIN = 253
#: RFC 5321 4.5.3.1.1: local part 64 octets; a whole address fits a 256-octet path.
MAX_LOCAL_PART = 64
MAX_EMAIL = 254


def is_host_name(text: str, *, max_length: int = MAX_DOMAIN) -> bool:
    """Whether ``text`` is ASCII letter-digit-hyphen labels (RFC 5321 4.1.2 ``Domain``),
    a single label too; never an address literal."""
    if not text or not text.isascii() or len(text) > max_length or text.startswith("["):
        return False
    try:
        proto.parse_mailbox(f"postmaster@{text}")
    except ValueError:
        return False
    return True


def check_domain(text: str) -> str | None:
    """The lower-cased domain, or ``None`` when it is not an ASCII host name with a dot."""
    return text.lower() if "." in text and is_host_name(text) else None


def check_email(text: str) -> bool:
    """Whether ``text`` is ``local@domain`` with a dot-atom local part and a host name."""
    local, at, domain = text.rpartition("@")
    if not at or len(text) > MAX_EMAIL or not 0 < len(local) <= MAX_LOCAL_PART or '"' in local:
        return False
    if check_domain(domain) is None:
        return False
    try:
        proto.parse_mailbox(text)
    except ValueError:
        return False
    return True
