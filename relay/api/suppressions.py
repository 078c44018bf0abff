"""``/api/v1/accounts/{id}/suppressions``: the addresses an account does not send to.

An account key manages its own account's list (another account's id is 404, as
everywhere); an operator manages every account's. Entries come from bounces (the
worker adds an address a provider refused for good) or from ``POST`` here.

``POST`` is an upsert: an address already on the list (compared case-insensitively)
is refreshed — reason, expiry, and source ``manual`` — and answered 200 with the entry;
a new one is 201. Only a new one sends the ``recipient.suppressed`` webhook event.
Retrying a POST is therefore harmless, and ``DELETE`` lifts a suppression: the next
``RCPT TO`` for the address is accepted. An entry past its ``expires_at`` is gone
(404), whatever housekeeping has yet to delete.

Listing is newest first with the same opaque cursor as ``/messages``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

import attrs
from quart import Blueprint, Response, request

from .. import models
from ..jsonvalue import JSON
from ..storage import InvalidReference
from ..storage.suppressions import MAX_REASON
from .context import json_response, no_content, read_body, storage
from .ip_credentials import visible
from .messages import decode_cursor, encode_cursor
from .operations import CURSOR, Query, Reply, names, operation, page_limit
from .problems import not_found
from .shapes import Doc, dump
from .validation import (
    Custom,
    Email,
    Field,
    Invalid,
    Object,
    String,
    page_size,
    parse_query,
    parse_timestamp,
)

blueprint = Blueprint("suppressions", __name__)

DEFAULT_PAGE = 50
MAX_PAGE = 200
SOURCES = tuple(str(s) for s in models.SuppressionSource)
#: ``?address=`` is a substring; longer than an address cannot match one.
MAX_ADDRESS_FILTER = 254
LIST_QUERY = (
    Query("address", {"type": "string", "minLength": 1, "maxLength": MAX_ADDRESS_FILTER},
          "Only addresses containing this text (any case)."),
    Query("source", {"type": "string", "enum": list(SOURCES)}, "Only this source."),
    page_limit(MAX_PAGE, DEFAULT_PAGE),
    CURSOR,
)

EXPIRES_SCHEMA: dict[str, Any] = {
    "type": ["string", "null"],
    "format": "date-time",
    "description": "When the entry stops counting (RFC 3339 with a time zone, in the"
                   " future); null or absent: never.",
}


def _expires(value: JSON, path: str) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise Invalid(path, "expected a time such as 2030-01-01T00:00:00Z, or null")
    try:
        when = parse_timestamp(value, path)
    except Invalid as exc:  # 400 in a query string; a body member's fault is 422
        raise Invalid(path, exc.problem) from None
    if when <= dt.datetime.now(dt.UTC):
        raise Invalid(path, "is in the past; give a future time, or null for no expiry")
    return when


CREATE = Object({
    "address": Field(Email("The recipient address to stop sending to."), required=True),
    "reason": Field(
        String(MAX_REASON, min_length=0, description="Why, for people."), default=""
    ),
    "expires_at": Field(Custom(_expires, EXPIRES_SCHEMA), default=None),
})


@attrs.frozen
class SuppressionJson:
    """An address the account does not send to: SMTP refuses it at RCPT TO (550 5.1.1)."""

    id: uuid.UUID
    account_id: uuid.UUID
    address: Annotated[str, Doc("As first given; matched in any case.")]
    reason: str
    source: Annotated[
        models.SuppressionSource,
        Doc("bounce: a provider refused the address for good; manual: added through this API."),
    ]
    message_id: uuid.UUID | None
    response: Annotated[str | None, Doc("The remote's words, for a bounce.")]
    created_at: dt.datetime
    updated_at: dt.datetime
    expires_at: dt.datetime | None


@attrs.frozen
class SuppressionPage:
    items: Annotated[tuple[SuppressionJson, ...], Doc("Newest first.")]
    next_cursor: Annotated[str | None, Doc("Pass as ?cursor= for the next (older) page; null on the last.")]


SCHEMAS = {
    "Suppression": SuppressionJson,
    "SuppressionPage": SuppressionPage,
    "SuppressionCreate": CREATE.schema(),
}


def to_json(entry: models.Suppression) -> dict[str, Any]:
    return dump(SuppressionJson, entry)


def _location(entry: models.Suppression) -> dict[str, str]:
    return {"Location": f"/api/v1/accounts/{entry.account_id}/suppressions/{entry.id}"}


@blueprint.post("/accounts/<uuid:account_id>/suppressions")
@operation(
    "createSuppression", "Stop sending to an address (an address already listed is refreshed: 200)",
    {
        201: Reply("The new entry.", "Suppression"),
        200: Reply("The address was listed already; its entry, refreshed.", "Suppression"),
    },
    body="SuppressionCreate", errors=(404,),
)
async def create(account_id: uuid.UUID) -> Response:
    await visible(account_id)
    fields = await read_body(CREATE)
    try:
        added = await storage().suppressions.add(
            account_id=account_id, address=fields["address"], reason=fields["reason"],
            expires_at=fields["expires_at"],
        )
    except InvalidReference:  # the account was deleted meanwhile
        raise not_found("account") from None
    return json_response(to_json(added.entry), 201 if added.new else 200, _location(added.entry))


@blueprint.get("/accounts/<uuid:account_id>/suppressions")
@operation(
    "listSuppressions", "List the account's suppressed addresses, newest first",
    {200: Reply("A page of entries.", "SuppressionPage")}, query=LIST_QUERY, errors=(400, 404),
)
async def list_entries(account_id: uuid.UUID) -> Response:
    query = parse_query(request.args, names(LIST_QUERY))
    address = query.get("address")
    if address is not None and not 0 < len(address) <= MAX_ADDRESS_FILTER:
        raise Invalid("address", f"give 1 to {MAX_ADDRESS_FILTER} characters of the address",
                      status=400)
    source = None
    if "source" in query:
        if query["source"] not in SOURCES:
            raise Invalid("source", f"must be one of {', '.join(SOURCES)}", status=400)
        source = models.SuppressionSource(query["source"])
    limit = page_size(query.get("limit"), default=DEFAULT_PAGE, maximum=MAX_PAGE)
    before = decode_cursor(query["cursor"]) if "cursor" in query else None
    await visible(account_id)
    entries = await storage().suppressions.list(
        account_id=account_id, address=address, source=source, before=before, limit=limit + 1,
    )
    page = entries[:limit]
    next_cursor = encode_cursor(page[-1]) if len(entries) > limit else None
    return json_response(dump(SuppressionPage, items=[to_json(e) for e in page], next_cursor=next_cursor))


@blueprint.get("/accounts/<uuid:account_id>/suppressions/<uuid:entry_id>")
@operation(
    "getSuppression", "Get a suppression entry", {200: Reply("The entry.", "Suppression")}, errors=(404,),
)
async def get(account_id: uuid.UUID, entry_id: uuid.UUID) -> Response:
    await visible(account_id)
    entry = await storage().suppressions.get(entry_id, account_id=account_id)
    if entry is None:
        raise not_found("suppression")
    return json_response(to_json(entry))


@blueprint.delete("/accounts/<uuid:account_id>/suppressions/<uuid:entry_id>")
@operation(
    "deleteSuppression", "Lift a suppression: the address may be sent to again",
    {204: Reply("Deleted.")}, errors=(404,),
)
async def delete(account_id: uuid.UUID, entry_id: uuid.UUID) -> Response:
    await visible(account_id)
    if not await storage().suppressions.delete(entry_id, account_id=account_id):
        raise not_found("suppression")
    return no_content()
