"""``GET /api/v1/openapi.json``: an OpenAPI 3.1 description of what the server does.

Strategy: the document is generated, each fact from its one owner. Paths and methods
are the app's real routes (``app.url_map``); what each route does, takes and answers
is the ``operations.Operation`` on its view, next to the route. Request bodies are the
``validation.Object`` declarations the views parse with, provider configs the classes
of ``relay/provider_configs.py`` (which the worker reads too), and response shapes the
``shapes`` classes the views' ``to_json`` functions dump — each module lists its own
in ``SCHEMAS``. So the document cannot promise a member the server refuses or miss one
it accepts, and a route cannot be served undocumented: building the document raises.

Path parameters are published as ``{id}`` for the first (the README and clients know
them so) and by their route names after it (``{webhook_id}``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
from quart import Blueprint, Quart, Response
from werkzeug.routing import Rule

from ..config import Config
from . import (
    accounts,
    dkim_keys,
    health,
    ip_credentials,
    messages,
    problems,
    providers,
    routing_rules,
    shapes,
    suppressions,
    webhooks,
)
from . import operations as ops
from .context import json_response, state
from .operations import JSON, Operation, Reply
from .problems import CONTENT_TYPE as PROBLEM

blueprint = Blueprint("openapi", __name__)

#: The modules whose ``SCHEMAS`` tables make up ``components.schemas``.
_DECLARING = (
    problems, health, accounts, ip_credentials, dkim_keys, suppressions, providers,
    routing_rules, messages, webhooks,
)
_ID = {"type": "string", "format": "uuid"}
#: ``<uuid:account_id>`` in a route.
_VARIABLE = re.compile(r"<(?:([a-z]+):)?([a-z_]+)>")
#: Error statuses and the shared response each refers to.
_ERRORS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
    409: "Conflict", 413: "TooLarge", 415: "UnsupportedMediaType",
    422: "Unprocessable", 429: "TooManyRequests", 503: "Unavailable",
}
#: What every authenticated route may answer (403: a disabled account's key).
_AUTHENTICATED = (401, 403, 429, 503)
#: What every route with a request body may answer.
_WITH_BODY = (400, 413, 415, 422)


def _component(value: Any, refs: Mapping[type, str]) -> dict[str, Any]:
    """One ``SCHEMAS`` entry as JSON Schema: a shape, an extended shape, or a schema."""
    if isinstance(value, shapes.Extended):
        return {**shapes.schema(value.shape, refs), **value.also}
    if attrs.has(value):
        return shapes.schema(value, refs)
    return dict(value)


def _schemas() -> dict[str, Any]:
    """Every module's ``SCHEMAS``; a shape nested in another is a ``$ref`` when it is
    published itself.

    Raises:
        LookupError: two modules declare the same name.
    """
    table: dict[str, Any] = {}
    for module in _DECLARING:
        twice = table.keys() & module.SCHEMAS.keys()
        if twice:
            raise LookupError(f"{module.__name__} declares schema {sorted(twice)[0]!r} again")
        table.update(module.SCHEMAS)
    refs = {
        (v.shape if isinstance(v, shapes.Extended) else v): name
        for name, v in table.items() if isinstance(v, shapes.Extended) or attrs.has(v)
    }
    return {name: _component(value, refs) for name, value in table.items()}


def _problem(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM: {"schema": shapes.ref("Problem")}},
    }
    if headers:
        response["headers"] = headers
    return response


_INT_HEADER = {"schema": {"type": "integer"}}
_RESPONSES = {
    "BadRequest": _problem("Malformed JSON, a duplicate member, or a bad query parameter."),
    "Unauthorized": _problem(
        "No key, or a key that is unknown, revoked or rotated.",
        {"WWW-Authenticate": {"schema": {"type": "string"}}},
    ),
    "Forbidden": _problem("An operator-only action or field, or a disabled account."),
    "NotFound": _problem("No such object — or another tenant's, which is never revealed."),
    "Conflict": _problem(
        "Duplicate email, an IP credential network that overlaps an existing one (another"
        " account's is not named to a tenant) or one too many, or a message in a state"
        " that forbids the action; a DKIM selector already taken, one key too many, or"
        " dkim.key_encryption_key not configured."
    ),
    "TooLarge": _problem("The body exceeds api.max_body_size."),
    "UnsupportedMediaType": _problem("The body is not application/json."),
    "Unprocessable": _problem("A member breaks the schema; field names it."),
    "TooManyRequests": _problem(
        "The key's rate limit (api.rate_limit_per_minute) is spent, or the client"
        " address has failed to authenticate api.auth_failures_per_minute times in"
        " the last minute (then every key from it is refused unlooked-up).",
        {"Retry-After": _INT_HEADER},
    ),
    "Unavailable": _problem("The database is unreachable.", {"Retry-After": _INT_HEADER}),
    "ServerError": _problem("An unexpected failure; quote request_id."),
}


# ---------------------------------------------------------------- paths


def _documented(app: Quart) -> Iterator[tuple[Rule, Operation]]:
    """Each API route with its ``Operation`` (the ``static`` files route aside).

    Raises:
        LookupError: a route whose view has no ``@operation``.
    """
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        found = ops.of(app.view_functions[rule.endpoint])
        if found is None:
            raise LookupError(
                f"{rule.rule} ({rule.endpoint}) has no OpenAPI documentation:"
                " decorate its view with @operations.operation(...)"
            )
        yield rule, found


def _path(rule: Rule) -> tuple[str, list[dict[str, Any]]]:
    """The document's path template for ``rule`` and its path parameters."""
    parameters: list[dict[str, Any]] = []

    def published(match: re.Match[str]) -> str:
        converter, name = match.groups()
        name = "id" if not parameters else name
        schema = dict(_ID) if converter == "uuid" else {"type": "string"}
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    return _VARIABLE.sub(published, rule.rule), parameters


