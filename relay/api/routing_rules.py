"""``/api/v1/routing-rules``: which provider an account's messages go to.

A rule names a provider of its own account, optional fallback providers (tried in
order when the first fails temporarily), a priority (lower is tried first; lists come
back in that order) and ``conditions`` in the language of ``relay.conditions``. The
conditions are parsed here with the same code the delivery worker uses, so a rule the
API accepts is a rule the worker understands; a bad one is refused with the JSON path
of the fault (``conditions.all[1].header.name: ...``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

import attrs
from quart import Blueprint, Response, request

from .. import conditions, models
from ..jsonvalue import JSON
from ..storage import InvalidReference
from .context import (
    json_response,
    listing_scope,
    no_content,
    owning_account,
    read_body,
    scope,
    storage,
)
from .operations import ACCOUNT_FILTER, Reply, names, operation
from .problems import not_found
from .shapes import Doc, Schema, dump
from .validation import (
    Boolean,
    Custom,
    Field,
    Integer,
    Invalid,
    ListOf,
    Object,
    String,
    Uuid,
    parse_query,
)

#: The query parameters of the listing.
LIST_QUERY = (ACCOUNT_FILTER,)

blueprint = Blueprint("routing_rules", __name__)

MAX_FALLBACKS = 10
#: PostgreSQL ``integer``.
PRIORITY_RANGE = (-(2**31), 2**31 - 1)


def _conditions(value: JSON, path: str) -> dict[str, Any]:
    try:
        conditions.parse(value, root=path)
    except conditions.ConditionError as exc:
        raise Invalid(exc.path, exc.problem) from None
    assert isinstance(value, dict)  # parse accepts nothing but an object
    return value


CONDITIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        "The condition language of relay.conditions: {} matches everything; "
        '{"all": [...]}, {"any": [...]}, {"not": {...}}; leaves recipient_domain '
        "(some recipient), every_recipient_domain, sender_domain, sender, "
        'header {"name", equals|in|contains|glob|exists}, size {greater_than, less_than}. '
        "Domain tests take a domain or {equals|in|suffix|glob}; comparisons ignore case."
    ),
    "maxProperties": 1,
}

_FIELDS = {
    "name": Field(String(200, min_length=0), default=""),
    "priority": Field(Integer(*PRIORITY_RANGE, "Lower is tried first; default 100."), default=100),
    "conditions": Field(Custom(_conditions, CONDITIONS_SCHEMA), default=dict),
    "provider_id": Field(Uuid("A provider of the rule's account."), required=True),
    "fallback_provider_ids": Field(
        ListOf(Uuid(), MAX_FALLBACKS, description="Tried in order after provider_id fails."),
        default=list,
    ),
    "enabled": Field(Boolean(), default=True),
}
CREATE = Object({
    "account_id": Field(Uuid("Required with an operator key; an account key may omit it.")),
    **_FIELDS,
})
REPLACE = Object(_FIELDS)


@attrs.frozen
class RoutingRuleJson:
    id: uuid.UUID
    account_id: uuid.UUID
    name: str
    priority: int
    conditions: Annotated[dict[str, Any], Schema(CONDITIONS_SCHEMA)]
    provider_id: uuid.UUID
    fallback_provider_ids: tuple[uuid.UUID, ...]
    enabled: bool
    created_at: dt.datetime
    updated_at: dt.datetime


@attrs.frozen
class RoutingRuleList:
    items: Annotated[tuple[RoutingRuleJson, ...], Doc("Ordered by priority, lowest first.")]


SCHEMAS = {
    "RoutingRule": RoutingRuleJson,
    "RoutingRuleList": RoutingRuleList,
    "RoutingRuleCreate": CREATE.schema(),
    "RoutingRuleReplace": REPLACE.schema(),
    "RoutingRulePatch": REPLACE.schema(partial=True),
}


def to_json(rule: models.RoutingRule) -> dict[str, Any]:
    return dump(RoutingRuleJson, rule)


def _check_fallbacks(fields: dict[str, Any], current: models.RoutingRule | None) -> None:
    primary = fields.get("provider_id", current.provider_id if current else None)
    for i, fallback in enumerate(fields.get("fallback_provider_ids", ())):
        if fallback == primary:
            raise Invalid(
                f"fallback_provider_ids[{i}]", "is the rule's provider_id; list other providers"
            )


def _bad_provider() -> Invalid:
    return Invalid(
        "provider_id",
        "no provider with this id in the rule's account"
        " (provider_id and every fallback_provider_ids entry must be the account's own)",
    )


@blueprint.post("/routing-rules")
@operation(
    "createRoutingRule", "Create a routing rule", {201: Reply("The new routing rule.", "RoutingRule")}, body="RoutingRuleCreate",
)
async def create() -> Response:
    fields = await read_body(CREATE)
    account_id = owning_account(fields.pop("account_id", None))
    _check_fallbacks(fields, None)
    try:
        rule = await storage().rules.create(account_id=account_id, **fields)
    except InvalidReference:
        raise _bad_provider() from None
    return json_response(to_json(rule), 201, {"Location": f"/api/v1/routing-rules/{rule.id}"})


@blueprint.get("/routing-rules")
@operation(
    "listRoutingRules", "List routing rules", {200: Reply("The routing rules.", "RoutingRuleList")},
    query=LIST_QUERY, errors=(400,),
)
async def list_rules() -> Response:
    listing = listing_scope(parse_query(request.args, names(LIST_QUERY)))
    if listing.empty:
        return json_response(dump(RoutingRuleList, items=[]))
    rules = await storage().rules.list(account_id=listing.account_id)
    return json_response(dump(RoutingRuleList, items=[to_json(r) for r in rules]))


async def _visible(rule_id: uuid.UUID) -> models.RoutingRule:
    rule = await storage().rules.get(rule_id, account_id=scope())
    if rule is None:
        raise not_found("routing rule")
    return rule


@blueprint.get("/routing-rules/<uuid:rule_id>")
@operation("getRoutingRule", "Get a routing rule", {200: Reply("The routing rule.", "RoutingRule")}, errors=(404,))
async def get(rule_id: uuid.UUID) -> Response:
    return json_response(to_json(await _visible(rule_id)))


@blueprint.put("/routing-rules/<uuid:rule_id>")
@operation(
    "replaceRoutingRule", "Replace a routing rule", {200: Reply("The routing rule.", "RoutingRule")},
    body="RoutingRuleReplace", errors=(404,),
)
async def replace(rule_id: uuid.UUID) -> Response:
    return await _change(rule_id, partial=False)


@blueprint.patch("/routing-rules/<uuid:rule_id>")
@operation(
    "updateRoutingRule", "Change some fields of a routing rule", {200: Reply("The routing rule.", "RoutingRule")},
    body="RoutingRulePatch", errors=(404,),
)
async def patch(rule_id: uuid.UUID) -> Response:
    return await _change(rule_id, partial=True)


async def _change(rule_id: uuid.UUID, *, partial: bool) -> Response:
    current = await _visible(rule_id)
    fields = await read_body(REPLACE, partial=partial)
    _check_fallbacks(fields, current)
    if "provider_id" in fields and "fallback_provider_ids" not in fields:
        _check_fallbacks({**fields, "fallback_provider_ids": current.fallback_provider_ids}, None)
    try:
        rule = await storage().rules.update(rule_id, account_id=scope(), **fields)
    except InvalidReference:
        raise _bad_provider() from None
    if rule is None:
        raise not_found("routing rule")
    return json_response(to_json(rule))


@blueprint.delete("/routing-rules/<uuid:rule_id>")
@operation("deleteRoutingRule", "Delete a routing rule", {204: Reply("Deleted.")}, errors=(404,))
async def delete(rule_id: uuid.UUID) -> Response:
    if not await storage().rules.delete(rule_id, account_id=scope()):
        raise not_found("routing rule")
    return no_content()
