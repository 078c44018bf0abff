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
from typing import Annotated, Any, Protocol

import attrs
from quart import Blueprint, Response, request

from .. import models
from ..storage import Change
from .context import json_response, listing_scope, no_content, scope, storage
from .operations import ACCOUNT_FILTER, CURSOR, Query, Reply, names, operation, page_limit
from .problems import Problem, not_found
from .shapes import Doc, dump
from .validation import Invalid, page_size, parse_query, parse_timestamp

blueprint = Blueprint("messages", __name__)

DEFAULT_PAGE = 50
MAX_PAGE = 200
STATUSES = tuple(str(s) for s in models.MessageStatus)
_TIME = {"type": "string", "format": "date-time"}
LIST_QUERY = (
    Query("status", {"type": "string", "enum": list(STATUSES)}, "Only this status."),
    Query("since", _TIME, "Created at or after (with a time zone)."),
    Query("until", _TIME, "Created before (with a time zone)."),
    page_limit(MAX_PAGE, DEFAULT_PAGE),
    CURSOR,
    ACCOUNT_FILTER,
)


@attrs.frozen
class MessageJson:
    id: uuid.UUID
    account_id: uuid.UUID
    mail_from: str
    rcpt_to: tuple[str, ...]
    size: int
    status: models.MessageStatus
    attempts: int
    next_attempt_at: dt.datetime
    message_id: str | None
    client_ip: str | None
    tls: bool
    correlation_id: str | None
    last_error: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


@attrs.frozen
class DeliveryAttemptJson:
    provider_id: uuid.UUID | None
    provider_type: str | None
    outcome: models.DeliveryOutcome
    response: str
    duration_ms: int
    created_at: dt.datetime


@attrs.frozen
class MessageDetail(MessageJson):
    delivery_attempts: tuple[DeliveryAttemptJson, ...]


@attrs.frozen
class MessagePage:
    items: tuple[MessageJson, ...]
    next_cursor: Annotated[str | None, Doc("Pass as ?cursor= for the next (older) page; null on the last.")]


SCHEMAS = {
    "Message": MessageJson,
    "MessageDetail": MessageDetail,
    "MessagePage": MessagePage,
}


def to_json(message: models.Message) -> dict[str, Any]:
    return dump(MessageJson, message)


def attempt_json(log: models.DeliveryLog) -> dict[str, Any]:
    return dump(DeliveryAttemptJson, log)


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
@operation(
    "listMessages", "List messages, newest first", {200: Reply("A page of messages.", "MessagePage")},
    query=LIST_QUERY, errors=(400,),
)
async def list_messages() -> Response:
    query = parse_query(request.args, names(LIST_QUERY))
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
        return json_response(dump(MessagePage, items=[], next_cursor=None))
    account_id = listing.account_id
    messages = await storage().messages.list(
        account_id=account_id, status=status, since=since, until=until, before=before,
        limit=limit + 1,
    )
    page = messages[:limit]
    next_cursor = encode_cursor(page[-1]) if len(messages) > limit else None
    return json_response(dump(MessagePage, items=[to_json(m) for m in page], next_cursor=next_cursor))


@blueprint.get("/messages/<uuid:message_id>")
@operation(
    "getMessage", "Get a message with its delivery attempts",
    {200: Reply("The message.", "MessageDetail")}, errors=(404,),
)
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
        dump(MessageDetail, message, delivery_attempts=[attempt_json(a) for a in attempts])
    )


def _wrong_state(action: str) -> Problem:
    return Problem(
        409,
        f"only queued, deferred or failed messages can be {action};"
        " this one is being sent or was sent",
        kind="wrong-state",
    )


@blueprint.post("/messages/<uuid:message_id>/retry")
@operation(
    "retryMessage", "Make a queued, deferred or failed message due now",
    {200: Reply("The message, queued.", "Message")}, errors=(404, 409),
)
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
@operation(
    "deleteMessage", "Delete a queued, deferred or failed message",
    {204: Reply("Deleted.")}, errors=(404, 409),
)
async def delete(message_id: uuid.UUID) -> Response:
    change = await storage().messages.delete(message_id, account_id=scope())
    if change is Change.NOT_FOUND:
        raise not_found("message")
    if change is Change.WRONG_STATE:
        raise _wrong_state("deleted")
    return no_content()
