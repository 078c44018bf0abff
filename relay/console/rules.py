"""Routing rules: list, create (conditions as JSON, checked by the API's schema and so
by ``relay.conditions``, as the worker reads them), delete; and a "which provider
would this message use?" tester that runs the worker's own router
(``relay.worker.router``: the account's enabled rules in priority order, then its
default provider) on an envelope, headers and size typed into a form. The tester only
reads, so it is a GET form."""

from __future__ import annotations

import json
import uuid
from typing import Any

import attrs
from quart import Response, request

from .. import conditions
from ..api import context
from ..api.routing_rules import CREATE
from ..api.validation import Invalid
from ..storage import InvalidReference
from . import forms, web
from .providers import account_choices, controls, parse_json
from .web import blueprint

#: Octets of headers the tester parses (the router reads no more of a message).
MAX_TEST_HEADERS = conditions.MAX_HEADER_BYTES


#: The create form's controls (an error naming another member is shown above it).
CONTROLS = ("account_id", "name", "priority", "provider_id", "fallback_provider_ids", "conditions", "enabled")


@blueprint.get("/routing-rules")
async def rules() -> Response:
    return await _page(forms.blank())


async def _page(form: forms.FormState) -> Response:
    store = context.storage()
    scope = context.scope()
    found, providers = await store.run(
        store.rules.list(account_id=scope, limit=web.PAGE + 1),
        store.providers.list(account_id=scope, limit=200),
    )
    return await web.render(
        "rules.html", rules=found[: web.PAGE], more=len(found) > web.PAGE,
        providers=providers, names={p.id: p.name for p in providers},
        accounts=await account_choices(), form=form, status=form.status,
    )


@blueprint.get("/routing-rules/<uuid:rule_id>")
async def rule(rule_id: uuid.UUID) -> Response:
    found = await context.storage().rules.get(rule_id, account_id=context.scope())
    if found is None:
        raise web.not_found("routing rule")
    return await web.render("rule.html", rule=found, conditions=json.dumps(found.conditions, indent=2))


@blueprint.post("/routing-rules")
async def rule_create() -> Response:
    form = await request.form
    try:
        data: dict[str, Any] = {
            "name": form.get("name", ""),
            "conditions": parse_json(form.get("conditions", ""), "conditions"),
            "provider_id": form.get("provider_id", ""),
            "fallback_provider_ids": web.form_list(form, "fallback_provider_ids"),
            "enabled": form.get("enabled") == "true",
        }
        if form.get("account_id"):
            data["account_id"] = form["account_id"]
        priority = web.form_int(form, "priority")
        if priority is not None:
            data["priority"] = priority
        fields = CREATE.parse(data)
        account_id = context.owning_account(fields.pop("account_id", None))
        if fields["provider_id"] in fields["fallback_provider_ids"]:
            raise Invalid("fallback_provider_ids", "lists the rule's provider_id; list other providers")
        try:
            created = await context.storage().rules.create(account_id=account_id, **fields)
        except InvalidReference:
            raise Invalid(
                "provider_id", "no provider with this id in the rule's account"
                " (the provider and every fallback must be the account's own)",
            ) from None
    except Invalid as error:
        return await _page(forms.refused(error, form, controls(CONTROLS)))
    return web.see_other("console.rule", rule_id=created.id)


@blueprint.post("/routing-rules/<uuid:rule_id>/delete")
async def rule_delete(rule_id: uuid.UUID) -> Response:
    if not await context.storage().rules.delete(rule_id, account_id=context.scope()):
        raise web.not_found("routing rule")
    return web.see_other("console.rules")


def _facts(sender: str, recipients: list[str], headers: str, size: int) -> conditions.MessageFacts:
    """What the router would see of such a message, parsed by the same code as a stored one."""
    lines = headers.replace("\r\n", "\n").strip("\n").replace("\n", "\r\n")
    head = lines.encode("utf-8", "replace")[:MAX_TEST_HEADERS] + b"\r\n\r\n"
    facts = conditions.MessageFacts.from_raw(mail_from=sender, rcpt_to=recipients, raw=head)
    return attrs.evolve(facts, size=size)


@blueprint.get("/routing-rules/test")
async def rule_test() -> Response:
    from ..worker.router import NoRoute, Router, choose_by_facts  # the worker's own logic

    args = request.args
    asked = "sender" in args
    result = None
    names: dict[uuid.UUID, str] = {}
    if asked:
        account_id = context.owning_account(web.form_uuid(args, "account_id"))
        recipients = web.form_list(args, "recipients")
        size = web.form_int(args, "size") or 0
        if not isinstance(size, int) or size < 0:
            raise Invalid("size", "expected a whole number of octets", status=400)
        facts = _facts(args.get("sender", "").strip(), recipients, args.get("headers", ""), size)
        routing = await Router(context.storage(), ttl=0).routing(account_id)
        result = choose_by_facts(routing, lambda: facts)
        names = {pid: p.name for pid, p in routing.providers.items()}
        if isinstance(result, NoRoute):
            names = {}
    return await web.render(
        "rule_test.html", args=args, asked=asked, result=result, names=names,
        accounts=await account_choices(),
    )
