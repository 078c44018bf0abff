"""The quart-trio application: routes, the request pipeline and error handling.

Strategy: one before-request hook gives each request its id (``X-Request-Id``, echoed
from the client when it is a sane token) and binds it to the log context; CORS
preflights are answered next, without authentication; then every route not declared
public (``Operation.public``: health, the OpenAPI document, /metrics unless
``api.metrics_auth``) authenticates the caller and spends one token of its key's rate
budget (a key verified in the last ``api.key_cache_ttl`` seconds is not looked up
again: ``keycache``). One after-request hook adds the id, CORS and
``Cache-Control: no-store`` headers and writes the single log line of the request —
method, path, status, duration, caller id, client address — never a header, a query
or a body, so no key or password can reach the log.

Authentication itself is budgeted per client address (``api.auth_failures_per_minute``):
a token is taken before the key is looked up and given back only when the key is good,
so an address that keeps sending bad keys is answered 429 without any database work —
whatever key it sends next, a valid one included, until its budget refills. The
address is the TCP peer; ``X-Forwarded-For`` is never trusted.
"""

from __future__ import annotations

import re
import secrets
import time

import trio
from quart import Response, current_app, g, request
from quart_trio import QuartTrio
from quart_trio.wrappers.request import TrioRequest

from .. import console, metrics
from ..config import Config
from ..logging import bind, get_logger, unbind
from ..runtime import Runtime
from . import (
    accounts,
    dkim_keys,
    health,
    ip_credentials,
    messages,
    openapi,
    operations,
    problems,
    providers,
    routing_rules,
    scrape,
    suppressions,
    webhooks,
)
from .bearer import Caller, authenticate
from .context import EXTENSION, ApiState, json_response, state
from .keycache import KeyCache
from .problems import Problem
from .ratelimit import TokenBuckets, client_key

log = get_logger("relay.api")

PREFIX = "/api/v1"
#: Blueprints outside the API that check their own credentials (the web console: its
#: session cookie). Which API routes need no key is each route's own declaration
#: (``operations.Operation.public``), which the OpenAPI document shows too.
SELF_AUTHENTICATED = frozenset({console.NAME})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_CORS_METHODS = "GET, POST, PUT, PATCH, DELETE"
_CORS_HEADERS = "Authorization, Content-Type, X-Request-Id"
#: Seconds a browser may cache a preflight answer.
_CORS_MAX_AGE = "600"
#: Methods a route can have; any other a client sends is counted as "other".
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _Request(TrioRequest):
    """quart-trio's request, naming its blueprints once.

    Quart derives the blueprint names from the endpoint on every access (a split and an
    import), and its hook runners ask about eight times a request: ~2 % of the API's
    CPU under load. Kept per endpoint, since routing sets it after the request is made.
    """

    _blueprints_of: tuple[str | None, list[str]] | None = None

    @property
    def blueprints(self) -> list[str]:
        endpoint = self.endpoint
        known = self._blueprints_of
        if known is None or known[0] != endpoint:
            known = self._blueprints_of = (endpoint, super().blueprints)
        return known[1]


def reload(app: QuartTrio, config: Config) -> None:
    """Apply a re-read configuration's API limits to the next requests."""
    api = app.extensions[EXTENSION]
    api.limiter.set_rate(config.api.rate_limit_per_minute)
    api.auth_failures.set_rate(config.api.auth_failures_per_minute)


def register_api(app: QuartTrio) -> QuartTrio:
    """Add the JSON API's routes to ``app``: the routes the OpenAPI document describes."""
    app.register_blueprint(health.blueprint)
    app.register_blueprint(scrape.blueprint)
    app.register_blueprint(openapi.blueprint, url_prefix=PREFIX)
    for module in (
        accounts, ip_credentials, dkim_keys, suppressions, providers, routing_rules, messages, webhooks,
    ):
        app.register_blueprint(module.blueprint, url_prefix=PREFIX)
    return app


def create_app(runtime: Runtime) -> QuartTrio:
    """The API over ``runtime.storage``; serve it with ``server.serve_api``."""
    app = QuartTrio("relay.api")
    app.request_class = _Request
    api = runtime.config.api
    app.config.update(
        MAX_CONTENT_LENGTH=api.max_body_size,
        # OPTIONS is answered by the CORS hook or refused (405), never guessed.
        PROVIDE_AUTOMATIC_OPTIONS=False,
        PROPAGATE_EXCEPTIONS=False,
    )
    app.extensions[EXTENSION] = ApiState(
        runtime=runtime,
        limiter=TokenBuckets(api.rate_limit_per_minute, trio.current_time),
        auth_failures=TokenBuckets(api.auth_failures_per_minute, trio.current_time),
        keys=KeyCache(
            runtime.storage.key_changes, ttl=api.key_cache_ttl,
            max_entries=api.key_cache_size, clock=trio.current_time,
        ),
        openapi=openapi.document(runtime.config, register_api(app)),
    )
    console.install(app, runtime.config)
    problems.install(app)
    app.before_request(_start)
    app.before_request(_preflight)
    app.before_request(_authenticate)
    app.after_request(_finish)
    app.teardown_request(_teardown)
    return app


