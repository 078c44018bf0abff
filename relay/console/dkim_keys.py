"""DKIM keys of one account: list them with the DNS TXT record each needs, create one
(the key pair generated as the API generates it, by ``api.dkim_keys.create_key`` with
the API's ``CREATE`` schema), enable/disable, delete; one key's page shows its record
to publish. The private key is never shown (it is stored encrypted and only the SMTP
service decrypts it). Without ``dkim.key_encryption_key`` no key can be made: the
page says so, and how to set it (the API's 409 words), instead of offering the form.
An account key sees only its own account's; ``/console/dkim-keys`` takes it there,
and lets an operator pick an account."""

from __future__ import annotations

import uuid

from quart import Response, request

from .. import dkim, models
from ..api import context
from ..api.dkim_keys import CREATE, MAX_PER_ACCOUNT, NO_KEK, create_key, key_encryption
from ..api.problems import Problem
from ..api.validation import Invalid
from . import forms, web
from .per_account import pick, visible_account
from .web import blueprint

#: The create form's controls (an error naming another member is shown above it).
CONTROLS = ("domain", "selector", "algorithm")


def record(key: models.DkimKey) -> dkim.DnsRecord:
    """The TXT record to publish for ``key`` (``relay.dkim``'s, as the API shows it)."""
    return dkim.dns_record(
        domain=key.domain, selector=key.selector, algorithm=key.algorithm, public_key=key.public_key,
    )


@blueprint.get("/dkim-keys")
async def pick_dkim() -> Response:
    return await pick("console.dkim_keys", "DKIM keys", "DKIM keys")


async def _page(account: models.Account, form: forms.FormState) -> Response:
    keys = await context.storage().dkim_keys.list(account_id=account.id)
    return await web.render(
        "dkim_keys.html", status=form.status, account=account, keys=keys,
        records={k.id: record(k) for k in keys}, algorithms=dkim.ALGORITHMS,
        configured=key_encryption() is not None, no_kek=NO_KEK, limit=MAX_PER_ACCOUNT,
        form=form,
    )


@blueprint.get("/accounts/<uuid:account_id>/dkim-keys")
async def dkim_keys(account_id: uuid.UUID) -> Response:
    return await _page(await visible_account(account_id), forms.blank())


@blueprint.post("/accounts/<uuid:account_id>/dkim-keys")
async def dkim_key_create(account_id: uuid.UUID) -> Response:
    account = await visible_account(account_id)
    form = await request.form
    kek = key_encryption()
    if kek is None:
        raise Problem(409, NO_KEK + ".", kind="dkim-not-configured")
    try:
        fields = CREATE.parse({
            "domain": form.get("domain", "").strip(),
            "selector": form.get("selector", "").strip(),
            "algorithm": form.get("algorithm", dkim.RSA_SHA256),
        })
        key = await create_key(account_id, fields, kek)
    except (Invalid, Problem) as error:
        if isinstance(error, Problem) and error.status == 404:
            raise
        return await _page(account, forms.refused(error, form, CONTROLS))
    return web.see_other("console.dkim_key", account_id=account_id, key_id=key.id, created="1")


@blueprint.get("/accounts/<uuid:account_id>/dkim-keys/<uuid:key_id>")
async def dkim_key(account_id: uuid.UUID, key_id: uuid.UUID) -> Response:
    account = await visible_account(account_id)
    key = await context.storage().dkim_keys.get(key_id, account_id=account_id)
    if key is None:
        raise web.not_found("DKIM key")
    return await web.render(
        "dkim_key.html", account=account, key=key, record=record(key),
        created=request.args.get("created") == "1",
    )


@blueprint.post("/accounts/<uuid:account_id>/dkim-keys/<uuid:key_id>/enabled")
async def dkim_key_set_enabled(account_id: uuid.UUID, key_id: uuid.UUID) -> Response:
    await visible_account(account_id)
    form = await request.form
    enabled = form.get("enabled") == "true"
    if await context.storage().dkim_keys.set_enabled(key_id, enabled, account_id=account_id) is None:
        raise web.not_found("DKIM key")
    return web.see_other("console.dkim_keys", account_id=account_id)


@blueprint.post("/accounts/<uuid:account_id>/dkim-keys/<uuid:key_id>/delete")
async def dkim_key_delete(account_id: uuid.UUID, key_id: uuid.UUID) -> Response:
    await visible_account(account_id)
    if not await context.storage().dkim_keys.delete(key_id, account_id=account_id):
        raise web.not_found("DKIM key")
    return web.see_other("console.dkim_keys", account_id=account_id)
