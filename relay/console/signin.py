"""Sign-in with an API key, sign-out, and the 404 page for any other console path.

The pasted key is verified exactly as the API verifies a ``Bearer`` key
(``relay.api.bearer.verify_key``, the same key cache) and under the same per-address
failure budget (``api.auth_failures_per_minute``): a token is spent before the lookup
and given back only when the key is good or the lookup could not tell.
"""

from __future__ import annotations

from quart import Response, request

from ..api import bearer, context
from ..api.problems import Problem
from . import web
from .session import new_session
from .web import blueprint


@blueprint.get("/sign-in")
async def sign_in_form() -> Response:
    ended = request.args.get("ended") == "1"
    return await web.render("sign_in.html", ended=ended, error=None)


@blueprint.post("/sign-in")
async def sign_in() -> Response:
    form = await request.form
    token = (form.get("key") or "").strip()
    refused = web.spend_auth_failure_token()
    if refused is not None:
        raise refused
    api = context.state()
    try:
        caller = await bearer.verify_key(api.runtime.storage, token, api.keys)
    except Problem as exc:
        web.count_auth_failure()
        message = (
            "This account is disabled; ask an operator to enable it."
            if exc.status == 403 else
            "That key is not valid (unknown, revoked or rotated). Paste a current"
            " rk_admin_… or rk_live_… key."
        )
        return await web.render("sign_in.html", status=exc.status, ended=False, error=message)
    except BaseException:
        web.refund_auth_failure_token()
        raise
    web.refund_auth_failure_token()
    web.set_session(new_session(caller.kind, caller.key_hash))
    return web.see_other("console.overview")


@blueprint.post("/sign-out")
async def sign_out() -> Response:
    web.set_session(None)
    return web.see_other("console.sign_in_form")


@blueprint.get("/<path:rest>")
async def unknown(rest: str) -> Response:
    """Any other path under /console/: the console's own 404 page, not the API's JSON."""
    raise Problem(404, "There is no such page in the console.", kind="not-found")
