"""What every view needs: the runtime, the caller, the request body, JSON replies.

The app keeps one ``ApiState`` in ``app.extensions``; views reach it through
``state()`` rather than module globals, so two apps (two tests) never share a rate
limiter or a runtime.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from typing import Any

import attrs
from quart import Response, current_app, g, request

from ..limiting import TokenBuckets
from ..runtime import Runtime
from ..storage import Storage
from .bearer import Caller
from .keycache import KeyCache
from .problems import Problem
from .validation import Invalid, Object, decode_json, query_uuid

EXTENSION = "relay"


@attrs.frozen
class ApiState:
    runtime: Runtime
    #: Requests per key (``api.rate_limit_per_minute``), keyed by the key's hash.
    limiter: TokenBuckets
    #: Failed authentications per client (``api.auth_failures_per_minute``), keyed by
    #: ``ratelimit.client_key``.
    auth_failures: TokenBuckets
    #: Verified keys (``api.key_cache_ttl``), invalidated through ``storage.key_changes``.
    keys: KeyCache
    #: The OpenAPI document, built once per app.
    openapi: Mapping[str, Any] = attrs.field(repr=False)


def state() -> ApiState:
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]


def storage() -> Storage:
    return state().runtime.storage


def caller() -> Caller:
    """The authenticated caller (set by the app's before-request hook)."""
    return g.caller  # type: ignore[no-any-return]


def _default(value: object) -> str | list[object]:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        json.dumps(data, default=_default), status=status, headers=dict(headers or {}),
        content_type="application/json",
    )


def no_content() -> Response:
    return Response(b"", status=204)


async def read_body(schema: Object, *, partial: bool = False) -> dict[str, Any]:
    """The request's JSON object checked against ``schema``.

    Raises:
        Invalid: 415 for a non-JSON media type, 400 for malformed JSON, 422 for a
            member that breaks the schema (the field is named).
        RequestEntityTooLarge: the body exceeds ``api.max_body_size`` (413).
    """
    body: bytes = await request.get_data(as_text=False)  # type: ignore[assignment]
    data = decode_json(body, request.headers.get("Content-Type"))
    if partial and not data:
        raise Invalid("body", f"name at least one field to change: {', '.join(schema.fields)}")
    return schema.parse(data, partial=partial)


def owning_account(requested: uuid.UUID | None) -> uuid.UUID:
    """The account a new provider or rule belongs to.

    Operators must name it; an account key may name only itself (or nothing). A
    foreign or unknown id gets the same answer, so nothing leaks.

    Raises:
        Invalid: 422 naming ``account_id``.
    """
    who = caller()
    if who.is_operator:
        if requested is None:
            raise Invalid("account_id", "is required with an operator key: name the account")
        return requested
    assert who.account_id is not None
    if requested is not None and requested != who.account_id:
        raise Invalid("account_id", "no account with this id")
    return who.account_id


def scope() -> uuid.UUID | None:
    """``account_id=`` for storage calls: ``None`` (everything) for an operator."""
    return caller().account_id


@attrs.frozen
class ListingScope:
    """Whose objects a listing shows: ``account_id`` for storage, or nothing at all
    when an account key filters on another tenant (an empty page, never a 403)."""

    account_id: uuid.UUID | None
    empty: bool = False


def listing_scope(query: Mapping[str, str]) -> ListingScope:
    """The caller's scope narrowed by an optional ``?account_id=``.

    Raises:
        Invalid: ``account_id`` is not a UUID (400).
    """
    account_id = scope()
    if "account_id" not in query:
        return ListingScope(account_id)
    wanted = query_uuid(query["account_id"], "account_id")
    if account_id is not None and wanted != account_id:
        return ListingScope(account_id, empty=True)
    return ListingScope(wanted)


def require_operator(action: str) -> None:
    """Raises: Problem: 403 when an account key tries an operator-only action."""
    if not caller().is_operator:
        raise Problem(403, f"only an operator key may {action}", kind="forbidden")
