"""``/api/v1/providers``: an account's upstream delivery services.

Each type has its own config schema (``CONFIGS``), the keys the delivery worker reads
(``relay/worker/providers/``). Secrets (``SECRETS``) are write-only: a response shows
``{"set": true}`` or ``{"set": false}`` in their place. On PUT and PATCH a secret that
is not sent keeps its stored value (as long as the type stays the same), so a client
can edit a provider without ever holding its credentials. PATCH merges ``config``
member by member; ``null`` removes an optional member. PUT replaces the rest of the
config.
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any
from urllib.parse import urlsplit

from quart import Blueprint, Response, request

from .. import models
from ..models import ProviderType
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
from .problems import not_found
from .validation import (
    Boolean,
    Custom,
    Enum,
    Field,
    Integer,
    Invalid,
    Object,
    String,
    Uuid,
    check_domain,
    parse_query,
)

blueprint = Blueprint("providers", __name__)

MAX_SECRET = 4096


def _host(value: Any, path: str) -> str:
    if isinstance(value, str):
        if value == "localhost" or check_domain(value) is not None:
            return value.lower()
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            pass
    raise Invalid(path, "expected a host name such as smtp.example.com or an IP address")


def _url(value: Any, path: str) -> str:
    if isinstance(value, str) and len(value) <= 2048:
        parts = urlsplit(value)
        if parts.scheme in ("https", "http") and parts.netloc and not parts.username:
            return value
    raise Invalid(path, "expected an https:// URL without credentials, e.g. https://api.example.com")


def _domain(value: Any, path: str) -> str:
    if isinstance(value, str) and check_domain(value) is not None:
        return value.lower()
    raise Invalid(path, "expected a domain name such as mg.example.com")


_HOST = Custom(_host, {"type": "string", "maxLength": 253, "description": "Host name or IP address."})
_BASE_URL = Field(Custom(_url, {
    "type": "string", "format": "uri", "maxLength": 2048,
    "description": "Override the provider's endpoint (regional endpoints, tests).",
}))


def _secret(description: str, required: bool = True) -> Field:
    return Field(String(MAX_SECRET, description=description + " Write-only."), required=required, write_only=True)


CONFIGS: dict[ProviderType, Object] = {
    ProviderType.SMTP: Object({
        "host": Field(_HOST, required=True),
        "port": Field(Integer(1, 65535, "Default 587, or 465 with tls implicit.")),
        "tls": Field(Enum(("none", "starttls", "implicit"), "Default starttls.")),
        "verify": Field(Boolean("Verify the upstream's certificate; default true.")),
        "ca_file": Field(String(1024, description="PEM file of CAs to trust instead of the system's.")),
        "username": Field(String(256, description="AUTH user name; omit for no AUTH.")),
        "password": _secret("AUTH password.", required=False),
    }),
    ProviderType.SENDGRID: Object({
        "api_key": _secret("SendGrid API key."),
        "base_url": _BASE_URL,
    }),
    ProviderType.MAILGUN: Object({
        "api_key": _secret("Mailgun API key."),
        "domain": Field(Custom(_domain, {"type": "string", "maxLength": 253}), required=True),
        "region": Field(Enum(("us", "eu"), "Mailgun region; default us.")),
        "base_url": _BASE_URL,
    }),
    ProviderType.SES: Object({
        "region": Field(String(32, description="AWS region, e.g. eu-west-1."), required=True),
        "access_key_id": Field(String(128), required=True),
        "secret_access_key": _secret("AWS secret access key."),
        "session_token": _secret("Temporary credentials' session token.", required=False),
        "configuration_set": Field(String(64)),
        "base_url": _BASE_URL,
    }),
    ProviderType.POSTMARK: Object({
        "server_token": _secret("Postmark server token."),
        "message_stream": Field(String(100, description="Default outbound.")),
        "base_url": _BASE_URL,
    }),
}

SECRETS: dict[ProviderType, tuple[str, ...]] = {
    kind: tuple(name for name, spec in schema.fields.items() if spec.write_only)
    for kind, schema in CONFIGS.items()
}


_TYPE = Enum(tuple(str(t) for t in ProviderType))
_CONFIG_ANY = Custom(
    lambda v, p: v if isinstance(v, dict) else _not_object(p),
    {"type": "object", "description": "Settings for the type; see the per-type schemas."},
)


def _not_object(path: str) -> Any:
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


def redacted_config(provider: models.Provider) -> dict[str, Any]:
    """The config with each secret replaced by whether it is set."""
    secrets = SECRETS.get(provider.type, ())
    shown: dict[str, Any] = {k: v for k, v in provider.config.items() if k not in secrets}
    for name in secrets:
        shown[name] = {"set": bool(provider.config.get(name))}
    return shown


def to_json(provider: models.Provider) -> dict[str, Any]:
    return {
        "id": provider.id,
        "account_id": provider.account_id,
        "name": provider.name,
        "type": str(provider.type),
        "config": redacted_config(provider),
        "enabled": provider.enabled,
        "created_at": provider.created_at,
        "updated_at": provider.updated_at,
    }


def check_config(kind: ProviderType, config: dict[str, Any]) -> dict[str, Any]:
    """Raises: Invalid: naming ``config.<member>``."""
    return CONFIGS[kind].parse(config, "config")


@blueprint.post("/providers")
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
async def list_providers() -> Response:
    listing = listing_scope(parse_query(request.args, ("account_id",)))
    if listing.empty:
        return json_response({"items": []})
    providers = await storage().providers.list(account_id=listing.account_id)
    return json_response({"items": [to_json(p) for p in providers]})


async def _visible(provider_id: uuid.UUID) -> models.Provider:
    provider = await storage().providers.get(provider_id, account_id=scope())
    if provider is None:
        raise not_found("provider")
    return provider


@blueprint.get("/providers/<uuid:provider_id>")
async def get(provider_id: uuid.UUID) -> Response:
    return json_response(to_json(await _visible(provider_id)))


@blueprint.get("/providers/<uuid:provider_id>/health")
async def health(provider_id: uuid.UUID) -> Response:
    """The circuit-breaker state the delivery workers share (``provider_health``)."""
    store = storage()
    provider, known = await store.run(
        store.providers.get(provider_id, account_id=scope()),
        store.worker_state.health(provider_ids=[provider_id]),
    )
    if provider is None:
        raise not_found("provider")
    state = known[0] if known else None
    return json_response({
        "provider_id": provider.id,
        "state": str(state.state) if state else "closed",
        "consecutive_failures": state.consecutive_failures if state else 0,
        "opened_until": state.opened_until if state else None,
        "last_error": state.last_error if state else None,
        "last_failure_at": state.last_failure_at if state else None,
        "last_success_at": state.last_success_at if state else None,
    })


@blueprint.put("/providers/<uuid:provider_id>")
async def replace(provider_id: uuid.UUID) -> Response:
    return await _change(provider_id, partial=False)


@blueprint.patch("/providers/<uuid:provider_id>")
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
async def delete(provider_id: uuid.UUID) -> Response:
    if not await storage().providers.delete(provider_id, account_id=scope()):
        raise not_found("provider")
    return no_content()
