"""``/api/v1/providers``: an account's upstream delivery services.

Each type has its own config class in ``relay/provider_configs.py``, the one the
delivery worker builds its drivers from, so both check a config the same way.
Secrets (``SECRETS``) are write-only: a response shows ``{"set": true}`` or
``{"set": false}`` in their place. On PUT and PATCH a secret that
is not sent keeps its stored value (as long as the type stays the same), so a client
can edit a provider without ever holding its credentials. PATCH merges ``config``
member by member; ``null`` removes an optional member. PUT replaces the rest of the
config.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Annotated, Any, NoReturn

import attrs
from quart import Blueprint, Response, request

from .. import models, provider_configs
from ..models import ProviderType
from ..storage import InvalidReference
from ..storage.worker_state import HealthState, ProviderHealth
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
from .shapes import Doc, Extended, dump
from .validation import (
    Boolean,
    Custom,
    Enum,
    Field,
    Invalid,
    Object,
    String,
    Uuid,
    parse_query,
)

#: The query parameters of the listing.
LIST_QUERY = (ACCOUNT_FILTER,)

blueprint = Blueprint("providers", __name__)

SECRETS: dict[ProviderType, tuple[str, ...]] = {
    kind: provider_configs.secrets(cls) for kind, cls in provider_configs.CLASSES.items()
}


_TYPE = Enum(tuple(str(t) for t in ProviderType))
_CONFIG_ANY = Custom(
    lambda v, p: v if isinstance(v, dict) else _not_object(p),
    {"type": "object", "description": "Settings for the type; see the per-type schemas."},
)


def _not_object(path: str) -> NoReturn:
    raise Invalid(path, "expected a JSON object")


CREATE = Object({
    "account_id": Field(Uuid("Required with an operator key; an account key may omit it.")),
    "name": Field(String(200), required=True),
    "type": Field(_TYPE, required=True),
    "config": Field(_CONFIG_ANY, required=True),
    "enabled": Field(Boolean(), default=True),
})
REPLACE = Object({
    "name": Field(String(200), required=True),
    "type": Field(_TYPE, required=True),
    "config": Field(_CONFIG_ANY, required=True),
    "enabled": Field(Boolean(), default=True),
})


#: What a response shows in a secret's place.
SECRET_MARKER: dict[str, Any] = {
    "type": "object",
    "properties": {"set": {"type": "boolean"}},
    "required": ["set"],
    "additionalProperties": False,
    "description": "A write-only secret: only whether it is set is shown.",
}


def redacted_config(provider: models.Provider) -> dict[str, Any]:
    """The config with each secret replaced by whether it is set."""
    secrets = SECRETS.get(provider.type, ())
    shown: dict[str, Any] = {k: v for k, v in provider.config.items() if k not in secrets}
    for name in secrets:
        shown[name] = {"set": bool(provider.config.get(name))}
    return shown


@attrs.frozen
class ProviderJson:
    id: uuid.UUID
    account_id: uuid.UUID
    name: str
    type: ProviderType
    config: dict[str, Any]
    enabled: bool
    created_at: dt.datetime
    updated_at: dt.datetime


@attrs.frozen
class ProviderList:
    items: tuple[ProviderJson, ...]


@attrs.frozen
class ProviderHealthJson:
    provider_id: uuid.UUID
    state: Annotated[HealthState, Doc("The delivery workers' circuit breaker: open means skipped.")]
    consecutive_failures: int
    opened_until: dt.datetime | None
    last_error: str | None
    last_failure_at: dt.datetime | None
    last_success_at: dt.datetime | None


def _by_type(config_schema: Callable[[type[Any]], dict[str, Any]]) -> dict[str, Any]:
    """``oneOf`` over provider types, pairing ``type`` with that type's config schema."""
    return {"oneOf": [
        {
            "properties": {"type": {"const": str(kind)}, "config": config_schema(cls)},
            "required": ["type"],
        }
        for kind, cls in provider_configs.CLASSES.items()
    ]}


def _shown(cls: type[Any]) -> dict[str, Any]:
    return provider_configs.json_schema(cls, secret_shown_as=SECRET_MARKER)


SCHEMAS = {
    "Provider": Extended(ProviderJson, _by_type(_shown)),
    "ProviderList": ProviderList,
    "ProviderCreate": {**CREATE.schema(), **_by_type(provider_configs.json_schema)},
    "ProviderReplace": {**REPLACE.schema(), **_by_type(provider_configs.json_schema)},
    "ProviderPatch": {
        **REPLACE.schema(partial=True),
        "description": "config members merge into the stored config; null removes one."
        " Changing type requires the whole config.",
    },
    "ProviderHealth": ProviderHealthJson,
}


def to_json(provider: models.Provider) -> dict[str, Any]:
    return dump(ProviderJson, provider, config=redacted_config(provider))


