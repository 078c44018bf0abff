"""Take a queued MIME message apart for the providers whose API has no raw-MIME input.

Strategy: SendGrid's v3 mail/send and Postmark's /email want JSON fields (from,
subject, text and HTML bodies, attachments, custom headers, and recipients in
to/cc/bcc) and build the MIME themselves. We parse the queued bytes with the
standard ``email`` package and map them onto those fields; what cannot be carried
is said in ``LOSSY`` so the limitation is documented, not discovered.

Recipients come from the envelope only (``split_envelope``): an envelope recipient
named in the ``To:`` header goes to ``to``, one named in ``Cc:`` to ``cc``, every
other one (the Bcc recipients) to ``bcc``. Header addresses that are not envelope
recipients are dropped, and a ``Bcc:`` header is never copied, so neither API can
reveal a Bcc recipient or mail someone SMTP did not accept.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
from email.message import EmailMessage

import attrs

#: What the JSON providers lose compared to sending the bytes as queued.
LOSSY = (
    "the provider rebuilds the MIME structure, so boundaries, transfer encodings, "
    "header folding and any DKIM signature made before submission do not survive; "
    "only the first text/plain and text/html bodies are kept as bodies, every other "
    "leaf part becomes an attachment"
)

#: Headers the APIs set from their own fields (or refuse): never copied as custom headers.
_NOT_COPIED = frozenset({
    "from", "to", "cc", "bcc", "subject", "reply-to", "sender", "return-path",
    "content-type", "content-transfer-encoding", "content-disposition", "mime-version",
    "received", "dkim-signature", "date",
})


@attrs.frozen
class Attachment:
    filename: str
    content_type: str
    content: bytes = attrs.field(repr=False)
    content_id: str | None = None
    inline: bool = False


@attrs.frozen
class Parts:
    from_name: str
    from_address: str
    subject: str
    reply_to: tuple[tuple[str, str], ...]
    to: tuple[tuple[str, str], ...]
    cc: tuple[tuple[str, str], ...]
    text: str | None
    html: str | None
    attachments: tuple[Attachment, ...]
    #: Custom headers to pass on, in message order.
    headers: tuple[tuple[str, str], ...]


@attrs.frozen
class Split:
    """Envelope recipients sorted by where the headers show them (name, address)."""

    to: tuple[tuple[str, str], ...]
    cc: tuple[tuple[str, str], ...]
    bcc: tuple[tuple[str, str], ...]


def _addresses(message: EmailMessage, name: str) -> tuple[tuple[str, str], ...]:
    values = [str(v) for v in message.get_all(name, [])]
    return tuple((n, a) for n, a in email.utils.getaddresses(values) if "@" in a)


def parse(raw: bytes, mail_from: str) -> Parts:
    """Parse a queued message; never raises (the email package records defects instead)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    senders = _addresses(message, "From")
    from_name, from_address = senders[0] if senders else ("", mail_from)
    text = html = None
    attachments: list[Attachment] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        disposition = part.get_content_disposition()
        if disposition is None and ctype == "text/plain" and text is None:
            text = _text(part)
        elif disposition is None and ctype == "text/html" and html is None:
            html = _text(part)
        else:
            payload = part.get_payload(decode=True) or b""
            attachments.append(Attachment(
                filename=part.get_filename() or f"part-{len(attachments) + 1}",
                content_type=ctype,
                content=payload if isinstance(payload, bytes) else bytes(payload),
                content_id=(part.get("Content-ID") or "").strip("<> ") or None,
                inline=disposition == "inline",
            ))
    headers = tuple(
        (name, str(value)) for name, value in message.items() if name.lower() not in _NOT_COPIED
    )
    return Parts(
        from_name=from_name,
        from_address=from_address,
        subject=str(message.get("Subject", "")),
        reply_to=_addresses(message, "Reply-To"),
        to=_addresses(message, "To"),
        cc=_addresses(message, "Cc"),
        text=text,
        html=html,
        attachments=tuple(attachments),
        headers=headers,
    )


def _text(part: EmailMessage) -> str:
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # unknown charset, broken encoding
        payload = part.get_payload(decode=True) or b""
        return bytes(payload).decode("utf-8", "replace")
    return content if isinstance(content, str) else bytes(content).decode("utf-8", "replace")


def split_envelope(parts: Parts, rcpt_to: tuple[str, ...]) -> Split:
    to_names = {a.lower(): n for n, a in parts.to}
    cc_names = {a.lower(): n for n, a in parts.cc}
    to, cc, bcc, seen = [], [], [], set()
    for recipient in rcpt_to:
        key = recipient.lower()
        if key in seen:  # both APIs refuse a duplicate address
            continue
        seen.add(key)
        if key in to_names:
            to.append((to_names[key], recipient))
        elif key in cc_names:
            cc.append((cc_names[key], recipient))
        else:
            bcc.append(("", recipient))
    return Split(tuple(to), tuple(cc), tuple(bcc))


def chunks(items: tuple[str, ...], size: int) -> list[tuple[str, ...]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def display(name: str, address: str) -> str:
    return email.utils.formataddr((name, address)) if name else address
