"""What the OpenAPI document says about a route, declared on the route's view.

Strategy: ``@operation(...)``, placed under a blueprint's route decorator, attaches a
frozen ``Operation`` to the view function: its summary, success replies, request body,
query parameters and the errors it adds to the common ones. The document (``openapi``)
walks the app's real routes (``app.url_map``) and documents each with its view's
``Operation``; paths, methods and path parameters come from the route itself. So a
route cannot be served undocumented (building the document raises), and an
``Operation`` on a function no route serves is caught by a test
(``tests/relay/api/test_openapi.py``).

Bodies and replies name entries of the modules' ``SCHEMAS`` tables (the shapes of
``shapes`` and the request ``Object``s of ``validation``); the document checks that
each name exists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs

from ..config import Config

__all__ = [
    "ACCOUNT_FILTER",
    "CURSOR",
    "JSON",
    "Operation",
    "Query",
    "Reply",
    "names",
    "of",
    "operation",
    "page_limit",
]

JSON = "application/json"
_ATTRIBUTE = "relay_operation"
_View = TypeVar("_View", bound=Callable[..., Any])


@attrs.frozen
class Reply:
    """A success reply: ``schema`` names a ``SCHEMAS`` entry (``None``: no body), or
    ``content`` gives the media types and schemas outright."""

    description: str
    schema: str | None = None
    media: str = JSON
    content: Mapping[str, Any] | None = None


@attrs.frozen
class Query:
    """A query parameter; never required."""

    name: str
    schema: Mapping[str, Any]
    description: str


@attrs.frozen
class Operation:
    id: str
    summary: str
    replies: Mapping[int, Reply]
    #: The ``SCHEMAS`` entry of the request body (``None``: no body).
    body: str | None = None
    query: tuple[Query, ...] = ()
    #: Error statuses beyond the common ones (401, 403, 429, 500, 503, and those of a
    #: body: 400, 413, 415, 422); a reply in ``replies`` takes precedence.
    errors: tuple[int, ...] = ()
    #: Served without a key; a function of the configuration when that decides it.
    public: bool | Callable[[Config], bool] = False


def operation(
    id: str, summary: str, replies: Mapping[int, Reply], **details: Any
) -> Callable[[_View], _View]:
    """Document the decorated view (see ``Operation`` for ``details``)."""
    documented = Operation(id, summary, replies, **details)

    def attach(view: _View) -> _View:
        setattr(view, _ATTRIBUTE, documented)
        return view

    return attach


def of(view: Callable[..., Any]) -> Operation | None:
    """The ``Operation`` of a view, if it has one."""
    found = getattr(view, _ATTRIBUTE, None)
    return found if isinstance(found, Operation) else None


def names(query: tuple[Query, ...]) -> tuple[str, ...]:
    """The parameter names, for ``validation.parse_query``: one declaration serves both."""
    return tuple(q.name for q in query)


def page_limit(maximum: int, default: int) -> Query:
    return Query(
        "limit", {"type": "integer", "minimum": 1, "maximum": maximum}, f"Page size, default {default}."
    )


CURSOR = Query("cursor", {"type": "string"}, "next_cursor of the previous page.")
ACCOUNT_FILTER = Query(
    "account_id", {"type": "string", "format": "uuid"},
    "Operators: only this account's. Account keys always see only their own.",
)