async def _start() -> None:
    given = request.headers.get("X-Request-Id", "")
    # 32 hex digits, as uuid4().hex gave, without building a UUID per request
    g.request_id = request_id = given if _REQUEST_ID.match(given) else secrets.token_hex(16)
    g.started = time.perf_counter()
    bind(request_id=request_id)


def _allowed_origin() -> str | None:
    origins = state().runtime.config.api.cors_origins
    origin = request.headers.get("Origin")
    if not origins or not origin:
        return None
    if "*" in origins:
        return "*"
    return origin if origin in origins else None


async def _preflight() -> Response | None:
    if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
        return None
    if _allowed_origin() is None:
        raise Problem(
            403, "cross-origin requests from this origin are not allowed (api.cors_origins)",
            kind="cors-refused",
        )
    return Response(b"", status=204, headers={
        "Access-Control-Allow-Methods": _CORS_METHODS,
        "Access-Control-Allow-Headers": _CORS_HEADERS,
        "Access-Control-Max-Age": _CORS_MAX_AGE,
    })


def _peer() -> str | None:
    """The TCP peer's address (the ASGI ``client``), never a header the client wrote."""
    client = request.scope.get("client")
    return str(client[0]) if client else None


async def _authenticate() -> None:
    if request.endpoint is None or request.blueprint in SELF_AUTHENTICATED:
        return  # unknown path or method: the router answers 404/405
    if _is_public(request.endpoint):
        return
    api = state()
    caller = g.caller = await _identify(api)
    decision = api.limiter.take(caller.key_hash)
    if not decision.allowed:
        raise Problem(
            429,
            f"rate limit of {api.limiter.per_minute} requests per"
            f" minute for this key reached; retry in {decision.retry_after} s",
            kind="rate-limited",
            headers={"Retry-After": str(decision.retry_after)},
        )


def _is_public(endpoint: str) -> bool:
    """Whether the route's declaration (``@operation(..., public=)``) serves it without a
    key, under the current configuration when that decides it. An undeclared route is
    not public (and fails the OpenAPI document's build anyway)."""
    declared = operations.of(current_app.view_functions[endpoint])
    if declared is None:
        return False
    public = declared.public
    return public(state().runtime.config) if callable(public) else public


async def _identify(api: ApiState) -> Caller:
    """The caller, with one token of its address's failure budget at stake.

    The token is taken *before* the lookup, so concurrent attempts from one address
    can never start more lookups than its budget holds, and it is handed back when the
    key turns out good — or when the lookup could not tell (database down, request
    cancelled), which is no failure of the client's.

    Raises:
        Problem: 429 when the address has spent ``api.auth_failures_per_minute``; else
            whatever ``authenticate`` raises (401, 403).
        DatabaseUnavailable: the keys could not be looked up.
    """
    client = client_key(_peer())
    decision = api.auth_failures.take(client)
    if not decision.allowed:
        raise Problem(
            429,
            f"too many failed authentications from this address (at most"
            f" {api.auth_failures.per_minute} a minute); retry in"
            f" {decision.retry_after} s with a valid key",
            kind="rate-limited",
            headers={"Retry-After": str(decision.retry_after)},
        )
    try:
        caller = await authenticate(
            api.runtime.storage, request.headers.get("Authorization"), api.keys
        )
    except Problem:
        metrics.API_AUTH_FAILURES.inc()
        raise  # a refused key: the token stays spent
    except BaseException:
        api.auth_failures.refund(client)
        raise
    api.auth_failures.refund(client)
    return caller


async def _finish(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id:
        response.headers["X-Request-Id"] = request_id
    response.headers.setdefault("Cache-Control", "no-store")
    origin = _allowed_origin()
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = "X-Request-Id, Retry-After, Location"
        if origin != "*":
            response.headers.add("Vary", "Origin")
    started = g.get("started")
    caller = g.get("caller")
    # Labelled by the route's template, never the raw path (ids would make the series
    # unbounded), and by the method only when a route could have it, for the same reason.
    method = request.method if request.method in _METHODS else "other"
    path = request.url_rule.rule if request.url_rule is not None else "unmatched"
    metrics.series(metrics.API_REQUESTS, method, path, str(response.status_code)).inc()
    if started:
        metrics.series(metrics.API_DURATION, method, path).observe(time.perf_counter() - started)
    log.info(
        "request",
        method=request.method,
        path=request.path,
        status=response.status_code,
        duration_ms=round((time.perf_counter() - started) * 1000, 1) if started else None,
        caller=caller.label() if caller else None,
        client=_peer(),
    )
    return response


async def _teardown(exc: BaseException | None) -> None:
    unbind("request_id")


# Re-exported for ``openapi`` and tests that build a reply by hand.
__all__ = ["PREFIX", "create_app", "json_response", "register_api"]
