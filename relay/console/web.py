"""The console's blueprint, its request pipeline and the helpers every page uses.

Strategy: the console is one blueprint of the API's app, listed in the app's
``SELF_AUTHENTICATED`` blueprints so the Bearer check passes it by; its own before-request hook
then reads the session cookie, re-checks the signed-in key's hash exactly as the API
checks a key (``verify_hash`` through the API's key cache), sets ``g.caller`` — so the
API's tenant scoping helpers (``context.scope``, ``owning_account``) and its request
log line work unchanged — spends one token of the key's API rate budget, and refuses
any POST whose ``csrf`` field does not match the session's token (403, nothing done).
Pages call the same storage repositories with the same scoping as the API and
validate with the API's ``Object`` schemas. Errors render as HTML pages here, not as
problem+json (blueprint error handlers win over the app's).

Every answer carries a strict Content-Security-Policy (``default-src 'self'``, no
inline script or style: the chart is inline SVG drawn with attributes) and
``Cache-Control: no-store`` (set by the app for every route).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs
from quart import Blueprint, Response, current_app, g, redirect, render_template, request, url_for
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from .. import metrics
from ..api import bearer, context
from ..api.problems import Problem
from ..api.ratelimit import client_key
from ..api.validation import Invalid
from ..config import Config
from ..logging import get_logger
from ..storage import DatabaseUnavailable, StorageError
from .session import COOKIE, COOKIE_PATH, ConsoleSession, SessionCodec, new_secret, new_session

log = get_logger("relay.console")

NAME = "console"
EXTENSION = "relay.console"
PAGE = 50

blueprint = Blueprint(
    NAME, __name__, url_prefix="/console", template_folder="templates", static_folder="static",
)

#: Endpoints served without a signed-in session.
_OPEN = frozenset({f"{NAME}.sign_in", f"{NAME}.sign_in_form", f"{NAME}.static"})
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none';"
        " form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


@attrs.frozen
class ConsoleState:
    codec: SessionCodec
    #: ``console.secure_cookie``: Secure on every response, not only over TLS.
    always_secure: bool = False


def install(app: QuartTrio, config: Config) -> None:
    """Register the console on the API's ``app`` (``relay.api.app.create_app``)."""
    secret = config.console.session_key
    if not secret:
        secret = new_secret()
        log.warning(
            "console.session_key is empty: a random key was generated for this process;"
            " console sessions end when it restarts and do not work with api.processes > 1"
        )
    app.extensions[EXTENSION] = ConsoleState(
        SessionCodec(secret, config.console.session_max_age), config.console.secure_cookie
    )
    app.register_blueprint(blueprint)


def _state() -> ConsoleState:
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]


def session() -> ConsoleSession:
    return g.console_session  # type: ignore[no-any-return]


def set_session(new: ConsoleSession | None) -> None:
    """Write ``new`` into the cookie with this response (``None``: a fresh, signed-out one)."""
    g.console_session = new or new_session()
    g.console_cookie_changed = True


def caller() -> bearer.Caller:
    return context.caller()


def peer() -> str | None:
    client = request.scope.get("client")
    return str(client[0]) if client else None


# ---------------------------------------------------------------- pipeline


@blueprint.before_request
async def _load_session() -> Response | None:
    if request.endpoint == f"{NAME}.static":
        return None
    found = _state().codec.loads(request.cookies.get(COOKIE))
    g.console_session = found or new_session()
    g.console_cookie_changed = found is None
    if request.method == "POST":
        form = await request.form
        if not session().csrf_matches(form.get("csrf")):
            # Nothing else happens: no key lookup, no write.
            raise Problem(
                403, "This form is out of date or did not come from this console;"
                " reload the page and try again.", kind="csrf",
            )
    if request.endpoint in _OPEN:
        return None
    current = session()
    if not current.signed_in:
        return see_other(f"{NAME}.sign_in_form")
    assert current.kind is not None and current.key_hash is not None
    api = context.state()
    try:
        g.caller = await bearer.verify_hash(
            api.runtime.storage, current.kind, current.key_hash, api.keys
        )
    except Problem:
        # Rotated, revoked, or the account disabled: the session ends here.
        set_session(None)
        return see_other(f"{NAME}.sign_in_form", ended="1")
    decision = api.limiter.take(g.caller.key_hash)
    if not decision.allowed:
        raise Problem(
            429, f"This key has made {api.limiter.per_minute} requests this minute;"
            f" try again in {decision.retry_after} s.", kind="rate-limited",
            headers={"Retry-After": str(decision.retry_after)},
        )
    return None


