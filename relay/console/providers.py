"""Providers: list (with the circuit-breaker state the workers last saved), create
with a type and its config as JSON — validated by the per-type classes of
``relay/provider_configs.py``, as the API does —,
enable/disable, delete. Secrets are never shown: configs are displayed through the
API's ``redacted_config`` (``{"set": true}`` in a secret's place)."""

from __future__ import annotations

import json
import uuid

from quart import Response, request

from .. import models
from ..api import context
from ..api.providers import CREATE, check_config, redacted_config
from ..api.validation import Invalid
from ..jsonvalue import JSON
from ..storage import InvalidReference
from . import forms, web
from .web import blueprint

TYPES = tuple(str(t) for t in models.ProviderType)


def parse_json(text: str, field: str) -> JSON:
    """Raises: Invalid naming ``field``."""
    try:
        value: JSON = json.loads(text or "{}")
        return value
    except json.JSONDecodeError as exc:
        raise Invalid(field, f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None


def controls(names: tuple[str, ...]) -> tuple[str, ...]:
    """A create form's controls as this caller sees them: ``account_id`` is an
    operator's choice only (an account key's error about it is shown above the form)."""
    return names if web.caller().is_operator else tuple(n for n in names if n != "account_id")


async def account_choices() -> list[models.Account]:
    """Accounts an operator may pick in a form (the first page; an account key: none)."""
    if not web.caller().is_operator:
        return []
    return await context.storage().accounts.list(limit=100)


#: The create form's controls (an error naming another member is shown above it).
CONTROLS = ("account_id", "name", "type", "config", "enabled")


@blueprint.get("/providers")
async def providers() -> Response:
    return await _page(forms.blank())


async def _page(form: forms.FormState) -> Response:
    store = context.storage()
    scope = context.scope()
    found, health = await store.run(
        store.providers.list(account_id=scope, limit=web.PAGE + 1),
        store.worker_state.health(account_id=scope),
    )
    return await web.render(
        "providers.html", providers=found[: web.PAGE], more=len(found) > web.PAGE,
        states={h.provider_id: h for h in health}, types=TYPES,
        accounts=await account_choices(), form=form, status=form.status,
    )


@blueprint.get("/providers/<uuid:provider_id>")
async def provider(provider_id: uuid.UUID) -> Response:
    store = context.storage()
    found, health = await store.run(
        store.providers.get(provider_id, account_id=context.scope()),
        store.worker_state.health(provider_ids=[provider_id]),
    )
    if found is None:
        raise web.not_found("provider")
    return await web.render(
        "provider.html", provider=found, config=json.dumps(redacted_config(found), indent=2),
        state=health[0] if health else None,
    )


@blueprint.post("/providers")
async def provider_create() -> Response:
    form = await request.form
    try:
        fields = CREATE.parse({
            **({"account_id": form["account_id"]} if form.get("account_id") else {}),
            "name": form.get("name", ""),
            "type": form.get("type", ""),
            "config": parse_json(form.get("config", ""), "config"),
            "enabled": form.get("enabled") == "true",
        })
        account_id = context.owning_account(fields.pop("account_id", None))
        kind = models.ProviderType(fields["type"])
        config = check_config(kind, fields["config"])
        try:
            created = await context.storage().providers.create(
                account_id=account_id, name=fields["name"], type=kind, config=config,
                enabled=fields["enabled"],
            )
        except InvalidReference:
            raise Invalid("account_id", "no account with this id") from None
    except Invalid as error:
        # The configuration holds the provider's credentials: like a password, it is
        # never sent back, not even to the person who just typed it.
        return await _page(forms.refused(error, form, controls(CONTROLS), keep_out=("config",)))
    return web.see_other("console.provider", provider_id=created.id)


@blueprint.post("/providers/<uuid:provider_id>/enabled")
async def provider_set_enabled(provider_id: uuid.UUID) -> Response:
    form = await request.form
    enabled = form.get("enabled") == "true"
    if await context.storage().providers.update(
        provider_id, account_id=context.scope(), enabled=enabled
    ) is None:
        raise web.not_found("provider")
    return web.see_other("console.providers")


@blueprint.post("/providers/<uuid:provider_id>/delete")
async def provider_delete(provider_id: uuid.UUID) -> Response:
    if not await context.storage().providers.delete(provider_id, account_id=context.scope()):
        raise web.not_found("provider")
    return web.see_other("console.providers")
