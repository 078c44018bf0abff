"""``/api/v1/accounts/{id}/dkim-keys``: the account's DKIM signing keys.

An account key manages its own account's keys (another account's id is 404, as
everywhere); an operator manages every account's. ``POST`` generates a key
(``algorithm``: ``rsa-sha256``, the default, or ``ed25519-sha256``) or imports one
(``private_key``: a PEM); the domain must be one of the account's ``allowed_domains``
(a ``*.example.com`` entry allows example.com and its subdomains). Every answer shows
the DNS record to publish, never the private key: it is encrypted with
``dkim.key_encryption_key`` before it is stored and only the SMTP service decrypts it.
Without that setting, creating a key is 409 saying how to set it.

A new key is enabled at once: publish its record first, or create it and ``PATCH``
``{"enabled": false}`` until DNS has it. Rotation: add a key with a new selector,
publish it, enable it (both sign meanwhile), then disable or delete the old one.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

import attrs
import trio
from quart import Blueprint, Response

from .. import dkim, models
from ..jsonvalue import JSON
from ..storage import InvalidReference, SelectorTaken, TooManyDkimKeys
from .context import json_response, no_content, read_body, state, storage
from .ip_credentials import visible
from .operations import Reply, operation
from .problems import Problem, not_found
from .shapes import Doc, Schema, dump
from .validation import Boolean, Custom, Domain, Enum, Field, Invalid, Object

blueprint = Blueprint("dkim_keys", __name__)

#: Keys one account may hold (all domains): enough for a rotation on every domain of
#: a few, and each enabled key of a domain adds a signature to its messages.
MAX_PER_ACCOUNT = 20

SELECTOR_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": dkim.MAX_SELECTOR,
    "description": (
        "The DKIM selector (RFC 6376 §3.1): dot-separated labels of letters, digits and"
        " hyphens, e.g. 2026a; the record is published at <selector>._domainkey.<domain>."
    ),
}
PRIVATE_KEY_SCHEMA: dict[str, Any] = {
    "type": "string",
    "maxLength": dkim.MAX_PEM_LENGTH,
    "writeOnly": True,
    "description": (
        "Import instead of generating: an unencrypted PEM private key, RSA of"
        f" {dkim.MIN_RSA_BITS} to {dkim.MAX_RSA_BITS} bits or Ed25519. Write-only."
    ),
}


def _selector(value: JSON, path: str) -> str:
    if not isinstance(value, str) or not dkim.selector_valid(value.lower()):
        raise Invalid(
            path, "expected a selector such as 2026a: letters, digits, hyphens and dots,"
            f" at most {dkim.MAX_SELECTOR} characters"
        )
    return value.lower()


def _private_key(value: JSON, path: str) -> dkim.KeyPair:
    if not isinstance(value, str):
        raise Invalid(path, "expected a PEM private key as a string")
    try:
        return dkim.import_pem(value)
    except dkim.InvalidKey as exc:
        raise Invalid(path, str(exc)) from None


CREATE = Object({
    "domain": Field(Domain(description="The From: domain it signs; one of the account's allowed_domains."),
                    required=True),
    "selector": Field(Custom(_selector, SELECTOR_SCHEMA), required=True),
    "algorithm": Field(Enum(dkim.ALGORITHMS, description=(
        "Generate a key of this kind (default rsa-sha256, RSA-2048); with private_key,"
        " it must match the key's kind."
    ))),
    "private_key": Field(Custom(_private_key, PRIVATE_KEY_SCHEMA), write_only=True),
})
PATCH = Object({
    "enabled": Field(Boolean("Whether the key signs the domain's messages."), required=True),
})

#: The 409 when the operator has not configured a KEK.
NO_KEK = (
    "dkim.key_encryption_key is not set, and DKIM private keys are stored only encrypted"
    f" with it. Make one with {dkim.KEK_COMMAND} and set it as key_encryption_key in the"
    " [dkim] section of the configuration (or RELAY_DKIM__KEY_ENCRYPTION_KEY) for the API"
    " and SMTP services, then restart them"
)


@attrs.frozen
class DnsRecord:
    """The TXT record to publish before enabling the key."""

    name: Annotated[str, Doc("<selector>._domainkey.<domain>")]
    type: Literal["TXT"]
    value: Annotated[str, Doc("v=DKIM1; k=rsa|ed25519; p=<public key>")]


@attrs.frozen
class DkimKeyJson:
    """A DKIM signing key of the account; the private key is never shown."""

    id: uuid.UUID
    account_id: uuid.UUID
    domain: str
    selector: str
    algorithm: Annotated[str, Schema({"enum": list(dkim.ALGORITHMS)})]
    enabled: Annotated[bool, Doc("Whether it signs the domain's messages.")]
    created_at: dt.datetime
    updated_at: dt.datetime
    dns_record: DnsRecord


@attrs.frozen
class DkimKeyList:
    items: Annotated[tuple[DkimKeyJson, ...], Doc("Oldest first.")]


SCHEMAS = {
    "DkimKey": DkimKeyJson,
    "DkimKeyList": DkimKeyList,
    "DkimKeyCreate": CREATE.schema(),
    "DkimKeyPatch": PATCH.schema(),
}


def to_json(key: models.DkimKey) -> dict[str, Any]:
    record = dkim.dns_record(
        domain=key.domain, selector=key.selector, algorithm=key.algorithm,
        public_key=key.public_key,
    )
    return dump(DkimKeyJson, key, dns_record=dump(DnsRecord, record))


def _path(key: models.DkimKey) -> str:
    return f"/api/v1/accounts/{key.account_id}/dkim-keys/{key.id}"


async def _allowed_domains(account_id: uuid.UUID) -> tuple[str, ...]:
    account = await storage().accounts.get(account_id)
    if account is None:
        raise not_found("account")
    return account.allowed_domains


def _domain_allowed(domain: str, allowed: tuple[str, ...]) -> bool:
    """As at submission (relay.smtp.compose.domain_allowed, which the API may not
    import): an exact entry, or ``*.base`` for base and its subdomains."""
    for entry in allowed:
        entry = entry.lower().rstrip(".")
        if domain == entry or (
            entry.startswith("*.") and (domain == entry[2:] or domain.endswith(entry[1:]))
        ):
            return True
    return False


@blueprint.post("/accounts/<uuid:account_id>/dkim-keys")
@operation(
    "createDkimKey",
    "Generate (algorithm) or import (private_key) a DKIM key for one of the account's domains",
    {201: Reply("The key, enabled, with the DNS record to publish.", "DkimKey")},
    body="DkimKeyCreate", errors=(404, 409),
)
async def create(account_id: uuid.UUID) -> Response:
    await visible(account_id)
    kek = key_encryption()
    if kek is None:
        raise Problem(409, NO_KEK, kind="dkim-not-configured")
    key = await create_key(account_id, await read_body(CREATE), kek)
    return json_response(to_json(key), 201, {"Location": _path(key)})


def key_encryption() -> dkim.KeyEncryption | None:
    """The configured KEK; None when ``dkim.key_encryption_key`` is empty (no key can be
    made: the API answers 409 ``NO_KEK``, the console says so on its page)."""
    return dkim.KeyEncryption.from_setting(state().runtime.config.dkim.key_encryption_key)


async def create_key(
    account_id: uuid.UUID, fields: dict[str, Any], kek: dkim.KeyEncryption
) -> models.DkimKey:
    """Generate or import the key ``fields`` (``CREATE.parse``'d) describe, encrypt it
    and store it: the rules of a create, for the API and the console alike. The caller
    has checked that the account is visible to it.

    Raises:
        Invalid: the domain is not one of the account's, or the algorithm is not the
            imported key's.
        Problem: 409 naming ``selector`` when the selector is taken, 409 when the
            account has ``MAX_PER_ACCOUNT`` keys, 404 when the account is gone.
    """
    domain = fields["domain"].rstrip(".")
    if not _domain_allowed(domain, await _allowed_domains(account_id)):
        raise Invalid(
            "domain", f"{domain} is not one of this account's allowed_domains; an operator"
            " adds it to the account first",
        )
    pair: dkim.KeyPair | None = fields.get("private_key")
    algorithm = fields.get("algorithm")
    if pair is None:
        # RSA key generation takes a good part of a second of CPU: not on the event loop.
        pair = await trio.to_thread.run_sync(dkim.generate, algorithm or dkim.RSA_SHA256)
    elif algorithm is not None and algorithm != pair.algorithm:
        raise Invalid("algorithm", f"the private key is for {pair.algorithm}, not {algorithm}")
    key_id = uuid.uuid4()
    try:
        return await storage().dkim_keys.create(
            key_id=key_id, account_id=account_id, domain=domain, selector=fields["selector"],
            algorithm=pair.algorithm, private_key=kek.encrypt(pair.private, key_id=key_id.bytes),
            public_key=pair.public_key, limit=MAX_PER_ACCOUNT,
        )
    except SelectorTaken:
        raise Problem(
            409, f"selector: {fields['selector']}._domainkey.{domain} names a key already;"
            " choose another selector", kind="conflict", field="selector",
        ) from None
    except TooManyDkimKeys:
        raise Problem(
            409, f"this account has {MAX_PER_ACCOUNT} DKIM keys, the most allowed; delete"
            " one it no longer needs", kind="conflict",
        ) from None
    except InvalidReference:  # the account was deleted meanwhile
        raise not_found("account") from None


@blueprint.get("/accounts/<uuid:account_id>/dkim-keys")
@operation(
    "listDkimKeys", "List the account's DKIM keys",
    {200: Reply("The account's DKIM keys.", "DkimKeyList")}, errors=(404,),
)
async def list_keys(account_id: uuid.UUID) -> Response:
    await visible(account_id)
    items = await storage().dkim_keys.list(account_id=account_id)
    return json_response(dump(DkimKeyList, items=[to_json(k) for k in items]))


@blueprint.get("/accounts/<uuid:account_id>/dkim-keys/<uuid:key_id>")
@operation(
    "getDkimKey", "Get a DKIM key and its DNS record", {200: Reply("The key.", "DkimKey")}, errors=(404,),
)
async def get(account_id: uuid.UUID, key_id: uuid.UUID) -> Response:
    await visible(account_id)
    key = await storage().dkim_keys.get(key_id, account_id=account_id)
    if key is None:
        raise not_found("DKIM key")
    return json_response(to_json(key))


@blueprint.patch("/accounts/<uuid:account_id>/dkim-keys/<uuid:key_id>")
@operation(
    "updateDkimKey", "Enable or disable a DKIM key (acts within dkim.key_cache_ttl seconds)",
    {200: Reply("The key.", "DkimKey")}, body="DkimKeyPatch", errors=(404,),
)
async def update(account_id: uuid.UUID, key_id: uuid.UUID) -> Response:
    await visible(account_id)
    fields = await read_body(PATCH)
    key = await storage().dkim_keys.set_enabled(key_id, fields["enabled"], account_id=account_id)
    if key is None:
        raise not_found("DKIM key")
    return json_response(to_json(key))


@blueprint.delete("/accounts/<uuid:account_id>/dkim-keys/<uuid:key_id>")
@operation(
    "deleteDkimKey", "Delete a DKIM key; it stops signing within dkim.key_cache_ttl seconds",
    {204: Reply("Deleted.")}, errors=(404,),
)
async def delete(account_id: uuid.UUID, key_id: uuid.UUID) -> Response:
    await visible(account_id)
    if not await storage().dkim_keys.delete(key_id, account_id=account_id):
        raise not_found("DKIM key")
    return no_content()

