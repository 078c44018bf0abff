"""Suppression entries of one account: the addresses it does not send to. List them
newest first in cursor pages of 50, filtered by address (a case-insensitive
substring) and source, as ``GET /api/v1/accounts/{id}/suppressions`` does; add an
address with a reason and an optional expiry (the API's ``CREATE`` schema, so the
same checks: a valid address, a reason of at most 500 characters, an expiry in the
future); remove one. Adding is the storage's upsert: an address already listed is
refreshed, and the page says which happened. An account key sees only its own
account's; ``/console/suppressions`` takes it there, and lets an operator pick an
account."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from quart import Response, request

from .. import models
from ..api import context
from ..api.messages import decode_cursor, encode_cursor
from ..api.suppressions import CREATE, MAX_ADDRESS_FILTER, SOURCES
from ..api.validation import Invalid
from ..storage import InvalidReference
from . import forms, web
from .per_account import pick, visible_account
from .web import blueprint

#: The add form's controls (an error naming another member is shown above it).
CONTROLS = ("address", "reason", "expires_at")
#: What a redirect after a change tells the list page to say (``?done=``).
DONE = {
    "added": "Added: mail to the address is refused from now on.",
    "refreshed": "The address was listed already; its reason and expiry were replaced.",
    "removed": "Removed: the address may be sent to again.",
}


@blueprint.get("/suppressions")
async def pick_suppressions() -> Response:
    return await pick("console.suppressions", "Suppressions", "Suppression lists")


def _filters() -> dict[str, str]:
    """The list's filters from the query string. Raises: Invalid (400), as the API."""
    args = request.args
    filters = {k: args.get(k, "").strip() for k in ("address", "source")}
    if len(filters["address"]) > MAX_ADDRESS_FILTER:
        raise Invalid("address", f"give 1 to {MAX_ADDRESS_FILTER} characters of the address", status=400)
    if filters["source"] and filters["source"] not in SOURCES:
        raise Invalid("source", f"must be one of {', '.join(SOURCES)}", status=400)
    return {k: v for k, v in filters.items() if v}


async def _page(account: models.Account, form: forms.FormState) -> Response:
    filters = _filters()
    cursor = request.args.get("cursor")
    before = decode_cursor(cursor) if cursor else None
    found = await context.storage().suppressions.list(
        account_id=account.id, address=filters.get("address"),
        source=models.SuppressionSource(filters["source"]) if "source" in filters else None,
        before=before, limit=web.PAGE + 1,
    )
    page = found[: web.PAGE]
    next_cursor = encode_cursor(page[-1]) if len(found) > web.PAGE else None
    return await web.render(
        "suppressions.html", status=form.status, account=account, entries=page,
        filters=filters, sources=SOURCES, first_page=before is None,
        next_query={**filters, "cursor": next_cursor} if next_cursor else None,
        done=DONE.get(request.args.get("done", "")), form=form,
    )


@blueprint.get("/accounts/<uuid:account_id>/suppressions")
async def suppressions(account_id: uuid.UUID) -> Response:
    return await _page(await visible_account(account_id), forms.blank())


def _expires(text: str) -> str | None:
    """A ``datetime-local`` field (no zone; the form says UTC) as the API's RFC 3339
    member, for ``CREATE`` to check; empty: no expiry."""
    text = text.strip()
    if not text:
        return None
    try:
        naive = dt.datetime.fromisoformat(text).tzinfo is None
    except ValueError:
        naive = False  # passed on as typed: CREATE names what is wrong with it
    return text + "+00:00" if naive else text


@blueprint.post("/accounts/<uuid:account_id>/suppressions")
async def suppression_add(account_id: uuid.UUID) -> Response:
    account = await visible_account(account_id)
    form = await request.form
    data: dict[str, Any] = {
        "address": form.get("address", "").strip(),
        "reason": form.get("reason", ""),
        "expires_at": _expires(form.get("expires_at", "")),
    }
    try:
        fields = CREATE.parse(data)
        added = await context.storage().suppressions.add(
            account_id=account_id, address=fields["address"], reason=fields["reason"],
            expires_at=fields["expires_at"],
        )
    except Invalid as error:
        return await _page(account, forms.refused(error, form, CONTROLS))
    except InvalidReference:  # the account was deleted meanwhile
        raise web.not_found("account") from None
    return web.see_other(
        "console.suppressions", account_id=account_id, done="added" if added.new else "refreshed",
    )


@blueprint.post("/accounts/<uuid:account_id>/suppressions/<uuid:entry_id>/delete")
async def suppression_remove(account_id: uuid.UUID, entry_id: uuid.UUID) -> Response:
    await visible_account(account_id)
    if not await context.storage().suppressions.delete(entry_id, account_id=account_id):
        raise web.not_found("suppression entry")
    return web.see_other("console.suppressions", account_id=account_id, done="removed")

