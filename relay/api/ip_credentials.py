"""``/api/v1/accounts/{id}/ip-credentials``: networks that submit as the account
without SMTP AUTH.

An account key manages its own account's (another account's id is 404, as
everywhere); an operator manages every account's. A network is normalised and
bounded by ``relay.networks`` (the same rules as the CLI) and stored canonical, so
``10.1.2.3/24`` comes back as ``10.1.2.0/24``.

No two networks overlap, across accounts: PostgreSQL refuses the second one
(``storage.NetworkOverlap``) and the answer is 409. It names the network in the way
when that network is the caller's own (or the caller is an operator); a tenant is
told only that it overlaps another account's network — never which account.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

import attrs
from quart import Blueprint, Response

from .. import models, networks
from ..jsonvalue import JSON
from ..storage import InvalidReference, NetworkOverlap, TooManyCredentials
from .context import caller, json_response, no_content, read_body, storage
from .operations import Reply, operation
from .problems import Problem, not_found
from .shapes import Doc, dump
from .validation import Custom, Field, Invalid, Object, String

blueprint = Blueprint("ip_credentials", __name__)

NETWORK_SCHEMA: dict[str, Any] = {
    "type": "string",
    "maxLength": 64,
    "description": (
        "A CIDR network such as 192.0.2.0/24 or 2001:db8::/48 (an address alone is a"
        f" /32 or /128). At least /{networks.MIN_PREFIX[4]} for IPv4 and"
        f" /{networks.MIN_PREFIX[6]} for IPv6; host bits are cleared. Must not overlap"
        " any network of any account."
    ),
}


def _network(value: JSON, path: str) -> networks.Network:
    if not isinstance(value, str) or len(value) > NETWORK_SCHEMA["maxLength"]:
        raise Invalid(path, "expected a CIDR network such as 192.0.2.0/24")
    try:
        return networks.credential_network(value)
    except networks.InvalidNetwork as exc:
        raise Invalid(path, str(exc)) from None


CREATE = Object({
    "network": Field(Custom(_network, NETWORK_SCHEMA), required=True),
    "description": Field(
        String(200, min_length=0, description="What the network is, for people."), default=""
    ),
})


async def visible(account_id: uuid.UUID) -> None:
    """Raises: Problem 404 when the account does not exist or is not the caller's
    (the same answer for both, as for every object of the API)."""
    who = caller()
    if not who.is_operator and account_id != who.account_id:
        raise not_found("account")
    if who.is_operator and await storage().accounts.get(account_id) is None:
        raise not_found("account")


@attrs.frozen
class IpCredentialJson:
    """A network whose clients submit over SMTP as the account without AUTH."""

    id: uuid.UUID
    account_id: uuid.UUID
    network: Annotated[str, Doc("Canonical CIDR, host bits cleared.")]
    description: str
    created_at: dt.datetime


@attrs.frozen
class IpCredentialList:
    items: Annotated[tuple[IpCredentialJson, ...], Doc("Oldest first.")]


SCHEMAS = {
    "IpCredential": IpCredentialJson,
    "IpCredentialList": IpCredentialList,
    "IpCredentialCreate": CREATE.schema(),
}


def to_json(credential: models.IpCredential) -> dict[str, Any]:
    return dump(IpCredentialJson, credential, network=str(credential.network))


def _location(credential: models.IpCredential) -> dict[str, str]:
    return {
        "Location": f"/api/v1/accounts/{credential.account_id}/ip-credentials/{credential.id}"
    }


def _overlap(exc: NetworkOverlap, account_id: uuid.UUID, network: networks.Network) -> Problem:
    """The 409 for a network in the way; what it reveals depends on who asks."""
    existing = exc.existing
    if existing is not None and existing.account_id == account_id:
        if existing.network == network:
            detail = f"network: {network} is already an IP credential of this account (id {existing.id})"
        else:
            detail = (
                f"network: {network} overlaps this account's IP credential {existing.network}"
                f" (id {existing.id}); delete that one first, or choose a network that does not overlap"
            )
    elif existing is not None and caller().is_operator:
        detail = (
            f"network: {network} overlaps IP credential {existing.network} (id {existing.id})"
            f" of account {existing.account_id}; networks of different accounts may not overlap"
        )
    else:
        detail = (
            f"network: {network} overlaps another account's IP credential; networks of"
            " different accounts may not overlap, so choose a narrower network or ask an operator"
        )
    return Problem(409, detail, kind="conflict", field="network")


@blueprint.post("/accounts/<uuid:account_id>/ip-credentials")
@operation(
    "createIpCredential", "Let a network submit over SMTP as the account without AUTH",
    {201: Reply("The credential, network in canonical form.", "IpCredential")},
    body="IpCredentialCreate", errors=(404, 409),
)
async def create(account_id: uuid.UUID) -> Response:
    await visible(account_id)
    fields = await read_body(CREATE)
    network = fields["network"]
    try:
        credential = await storage().ip_credentials.create(
            account_id=account_id, network=network, description=fields["description"],
            limit=networks.MAX_PER_ACCOUNT,
        )
    except NetworkOverlap as exc:
        raise _overlap(exc, account_id, network) from None
    except TooManyCredentials:
        raise Problem(
            409, f"this account has {networks.MAX_PER_ACCOUNT} IP credentials, the most allowed;"
            " delete one or use a wider network", kind="conflict",
        ) from None
    except InvalidReference:  # the account was deleted meanwhile
        raise not_found("account") from None
    return json_response(to_json(credential), 201, _location(credential))


@blueprint.get("/accounts/<uuid:account_id>/ip-credentials")
@operation(
    "listIpCredentials", "List the account's IP credentials",
    {200: Reply("The account's IP credentials.", "IpCredentialList")}, errors=(404,),
)
async def list_credentials(account_id: uuid.UUID) -> Response:
    await visible(account_id)
    items = await storage().ip_credentials.list(account_id=account_id)
    return json_response(dump(IpCredentialList, items=[to_json(c) for c in items]))


async def _credential(account_id: uuid.UUID, credential_id: uuid.UUID) -> models.IpCredential:
    await visible(account_id)
    credential = await storage().ip_credentials.get(credential_id, account_id=account_id)
    if credential is None:
        raise not_found("IP credential")
    return credential


@blueprint.get("/accounts/<uuid:account_id>/ip-credentials/<uuid:credential_id>")
@operation(
    "getIpCredential", "Get an IP credential", {200: Reply("The credential.", "IpCredential")}, errors=(404,),
)
async def get(account_id: uuid.UUID, credential_id: uuid.UUID) -> Response:
    return json_response(to_json(await _credential(account_id, credential_id)))


@blueprint.delete("/accounts/<uuid:account_id>/ip-credentials/<uuid:credential_id>")
@operation(
    "deleteIpCredential", "Delete an IP credential; its network must AUTH from then on",
    {204: Reply("Deleted.")}, errors=(404,),
)
async def delete(account_id: uuid.UUID, credential_id: uuid.UUID) -> Response:
    await visible(account_id)
    if not await storage().ip_credentials.delete(credential_id, account_id=account_id):
        raise not_found("IP credential")
    return no_content()
