"""Messages: the newest-first list (status, time range, recipient; cursor pages of
50) and one message — its envelope, the header block as stored (at most its first
64 KiB, read as such from the database), every delivery attempt with the remote's
words, and Retry / Delete as POST forms."""

from __future__ import annotations

import datetime as dt
import uuid

from quart import Response, request

from .. import models
from ..api import context
from ..api.messages import decode_cursor, encode_cursor
from ..api.problems import Problem
from ..api.validation import Invalid
from ..storage import Change
from . import web
from .web import blueprint

#: Octets of a stored message read to show its header block.
MAX_HEADER_BYTES = 64 * 1024
STATUSES = tuple(str(s) for s in models.MessageStatus)
#: Statuses Retry and Delete apply to (the storage's own rule; anything else is 409).
CHANGEABLE = frozenset({"queued", "deferred", "failed"})


def _when(text: str, name: str) -> dt.datetime | None:
    """A ``datetime-local`` field, read as UTC. Raises: Invalid naming ``name``."""
    text = text.strip()
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(name, "expected a date and time such as 2026-01-31T14:00", status=400) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


@blueprint.get("/messages")
async def messages() -> Response:
    args = request.args
    status = args.get("status", "")
    if status and status not in STATUSES:
        raise Invalid("status", f"must be one of {', '.join(STATUSES)}", status=400)
    since, until = _when(args.get("since", ""), "since"), _when(args.get("until", ""), "until")
    recipient = args.get("recipient", "").strip()[:320] or None
    before = decode_cursor(args["cursor"]) if args.get("cursor") else None
    found = await context.storage().messages.list(
        account_id=context.scope(), status=models.MessageStatus(status) if status else None,
        since=since, until=until, recipient=recipient, before=before, limit=web.PAGE + 1,
    )
    page = found[: web.PAGE]
    filters = {k: v for k, v in args.items() if k != "cursor" and v}
    next_cursor = encode_cursor(page[-1]) if len(found) > web.PAGE else None
    return await web.render(
        "messages.html", messages=page, statuses=STATUSES, filters=filters,
        next_query={**filters, "cursor": next_cursor} if next_cursor else None,
        first_page=before is None,
    )


def header_block(head: bytes) -> tuple[str, bool]:
    """The header block in the first octets of a message, and whether it was cut short."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = head.find(separator)
        if end >= 0:
            return head[:end].decode("utf-8", "replace"), False
    return head.decode("utf-8", "replace"), len(head) >= MAX_HEADER_BYTES


@blueprint.get("/messages/<uuid:message_id>")
async def message(message_id: uuid.UUID) -> Response:
    store = context.storage()
    scope = context.scope()
    # One crossing; attempts of a message the caller may not see are read and dropped.
    found, head, attempts = await store.run(
        store.messages.get(message_id, account_id=scope),
        store.messages.head(message_id, account_id=scope, limit=MAX_HEADER_BYTES),
        store.delivery_logs.list_for_message(message_id),
    )
    if found is None:
        raise web.not_found("message")
    headers, cut = header_block(head or b"")
    return await web.render(
        "message.html", message=found, headers=headers, headers_cut=cut, attempts=attempts,
        changeable=str(found.status) in CHANGEABLE, max_header_kib=MAX_HEADER_BYTES // 1024,
    )


def _wrong_state(action: str) -> Problem:
    return Problem(
        409, f"Only queued, deferred or failed messages can be {action}; this one is being"
        " sent or was sent.", kind="wrong-state",
    )


@blueprint.post("/messages/<uuid:message_id>/retry")
async def message_retry(message_id: uuid.UUID) -> Response:
    change = await context.storage().messages.retry(message_id, account_id=context.scope())
    if change is Change.NOT_FOUND:
        raise web.not_found("message")
    if change is Change.WRONG_STATE:
        raise _wrong_state("retried")
    return web.see_other("console.message", message_id=message_id)


@blueprint.post("/messages/<uuid:message_id>/delete")
async def message_delete(message_id: uuid.UUID) -> Response:
    change = await context.storage().messages.delete(message_id, account_id=context.scope())
    if change is Change.NOT_FOUND:
        raise web.not_found("message")
    if change is Change.WRONG_STATE:
        raise _wrong_state("deleted")
    return web.see_other("console.messages")
