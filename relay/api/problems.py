"""Every error the API answers is an RFC 9457 problem (``application/problem+json``).

Strategy: handlers raise ``Problem`` (or ``validation.Invalid``, or a storage error);
``install`` registers one error handler per family, so the translation to a response
lives here and nowhere else. Werkzeug's HTTP errors (404 for an unknown path, 405,
413 for a body over ``api.max_body_size``) become problems with the same shape, and
anything unexpected becomes a 500 whose body says only that it failed and which
request id to quote: the traceback goes to the log, never to the client.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Annotated, Any

import attrs
from quart import Response, g
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from ..logging import get_logger
from ..storage import DatabaseUnavailable, StorageError
from . import shapes
from .validation import Invalid

log = get_logger("relay.api")

CONTENT_TYPE = "application/problem+json"
#: Problem types are URNs: stable identifiers clients can switch on, not pages to fetch.
TYPE_PREFIX = "urn:relay:problem:"
#: Seconds a client should wait before retrying when the database is unreachable.
UNAVAILABLE_RETRY_AFTER = 5


@attrs.frozen
class Problem(Exception):
    """An error response: raise it from a view or a hook.

    ``kind`` becomes the problem ``type`` (``urn:relay:problem:<kind>``); ``field``
    names the request member at fault, when there is one.
    """

    status: int
    detail: str
    kind: str = "error"
    field: str | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    #: Extension members (RFC 9457 §3.2), e.g. the failing checks of /readyz.
    extra: Mapping[str, Any] = attrs.field(factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.detail}"


@attrs.frozen
class Check:
    """The outcome of one readiness check; detail says what failed or why it was skipped."""

    ok: bool
    detail: Annotated[str, shapes.OPTIONAL]
    skipped: Annotated[bool, shapes.OPTIONAL]
    not_after: Annotated[dt.datetime, shapes.OPTIONAL]


@attrs.frozen
class Checks:
    database: Check
    tls_certificate: Check


@attrs.frozen
class ProblemJson:
    """RFC 9457 problem details; every error has this shape."""

    type: Annotated[str, shapes.Schema({"format": "uri"})]
    title: str
    status: int
    detail: str
    field: Annotated[str, shapes.Doc("The request member at fault."), shapes.OPTIONAL]
    request_id: Annotated[str, shapes.OPTIONAL]
    checks: Annotated[Checks, shapes.OPTIONAL]


SCHEMAS = {"Problem": ProblemJson}


def not_found(what: str) -> Problem:
    """The one answer for a missing object *and* for another tenant's object."""
    return Problem(404, f"no {what} with this id", kind="not-found")


def forbidden(detail: str) -> Problem:
    return Problem(403, detail, kind="forbidden")


def response(problem: Problem) -> Response:
    optional: dict[str, Any] = dict(problem.extra)
    if problem.field is not None:
        optional["field"] = problem.field
    request_id = g.get("request_id")
    if request_id:
        optional["request_id"] = request_id
    body = shapes.dump(
        ProblemJson, type=TYPE_PREFIX + problem.kind, title=HTTPStatus(problem.status).phrase,
        status=problem.status, detail=problem.detail, **optional,
    )
    return Response(
        json.dumps(body), status=problem.status, headers=dict(problem.headers),
        content_type=CONTENT_TYPE,
    )


#: Details for werkzeug's errors, which otherwise carry HTML-minded prose.
_HTTP_DETAILS = {
    404: "no such resource; see /api/v1/openapi.json for the paths this API serves",
    405: "this method is not allowed on this path; the Allow header lists those that are",
    413: "the request body is larger than api.max_body_size allows",
}


def from_http_exception(error: HTTPException) -> Problem:
    status = error.code or 500
    headers = {}
    if status == 405:
        allowed = getattr(error, "valid_methods", None) or []
        headers["Allow"] = ", ".join(sorted(allowed))
    detail = _HTTP_DETAILS.get(status) or HTTPStatus(status).description
    kind = {404: "not-found", 405: "method-not-allowed", 413: "body-too-large"}.get(
        status, "error"
    )
    if status >= 500:
        kind = "internal"
    return Problem(status, detail, kind=kind, headers=headers)


def install(app: QuartTrio) -> None:
    """Register the handlers that turn every exception into a problem response."""

    @app.errorhandler(Problem)
    async def on_problem(error: Problem) -> Response:
        return response(error)

    @app.errorhandler(Invalid)
    async def on_invalid(error: Invalid) -> Response:
        return response(
            Problem(error.status, str(error), kind="invalid-request", field=error.field or None)
        )

    @app.errorhandler(HTTPException)
    async def on_http(error: HTTPException) -> Response:
        if error.code is not None and error.code >= 500:
            original = getattr(error, "original_exception", None)
            if original is not None:
                log.error("request failed", exc_info=original)
        return response(from_http_exception(error))

    @app.errorhandler(DatabaseUnavailable)
    async def on_unavailable(error: DatabaseUnavailable) -> Response:
        log.warning("database unavailable", error=str(error))
        return response(Problem(
            503, "the database is unavailable; retry later", kind="unavailable",
            headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
        ))

    @app.errorhandler(StorageError)
    async def on_storage(error: StorageError) -> Response:
        log.error("storage error", error=str(error))
        return response(Problem(500, "the request failed; quote the request id when reporting it", kind="internal"))

    @app.errorhandler(Exception)
    async def on_unexpected(error: Exception) -> Response:
        log.error("request failed", exc_info=error)
        return response(Problem(500, "the request failed; quote the request id when reporting it", kind="internal"))
