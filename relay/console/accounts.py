"""Accounts (operators only; an account key gets 404): list in pages of 50, create,
disable and enable, rotate the API key. A new key is shown once, on the page that
answers the create or the rotation, and never again."""

from __future__ import annotations

import uuid

from quart import Response, request

from .. import hashed_secrets
from ..api import context
from ..api.accounts import CREATE
from ..api.problems import Problem
from ..api.validation import Invalid
from ..storage import Conflict
from . import forms, web
from .web import blueprint

#: The create form's controls (an error naming another member is shown above it).
CONTROLS = ("name", "email", "password", "allowed_domains")


async def _page(form: forms.FormState) -> Response:
    after = web.form_uuid(request.args, "after")
    found = await context.storage().accounts.list(limit=web.PAGE + 1, after=after)
    page = found[: web.PAGE]
    return await web.render(
        "accounts.html", status=form.status, accounts=page,
        next_after=page[-1].id if len(found) > web.PAGE else None, form=form,
    )


@blueprint.get("/accounts")
async def accounts() -> Response:
    web.require_operator()
    return await _page(forms.blank())


@blueprint.post("/accounts")
async def account_create() -> Response:
    web.require_operator()
    form = await request.form
    try:
        fields = CREATE.parse({
            "name": form.get("name", ""),
            "email": form.get("email", "").strip(),
            "password": form.get("password", ""),
            "allowed_domains": web.form_list(form, "allowed_domains"),
        })
        password_hash = await hashed_secrets.hash_password_async(fields.pop("password"))
        key = hashed_secrets.new_key(hashed_secrets.ACCOUNT_KEY_PREFIX)
        try:
            account = await context.storage().accounts.create(
                password_hash=password_hash, api_key_hash=key.hash, api_key_prefix=key.prefix,
                **fields,
            )
        except Conflict:
            raise Invalid("email", "an account with this email already exists; choose another") from None
    except Invalid as error:
        return await _page(forms.refused(error, form, CONTROLS, keep_out=("password",)))
    return await web.render("key_shown.html", status=201, account=account, key=key.secret, created=True)


@blueprint.post("/accounts/<uuid:account_id>/disabled")
async def account_set_disabled(account_id: uuid.UUID) -> Response:
    web.require_operator()
    form = await request.form
    disabled = form.get("disabled") == "true"
    if await context.storage().accounts.update(account_id, disabled=disabled) is None:
        raise web.not_found("account")
    return web.see_other("console.accounts")


@blueprint.post("/accounts/<uuid:account_id>/rotate-key")
async def account_rotate_key(account_id: uuid.UUID) -> Response:
    web.require_operator()
    store = context.storage()
    key = hashed_secrets.new_key(hashed_secrets.ACCOUNT_KEY_PREFIX)
    if not await store.accounts.set_api_key(account_id, api_key_hash=key.hash, api_key_prefix=key.prefix):
        raise web.not_found("account")
    account = await store.accounts.get(account_id)
    if account is None:
        raise Problem(404, "The account was deleted meanwhile.", kind="not-found")
    return await web.render("key_shown.html", account=account, key=key.secret, created=False)