def _reply(reply: Reply) -> dict[str, Any]:
    response: dict[str, Any] = {"description": reply.description}
    if reply.content is not None:
        response["content"] = dict(reply.content)
    elif reply.schema is not None:
        response["content"] = {reply.media: {"schema": shapes.ref(reply.schema)}}
    return response


def _responses(op: Operation, public: bool) -> dict[str, Any]:
    wanted = set(op.errors) | (set() if public else set(_AUTHENTICATED))
    if op.body is not None:
        wanted |= set(_WITH_BODY)
    responses = {str(status): _reply(reply) for status, reply in op.replies.items()}
    for status in sorted(wanted):
        responses.setdefault(str(status), {"$ref": f"#/components/responses/{_ERRORS[status]}"})
    responses["500"] = {"$ref": "#/components/responses/ServerError"}
    return responses


def _operation(op: Operation, path_parameters: list[dict[str, Any]], config: Config) -> dict[str, Any]:
    public = op.public(config) if callable(op.public) else op.public
    result: dict[str, Any] = {
        "operationId": op.id, "summary": op.summary, "responses": _responses(op, public),
    }
    if op.body is not None:
        result["requestBody"] = {"required": True, "content": {JSON: {"schema": shapes.ref(op.body)}}}
    parameters = path_parameters + [
        {"name": q.name, "in": "query", "required": False, "schema": dict(q.schema),
         "description": q.description}
        for q in op.query
    ]
    if parameters:
        result["parameters"] = parameters
    if public:
        result["security"] = []
    return result


def _paths(app: Quart, config: Config) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for rule, op in _documented(app):
        template, parameters = _path(rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(template, {})[method.lower()] = _operation(op, parameters, config)
    return paths


def _check_references(document: dict[str, Any]) -> None:
    """Raises: LookupError naming a ``$ref`` to a schema no module declares."""
    names = document["components"]["schemas"]
    for found in re.findall(r"#/components/schemas/([A-Za-z]+)", repr(document["paths"])):
        if found not in names:
            raise LookupError(f"the OpenAPI document refers to schema {found!r}, which no SCHEMAS declares")


# ---------------------------------------------------------------- the document


_DESCRIPTION = (
    "Tenants, upstream providers, routing rules and the message queue of a relay"
    " SMTP submission service. Authenticate with 'Authorization: Bearer <key>':"
    " an operator key (rk_admin_…) manages every account; an account key"
    " (rk_live_…) sees only its own account and its objects — any other id"
    " answers 404. Each key may make {api.rate_limit_per_minute} requests per minute"
    " (429 with Retry-After beyond); an address that fails to authenticate"
    " {api.auth_failures_per_minute} times a minute gets 429 for any"
    " key until its budget refills. Bodies are JSON objects of at most"
    " {api.max_body_size} bytes; unknown members are refused. Every"
    " error is application/problem+json (RFC 9457). Every response carries"
    " X-Request-Id."
)


def document(config: Config, app: Quart) -> dict[str, Any]:
    """The OpenAPI document of ``app``'s routes under this configuration (built before
    the web console is added: its HTML pages are not part of the API).

    Raises:
        LookupError: a route without documentation, or a reference to an undeclared schema.
    """
    result = {
        "openapi": "3.1.0",
        "info": {
            "title": "relay admin API",
            "version": "1.0.0",
            "description": _DESCRIPTION.format(api=config.api),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": _paths(app, config),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key."},
            },
            "schemas": _schemas(),
            "responses": _RESPONSES,
        },
    }
    _check_references(result)
    return result


@blueprint.get("/openapi.json")
@ops.operation(
    "getOpenApi", "This document",
    {200: Reply("OpenAPI 3.1", content={JSON: {"schema": {"type": "object"}}})}, public=True,
)
async def serve_document() -> Response:
    return json_response(state().openapi)