@blueprint.after_request
async def _headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if g.get("console_cookie_changed"):
        response.set_cookie(
            COOKIE, _state().codec.dumps(session()),
            max_age=int(_state().codec.max_age), path=COOKIE_PATH,
            secure=_state().always_secure or request.scheme == "https",
            httponly=True, samesite="Strict",
        )
    return response


def spend_auth_failure_token() -> Problem | None:
    """Take one token of this address's failure budget (``api.auth_failures_per_minute``)
    before a key is looked up; the 429 to answer when it is spent."""
    api = context.state()
    decision = api.auth_failures.take(client_key(peer()))
    if decision.allowed:
        return None
    return Problem(
        429, f"Too many failed sign-ins from this address (at most"
        f" {api.auth_failures.per_minute} a minute); try again in {decision.retry_after} s.",
        kind="rate-limited", headers={"Retry-After": str(decision.retry_after)},
    )


def refund_auth_failure_token() -> None:
    context.state().auth_failures.refund(client_key(peer()))


def count_auth_failure() -> None:
    metrics.API_AUTH_FAILURES.inc()


# ---------------------------------------------------------------- rendering


async def render(template: str, status: int = 200, **values: Any) -> Response:
    """A page: ``template`` with the caller and the CSRF token every form needs."""
    body = await render_template(
        template, who=g.get("caller"), csrf=session().csrf, **values
    )
    return Response(body, status=status, content_type="text/html; charset=utf-8")


def see_other(endpoint: str, **values: Any) -> Response:
    """303 to a page after a POST (so reloading it does not post again)."""
    # quart annotates redirect() as werkzeug's Response; it builds the app's response_class.
    return redirect(url_for(endpoint, **values), 303)  # type: ignore[return-value]


def not_found(what: str) -> Problem:
    """The one answer for a missing object and for another tenant's (as in the API)."""
    return Problem(404, f"There is no {what} with this id.", kind="not-found")


def require_operator() -> None:
    """Raises: Problem: 404 for an account key (operator pages do not exist for it)."""
    if not caller().is_operator:
        raise Problem(404, "There is no such page.", kind="not-found")


def form_uuid(form: Mapping[str, str], name: str) -> uuid.UUID | None:
    """Raises: Invalid naming ``name``."""
    text = (form.get(name) or "").strip()
    if not text:
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        raise Invalid(name, "expected an id from the list") from None


def form_int(form: Mapping[str, str], name: str) -> int | str | None:
    """The field as an int when it is one; else as sent, for the schema to name."""
    text = (form.get(name) or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return text


def form_list(form: Mapping[str, str], name: str) -> list[str]:
    """A field of values separated by commas, spaces or new lines."""
    return (form.get(name) or "").replace(",", " ").split()


def _back_link() -> str | None:
    """The console page a refused form came from (same host, under /console/), so the
    error page can lead back to it; the browser keeps what was typed there."""
    referrer = urlsplit(request.referrer or "")
    if request.method != "POST" or referrer.netloc != request.host:
        return None
    if not referrer.path.startswith("/console/"):
        return None
    return referrer.path + (f"?{referrer.query}" if referrer.query else "")


async def _error_page(status: int, detail: str, headers: Mapping[str, str] | None = None) -> Response:
    if "console_session" not in g:
        g.console_session = new_session()
    response = await render(
        "error.html", status=status, status_code=status, detail=detail, back=_back_link(),
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


@blueprint.errorhandler(Problem)
async def _on_problem(error: Problem) -> Response:
    return await _error_page(error.status, error.detail, error.headers)


@blueprint.errorhandler(Invalid)
async def _on_invalid(error: Invalid) -> Response:
    return await _error_page(error.status, f"Not saved — {error}")


@blueprint.errorhandler(HTTPException)
async def _on_http(error: HTTPException) -> Response:
    status = error.code or 500
    return await _error_page(status, error.description or "The request failed.")


@blueprint.errorhandler(DatabaseUnavailable)
async def _on_unavailable(error: DatabaseUnavailable) -> Response:
    log.warning("database unavailable", error=str(error))
    return await _error_page(503, "The database is unavailable; try again shortly.", {"Retry-After": "5"})


@blueprint.errorhandler(StorageError)
async def _on_storage(error: StorageError) -> Response:
    log.error("storage error", error=str(error))
    return await _error_page(500, f"The request failed; quote request id {g.get('request_id')} when reporting it.")


@blueprint.errorhandler(Exception)
async def _on_unexpected(error: Exception) -> Response:
    log.error("console request failed", exc_info=error)
    return await _error_page(500, f"The request failed; quote request id {g.get('request_id')} when reporting it.")
