"""Webhooks of one account: list endpoints, create one (its signing secret shown once,
on the answer to the create), enable/disable, delete, and one endpoint's recent
deliveries with their attempts (``storage.webhooks``, scoped to the account, as the
API does). An account key sees only its own account's; ``/console/webhooks`` takes it
there, and lets an operator pick an account."""

from __future__ import annotations

import uuid

from quart import Response, request

from .. import models
from ..api import context
from ..api.ip_credentials import visible
from ..api.problems import Problem
from ..api.webhooks import CREATE, KINDS, MAX_PER_ACCOUNT
from ..webhooks import new_secret
from . import web
from .web import blueprint


@blueprint.get("/webhooks")
async def pick_account() -> Response:
    who = web.caller()
    if not who.is_operator:
        return web.see_other("console.webhooks", account_id=who.account_id)
    accounts = await context.storage().accounts.list(limit=web.PAGE)
    return await web.render("webhooks_pick.html", accounts=accounts, more=len(accounts) >= web.PAGE)


async def _visible(account_id: uuid.UUID) -> models.Account:
    """Raises: Problem 404 for another tenant's (or no) account, as the API answers."""
    try:
        await visible(account_id)
    except Problem:
        raise web.not_found("account") from None
    account = await context.storage().accounts.get(account_id)
    if account is None:
        raise web.not_found("account")
    return account


@blueprint.get("/accounts/<uuid:account_id>/webhooks")
async def webhooks(account_id: uuid.UUID) -> Response:
    account = await _visible(account_id)
    endpoints = await context.storage().webhooks.list(account_id=account_id)
    return await web.render(
        "webhooks.html", account=account, endpoints=endpoints, kinds=KINDS,
        limit=MAX_PER_ACCOUNT,
    )


@blueprint.post("/accounts/<uuid:account_id>/webhooks")
async def webhook_create(account_id: uuid.UUID) -> Response:
    account = await _visible(account_id)
    form = await request.form
    fields = CREATE.parse({
        "url": form.get("url", "").strip(),
        "events": form.getlist("events"),
        "description": form.get("description", ""),
        "enabled": form.get("enabled") == "true",
    })
    kinds = tuple(models.EventKind(k) for k in fields["events"])
    if not kinds:
        raise Problem(422, "Choose at least one event kind.", kind="invalid-request")
    endpoint = await context.storage().webhooks.create(
        account_id=account_id, url=fields["url"], events=kinds, secret=new_secret(),
        enabled=fields["enabled"], description=fields["description"], limit=MAX_PER_ACCOUNT,
    )
    if endpoint is None:
        raise Problem(
            409, f"This account has {MAX_PER_ACCOUNT} webhook endpoints, the most allowed;"
            " delete one first.", kind="conflict",
        )
    return await web.render("webhook_created.html", status=201, account=account, endpoint=endpoint)


@blueprint.get("/accounts/<uuid:account_id>/webhooks/<uuid:webhook_id>")
async def webhook(account_id: uuid.UUID, webhook_id: uuid.UUID) -> Response:
    account = await _visible(account_id)
    store = context.storage()
    endpoint, deliveries = await store.run(
        store.webhooks.get(webhook_id, account_id=account_id),
        store.webhooks.deliveries(webhook_id, account_id=account_id, limit=web.PAGE),
    )
    if endpoint is None:
        raise web.not_found("webhook endpoint")
    return await web.render("webhook.html", account=account, endpoint=endpoint, deliveries=deliveries)


@blueprint.post("/accounts/<uuid:account_id>/webhooks/<uuid:webhook_id>/enabled")
async def webhook_set_enabled(account_id: uuid.UUID, webhook_id: uuid.UUID) -> Response:
    await _visible(account_id)
    store = context.storage()
    current = await store.webhooks.get(webhook_id, account_id=account_id)
    if current is None:
        raise web.not_found("webhook endpoint")
    form = await request.form
    updated = await store.webhooks.update(
        webhook_id, account_id=account_id, url=current.url, events=current.events,
        enabled=form.get("enabled") == "true", description=current.description,
    )
    if updated is None:
        raise web.not_found("webhook endpoint")
    return web.see_other("console.webhooks", account_id=account_id)


@blueprint.post("/accounts/<uuid:account_id>/webhooks/<uuid:webhook_id>/delete")
async def webhook_delete(account_id: uuid.UUID, webhook_id: uuid.UUID) -> Response:
    await _visible(account_id)
    if not await context.storage().webhooks.delete(webhook_id, account_id=account_id):
        raise web.not_found("webhook endpoint")
    return web.see_other("console.webhooks", account_id=account_id)
