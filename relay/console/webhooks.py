"""Webhooks of one account: list endpoints, create one (its signing secret shown once,
on the answer to the create), enable/disable, delete; one endpoint's page with its
recent deliveries and their attempts, "rotate secret" (the new secret shown once,
like a create's) and "send test event" (a ``webhook.test`` delivery queued for the
worker, as the API's call does, and shown on the endpoint's page as it goes). All
through ``storage.webhooks`` scoped to the account, as the API does. An account key
sees only its own account's; ``/console/webhooks`` takes it there, and lets an
operator pick an account."""

from __future__ import annotations

import uuid

from quart import Response, request

from .. import models
from ..api import context
from ..api.problems import Problem
from ..api.validation import Invalid
from ..api.webhooks import (
    CREATE,
    KINDS,
    MAX_PER_ACCOUNT,
    event_kinds,
    queue_test,
    too_many_endpoints,
)
from ..webhooks import new_secret
from . import forms, web
from .per_account import pick, visible_account
from .web import blueprint

#: The create form's controls (an error naming another member is shown above it).
CONTROLS = ("url", "events", "description", "enabled")


@blueprint.get("/webhooks")
async def pick_webhooks() -> Response:
    return await pick("console.webhooks", "Webhooks", "Webhook endpoints")


async def _page(account: models.Account, form: forms.FormState) -> Response:
    endpoints = await context.storage().webhooks.list(account_id=account.id)
    return await web.render(
        "webhooks.html", status=form.status, account=account, endpoints=endpoints,
        kinds=KINDS, limit=MAX_PER_ACCOUNT, form=form,
    )


@blueprint.get("/accounts/<uuid:account_id>/webhooks")
async def webhooks(account_id: uuid.UUID) -> Response:
    return await _page(await visible_account(account_id), forms.blank())


@blueprint.post("/accounts/<uuid:account_id>/webhooks")
async def webhook_create(account_id: uuid.UUID) -> Response:
    account = await visible_account(account_id)
    form = await request.form
    try:
        fields = CREATE.parse({
            "url": form.get("url", "").strip(),
            "events": form.getlist("events"),
            "description": form.get("description", ""),
            "enabled": form.get("enabled") == "true",
        })
        endpoint = await context.storage().webhooks.create(
            account_id=account_id, url=fields["url"], events=event_kinds(fields),
            secret=new_secret(), enabled=fields["enabled"], description=fields["description"],
            limit=MAX_PER_ACCOUNT,
        )
        if endpoint is None:
            raise too_many_endpoints()
    except (Invalid, Problem) as error:
        return await _page(account, forms.refused(error, form, CONTROLS))
    return await web.render(
        "webhook_secret.html", status=201, account=account, endpoint=endpoint, created=True,
    )


async def _endpoint(account_id: uuid.UUID, webhook_id: uuid.UUID) -> models.WebhookEndpoint:
    """Raises: Problem 404 (a page) for another tenant's or no endpoint."""
    endpoint = await context.storage().webhooks.get(webhook_id, account_id=account_id)
    if endpoint is None:
        raise web.not_found("webhook endpoint")
    return endpoint


@blueprint.get("/accounts/<uuid:account_id>/webhooks/<uuid:webhook_id>")
async def webhook(account_id: uuid.UUID, webhook_id: uuid.UUID) -> Response:
    account = await visible_account(account_id)
    store = context.storage()
    endpoint, deliveries = await store.run(
        store.webhooks.get(webhook_id, account_id=account_id),
        store.webhooks.deliveries(webhook_id, account_id=account_id, limit=web.PAGE),
    )
    if endpoint is None:
        raise web.not_found("webhook endpoint")
    tested = web.form_uuid(request.args, "tested")
    return await web.render(
        "webhook.html", account=account, endpoint=endpoint, deliveries=deliveries,
        tested=tested,
        test_delivery=next((d for d in deliveries if d.id == tested), None),
    )


@blueprint.post("/accounts/<uuid:account_id>/webhooks/<uuid:webhook_id>/enabled")
async def webhook_set_enabled(account_id: uuid.UUID, webhook_id: uuid.UUID) -> Response:
    await visible_account(account_id)
    current = await _endpoint(account_id, webhook_id)
    form = await request.form
    updated = await context.storage().webhooks.update(
        webhook_id, account_id=account_id, url=current.url, events=current.events,
        enabled=form.get("enabled") == "true", description=current.description,
    )
    if updated is None:
        raise web.not_found("webhook endpoint")
    return web.see_other("console.webhooks", account_id=account_id)


@blueprint.post("/accounts/<uuid:account_id>/webhooks/<uuid:webhook_id>/rotate-secret")
async def webhook_rotate_secret(account_id: uuid.UUID, webhook_id: uuid.UUID) -> Response:
    account = await visible_account(account_id)
    endpoint = await context.storage().webhooks.rotate_secret(
        webhook_id, account_id=account_id, secret=new_secret()
    )
    if endpoint is None:
        raise web.not_found("webhook endpoint")
    return await web.render("webhook_secret.html", account=account, endpoint=endpoint, created=False)


@blueprint.post("/accounts/<uuid:account_id>/webhooks/<uuid:webhook_id>/test")
async def webhook_send_test(account_id: uuid.UUID, webhook_id: uuid.UUID) -> Response:
    await visible_account(account_id)
    _, delivery_id = await queue_test(await _endpoint(account_id, webhook_id))
    return web.see_other(
        "console.webhook", account_id=account_id, webhook_id=webhook_id, tested=delivery_id,
    )


@blueprint.post("/accounts/<uuid:account_id>/webhooks/<uuid:webhook_id>/delete")
async def webhook_delete(account_id: uuid.UUID, webhook_id: uuid.UUID) -> Response:
    await visible_account(account_id)
    if not await context.storage().webhooks.delete(webhook_id, account_id=account_id):
        raise web.not_found("webhook endpoint")
    return web.see_other("console.webhooks", account_id=account_id)
