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
from typing import Any

from quart import Blueprint, Response, request

from .. import models
from ..storage import InvalidReference
from ..storage.suppressions import MAX_REASON
from .context import json_response, no_content, read_body, storage
from .ip_credentials import visible
from .messages import decode_cursor, encode_cursor
from .problems import not_found
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

EXPIRES_SCHEMA: dict[str, Any] = {
    "type": ["string", "null"],
    "format": "date-time",
    "description": "When the entry stops counting (RFC 3339 with a time zone, in the"
                   " future); null or absent: never.",
}


def _expires(value: Any, path: str) -> dt.datetime | None:
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


def to_json(entry: models.Suppression) -> dict[str, Any]:
    return {
        "id": entry.id,
        "account_id": entry.account_id,
        "address": entry.address,
        "reason": entry.reason,
        "source": str(entry.source),
        "message_id": entry.message_id,
        "response": entry.response,
        "created_at": entry.created_at,
        "updated_at": entry.updated_at,
        "expires_at": entry.expires_at,
    }


def _location(entry: models.Suppression) -> dict[str, str]:
    return {"Location": f"/api/v1/accounts/{entry.account_id}/suppressions/{entry.id}"}


@blueprint.post("/accounts/<uuid:account_id>/suppressions")
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
async def list_entries(account_id: uuid.UUID) -> Response:
    query = parse_query(request.args, ("address", "source", "limit", "cursor"))
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
    return json_response({"items": [to_json(e) for e in page], "next_cursor": next_cursor})


@blueprint.get("/accounts/<uuid:account_id>/suppressions/<uuid:entry_id>")
async def get(account_id: uuid.UUID, entry_id: uuid.UUID) -> Response:
    await visible(account_id)
    entry = await storage().suppressions.get(entry_id, account_id=account_id)
    if entry is None:
        raise not_found("suppression")
    return json_response(to_json(entry))


@blueprint.delete("/accounts/<uuid:account_id>/suppressions/<uuid:entry_id>")
async def delete(account_id: uuid.UUID, entry_id: uuid.UUID) -> Response:
    await visible(account_id)
    if not await storage().suppressions.delete(entry_id, account_id=account_id):
        raise not_found("suppression")
    return no_content()
