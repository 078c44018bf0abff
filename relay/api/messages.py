"""``/api/v1/messages``: the queue as a tenant sees it.

Listing is newest first with an opaque cursor (``next_cursor``: the ``created_at``
and id of the page's last message, so a page stays stable while new mail arrives).
A message's body is never returned: only its envelope, status and — for one message —
its delivery attempts. Retry and delete apply to queued, deferred and failed
messages; one being sent or already sent answers 409.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from typing import Any, Protocol

from quart import Blueprint, Response, request

from .. import models
from ..storage import Change
from .context import json_response, listing_scope, no_content, scope, storage
from .problems import Problem, not_found
from .validation import Invalid, page_size, parse_query, parse_timestamp

blueprint = Blueprint("messages", __name__)

DEFAULT_PAGE = 50
MAX_PAGE = 200
STATUSES = tuple(str(s) for s in models.MessageStatus)


def to_json(message: models.Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "account_id": message.account_id,
        "mail_from": message.mail_from,
        "rcpt_to": list(message.rcpt_to),
        "size": message.size,
        "status": str(message.status),
        "attempts": message.attempts,
        "next_attempt_at": message.next_attempt_at,
        "message_id": message.message_id,
        "client_ip": message.client_ip,
        "tls": message.tls,
        "correlation_id": message.correlation_id,
        "last_error": message.last_error,
        "created_at": message.created_at,
        "updated_at": message.updated_at,
    }


def attempt_json(log: models.DeliveryLog) -> dict[str, Any]:
    return {
        "provider_id": log.provider_id,
        "provider_type": log.provider_type,
        "outcome": str(log.outcome),
        "response": log.response,
        "duration_ms": log.duration_ms,
        "created_at": log.created_at,
    }


class Paged(Protocol):
    """A row of a newest-first listing: its cursor is (created_at, id)."""

    @property
    def created_at(self) -> dt.datetime: ...
    @property
    def id(self) -> uuid.UUID: ...


def encode_cursor(row: Paged) -> str:
    """The opaque cursor after ``row`` (used by every newest-first listing)."""
    raw = f"{row.created_at.isoformat()}|{row.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[dt.datetime, uuid.UUID]:
    """Raises: Invalid (400) naming ``cursor``."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        when, _, ident = raw.partition("|")
        created = dt.datetime.fromisoformat(when)
        if created.tzinfo is None:
            raise ValueError
        return created, uuid.UUID(ident)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Invalid(
            "cursor", "not a cursor from this API; pass next_cursor from the previous page",
            status=400,
        ) from None


@blueprint.get("/messages")
async def list_messages() -> Response:
    query = parse_query(
        request.args, ("status", "since", "until", "limit", "cursor", "account_id")
    )
    status = None
    if "status" in query:
        if query["status"] not in STATUSES:
            raise Invalid("status", f"must be one of {', '.join(STATUSES)}", status=400)
        status = models.MessageStatus(query["status"])
    since = parse_timestamp(query["since"], "since") if "since" in query else None
    until = parse_timestamp(query["until"], "until") if "until" in query else None
    limit = page_size(query.get("limit"), default=DEFAULT_PAGE, maximum=MAX_PAGE)
    before = decode_cursor(query["cursor"]) if "cursor" in query else None
    listing = listing_scope(query)
    if listing.empty:
        return json_response({"items": [], "next_cursor": None})
    account_id = listing.account_id
    messages = await storage().messages.list(
        account_id=account_id, status=status, since=since, until=until, before=before,
        limit=limit + 1,
    )
    page = messages[:limit]
    next_cursor = encode_cursor(page[-1]) if len(messages) > limit else None
    return json_response({"items": [to_json(m) for m in page], "next_cursor": next_cursor})


@blueprint.get("/messages/<uuid:message_id>")
async def get(message_id: uuid.UUID) -> Response:
    store = storage()
    # One crossing; the attempts of a message the caller may not see are read and
    # dropped, never shown.
    message, attempts = await store.run(
        store.messages.get(message_id, account_id=scope()),
        store.delivery_logs.list_for_message(message_id),
    )
    if message is None:
        raise not_found("message")
    return json_response(
        {**to_json(message), "delivery_attempts": [attempt_json(a) for a in attempts]}
    )


def _wrong_state(action: str) -> Problem:
    return Problem(
        409,
        f"only queued, deferred or failed messages can be {action};"
        " this one is being sent or was sent",
        kind="wrong-state",
    )


@blueprint.post("/messages/<uuid:message_id>/retry")
async def retry(message_id: uuid.UUID) -> Response:
    store = storage()
    # One transaction: the answer shows the message exactly as the retry left it.
    change, message = await store.run(
        store.messages.retry(message_id, account_id=scope()),
        store.messages.get(message_id, account_id=scope()),
        transaction=True,
    )
    if change is Change.NOT_FOUND or message is None:
        raise not_found("message")
    if change is Change.WRONG_STATE:
        raise _wrong_state("retried")
    return json_response(to_json(message))


@blueprint.delete("/messages/<uuid:message_id>")
async def delete(message_id: uuid.UUID) -> Response:
    change = await storage().messages.delete(message_id, account_id=scope())
    if change is Change.NOT_FOUND:
        raise not_found("message")
    if change is Change.WRONG_STATE:
        raise _wrong_state("deleted")
    return no_content()