def check_config(kind: ProviderType, config: dict[str, Any]) -> dict[str, Any]:
    """The members of ``config`` to store, normalized (host names lower-cased).

    Only what the client sent is kept: defaults stay in the config class, where the
    worker applies them.

    Raises:
        Invalid: naming ``config.<member>``.
    """
    try:
        checked = provider_configs.structure(provider_configs.CLASSES[kind], config)
    except provider_configs.InvalidConfig as exc:
        raise Invalid(f"config.{exc.field}" if exc.field else "config", exc.problem) from None
    return {name: getattr(checked, name) for name in config}


@blueprint.post("/providers")
@operation(
    "createProvider", "Create a provider", {201: Reply("The new provider.", "Provider")}, body="ProviderCreate",
)
async def create() -> Response:
    fields = await read_body(CREATE)
    account_id = owning_account(fields.pop("account_id", None))
    kind = ProviderType(fields["type"])
    config = check_config(kind, fields["config"])
    try:
        provider = await storage().providers.create(
            account_id=account_id, name=fields["name"], type=kind, config=config,
            enabled=fields["enabled"],
        )
    except InvalidReference:
        raise Invalid("account_id", "no account with this id") from None
    return json_response(
        to_json(provider), 201, {"Location": f"/api/v1/providers/{provider.id}"}
    )


@blueprint.get("/providers")
@operation(
    "listProviders", "List providers", {200: Reply("The providers.", "ProviderList")},
    query=LIST_QUERY, errors=(400,),
)
async def list_providers() -> Response:
    listing = listing_scope(parse_query(request.args, names(LIST_QUERY)))
    if listing.empty:
        return json_response(dump(ProviderList, items=[]))
    providers = await storage().providers.list(account_id=listing.account_id)
    return json_response(dump(ProviderList, items=[to_json(p) for p in providers]))


async def _visible(provider_id: uuid.UUID) -> models.Provider:
    provider = await storage().providers.get(provider_id, account_id=scope())
    if provider is None:
        raise not_found("provider")
    return provider


@blueprint.get("/providers/<uuid:provider_id>")
@operation("getProvider", "Get a provider", {200: Reply("The provider.", "Provider")}, errors=(404,))
async def get(provider_id: uuid.UUID) -> Response:
    return json_response(to_json(await _visible(provider_id)))


@blueprint.get("/providers/<uuid:provider_id>/health")
@operation(
    "getProviderHealth", "The provider's circuit-breaker state as the workers last saw it",
    {200: Reply("Closed when it never failed.", "ProviderHealth")}, errors=(404,),
)
async def health(provider_id: uuid.UUID) -> Response:
    """The circuit-breaker state the delivery workers share (``provider_health``)."""
    store = storage()
    provider, known = await store.run(
        store.providers.get(provider_id, account_id=scope()),
        store.worker_state.health(provider_ids=[provider_id]),
    )
    if provider is None:
        raise not_found("provider")
    # A provider that never failed has no row: closed, as the workers treat it.
    health = known[0] if known else ProviderHealth(provider_id=provider.id, state=HealthState.CLOSED)
    return json_response(dump(ProviderHealthJson, health))


@blueprint.put("/providers/<uuid:provider_id>")
@operation(
    "replaceProvider", "Replace a provider", {200: Reply("The provider.", "Provider")},
    body="ProviderReplace", errors=(404,),
)
async def replace(provider_id: uuid.UUID) -> Response:
    return await _change(provider_id, partial=False)


@blueprint.patch("/providers/<uuid:provider_id>")
@operation(
    "updateProvider", "Change some fields of a provider", {200: Reply("The provider.", "Provider")},
    body="ProviderPatch", errors=(404,),
)
async def patch(provider_id: uuid.UUID) -> Response:
    return await _change(provider_id, partial=True)


async def _change(provider_id: uuid.UUID, *, partial: bool) -> Response:
    current = await _visible(provider_id)
    fields = await read_body(REPLACE, partial=partial)
    kind = ProviderType(fields.get("type", current.type))
    if "config" in fields or kind != current.type:
        if "config" not in fields:
            raise Invalid("config", f"is required when the type changes to {kind}")
        fields["config"] = check_config(kind, _merge(current, kind, fields["config"], partial))
    if "type" in fields:
        fields["type"] = kind
    provider = await storage().providers.update(provider_id, account_id=scope(), **fields)
    if provider is None:
        raise not_found("provider")
    return json_response(to_json(provider))


def _merge(
    current: models.Provider, kind: ProviderType, given: dict[str, Any], partial: bool
) -> dict[str, Any]:
    """The config to validate: ``given`` over what is kept of the stored one."""
    if kind != current.type:
        return dict(given)
    if partial:
        merged = {**current.config, **given}
    else:
        kept = {k: v for k, v in current.config.items() if k in SECRETS[kind]}
        merged = {**kept, **given}
    return {k: v for k, v in merged.items() if v is not None}


@blueprint.delete("/providers/<uuid:provider_id>")
@operation("deleteProvider", "Delete a provider", {204: Reply("Deleted.")}, errors=(404,))
async def delete(provider_id: uuid.UUID) -> Response:
    if not await storage().providers.delete(provider_id, account_id=scope()):
        raise not_found("provider")
    return no_content()
