"""``/api/v1/accounts``: tenants, their SMTP login and their API key.

Operators create, list and delete accounts. An account key sees only its own account
(any other id is 404, as if it did not exist) and may change its name, email,
password and default provider; the fields that limit what it may send
(``OPERATOR_ONLY``) it may repeat unchanged — so a GET-modify-PUT round trip works —
but not change (403).

The password is hashed with bcrypt in a worker thread and never returned; the API
key is returned once, on creation and rotation, and only its SHA-256 is stored.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

import attrs
from quart import Blueprint, Response, request

from .. import hashed_secrets, models
from ..storage import Conflict, InvalidReference
from . import context
from .context import caller, json_response, read_body, storage
from .operations import Query, Reply, names, operation, page_limit
from .problems import Problem, forbidden, not_found
from .shapes import Doc, dump
from .validation import (
    Boolean,
    Domain,
    Email,
    Field,
    Integer,
    Invalid,
    ListOf,
    Nullable,
    Object,
    Password,
    String,
    Uuid,
    page_size,
    parse_query,
)

blueprint = Blueprint("accounts", __name__)

MAX_ALLOWED_DOMAINS = 100
DEFAULT_PAGE = 100
MAX_PAGE = 500
LIST_QUERY = (
    page_limit(MAX_PAGE, DEFAULT_PAGE),
    Query("after", {"type": "string", "format": "uuid"}, "next_after of the previous page."),
)
#: Fields that bound what an account may send: only an operator changes them.
OPERATOR_ONLY = ("allowed_domains", "disabled", "messages_per_minute", "recipients_per_hour")

_NAME = Field(String(200), required=True)
_EMAIL = Field(Email(description="The SMTP login; unique, compared case-insensitively."), required=True)
_DOMAINS = Field(
    ListOf(Domain(wildcard=True), MAX_ALLOWED_DOMAINS,
           description="Sender domains this account may use; *.example.com allows subdomains."),
    default=list,
)
_DISABLED = Field(Boolean("A disabled account cannot log in or use its key."), default=False)
_PER_MINUTE = Field(
    Nullable(Integer(0, 1_000_000, "Messages per minute; 0 unlimited, null the server default.")),
    default=None,
)
_PER_HOUR = Field(
    Nullable(Integer(0, 100_000_000, "Recipients per hour; 0 unlimited, null the server default.")),
    default=None,
)

CREATE = Object({
    "name": _NAME,
    "email": _EMAIL,
    "password": Field(Password(), required=True, write_only=True),
    "allowed_domains": _DOMAINS,
    "disabled": _DISABLED,
    "messages_per_minute": _PER_MINUTE,
    "recipients_per_hour": _PER_HOUR,
})

REPLACE = Object({
    "name": _NAME,
    "email": _EMAIL,
    "password": Field(Password("Write-only; omit it to keep the current password."), write_only=True),
    "allowed_domains": _DOMAINS,
    "disabled": _DISABLED,
    "messages_per_minute": _PER_MINUTE,
    "recipients_per_hour": _PER_HOUR,
    "default_provider_id": Field(
        Nullable(Uuid("One of this account's providers, used when no routing rule matches.")),
        default=None,
    ),
})


@attrs.frozen
class AccountJson:
    id: uuid.UUID
    name: str
    email: str
    allowed_domains: tuple[str, ...]
    disabled: bool
    messages_per_minute: int | None
    recipients_per_hour: int | None
    default_provider_id: uuid.UUID | None
    api_key_prefix: Annotated[str, Doc("The visible start of the current key.")]
    created_at: dt.datetime
    updated_at: dt.datetime


@attrs.frozen
class AccountCreated(AccountJson):
    api_key: Annotated[str, Doc("Shown once; store it now.")]


@attrs.frozen
class AccountPage:
    items: tuple[AccountJson, ...]
    next_after: Annotated[str | None, Doc("Pass as ?after= for the next page; null on the last.")]


@attrs.frozen
class ApiKey:
    api_key: Annotated[str, Doc("Shown once; the old key no longer works.")]
    api_key_prefix: str


SCHEMAS = {
    "Account": AccountJson,
    "AccountCreated": AccountCreated,
    "AccountPage": AccountPage,
    "ApiKey": ApiKey,
    "AccountCreate": CREATE.schema(),
    "AccountReplace": REPLACE.schema(),
    "AccountPatch": REPLACE.schema(partial=True),
}


def to_json(account: models.Account) -> dict[str, Any]:
    return dump(AccountJson, account)


def _location(account_id: uuid.UUID) -> dict[str, str]:
    return {"Location": f"/api/v1/accounts/{account_id}"}


def _email_taken(exc: Conflict) -> Problem:
    return Problem(
        409, "email: an account with this email already exists; choose another",
        kind="conflict", field="email",
    )


def _may_see(account_id: uuid.UUID) -> None:
    """Raises: Problem 404 when the caller may not see this account (no database read:
    an account key sees only its own account)."""
    who = caller()
    if not who.is_operator and account_id != who.account_id:
        raise not_found("account")


async def _visible(account_id: uuid.UUID) -> models.Account:
    """The account if the caller may see it. Raises: Problem 404 otherwise."""
    _may_see(account_id)
    account = await storage().accounts.get(account_id)
    if account is None:
        raise not_found("account")
    return account


@blueprint.post("/accounts")
@operation(
    "createAccount", "Create an account (operator)",
    {201: Reply("The account and its API key, shown once.", "AccountCreated")},
    body="AccountCreate", errors=(403, 409),
)
async def create() -> Response:
    context.require_operator("create accounts")
    fields = await read_body(CREATE)
    password_hash = await hashed_secrets.hash_password_async(fields.pop("password"))
    key = hashed_secrets.new_key(hashed_secrets.ACCOUNT_KEY_PREFIX)
    try:
        account = await storage().accounts.create(
            password_hash=password_hash, api_key_hash=key.hash, api_key_prefix=key.prefix,
            **fields,
        )
    except Conflict as exc:
        raise _email_taken(exc) from None
    return json_response(
        dump(AccountCreated, account, api_key=key.secret), 201, _location(account.id)
    )


@blueprint.get("/accounts")
@operation(
    "listAccounts", "List accounts (operator)",
    {200: Reply("A page of accounts ordered by id.", "AccountPage")},
    query=LIST_QUERY, errors=(400, 403),
)
async def list_accounts() -> Response:
    context.require_operator("list accounts")
    query = parse_query(request.args, names(LIST_QUERY))
    limit = page_size(query.get("limit"), default=DEFAULT_PAGE, maximum=MAX_PAGE)
    after = None
    if "after" in query:
        try:
            after = uuid.UUID(query["after"])
        except ValueError:
            raise Invalid("after", "expected the id of the last account of the previous page", status=400) from None
    accounts = await storage().accounts.list(limit=limit + 1, after=after)
    page = accounts[:limit]
    next_after = str(page[-1].id) if len(accounts) > limit else None
    return json_response(dump(AccountPage, items=[to_json(a) for a in page], next_after=next_after))


@blueprint.get("/accounts/<uuid:account_id>")
@operation("getAccount", "Get an account", {200: Reply("The account.", "Account")}, errors=(404,))
async def get(account_id: uuid.UUID) -> Response:
    return json_response(to_json(await _visible(account_id)))


@blueprint.put("/accounts/<uuid:account_id>")
@operation(
    "replaceAccount", "Replace an account; operator-only fields must stay unchanged for an account key",
    {200: Reply("The account.", "Account")}, body="AccountReplace", errors=(403, 404, 409),
)
async def replace(account_id: uuid.UUID) -> Response:
    return await _change(account_id, partial=False)


@blueprint.patch("/accounts/<uuid:account_id>")
@operation(
    "updateAccount", "Change some fields of an account",
    {200: Reply("The account.", "Account")}, body="AccountPatch", errors=(403, 404, 409),
)
async def patch(account_id: uuid.UUID) -> Response:
    return await _change(account_id, partial=True)


async def _change(account_id: uuid.UUID, *, partial: bool) -> Response:
    _may_see(account_id)
    fields = await read_body(REPLACE, partial=partial)
    if not caller().is_operator and any(name in fields for name in OPERATOR_ONLY):
        # Only then is the current account read (a second crossing): a tenant may
        # send back an operator-only field unchanged, as PUT of a GET's body does.
        current = await _visible(account_id)
        for name in OPERATOR_ONLY:
            if name in fields and _differs(fields[name], getattr(current, name)):
                raise Problem(
                    403, f"{name}: only an operator may change this field",
                    kind="forbidden", field=name,
                )
    if "password" in fields:
        fields["password_hash"] = await hashed_secrets.hash_password_async(fields.pop("password"))
    try:
        account = await storage().accounts.update(account_id, **fields)
    except Conflict as exc:
        raise _email_taken(exc) from None
    except InvalidReference:
        raise Invalid(
            "default_provider_id", "no provider with this id in this account"
        ) from None
    if account is None:
        raise not_found("account")
    return json_response(to_json(account))


def _differs(new: Any, old: Any) -> bool:
    if isinstance(old, tuple):
        return list(new) != list(old)
    return bool(new != old)


@blueprint.delete("/accounts/<uuid:account_id>")
@operation(
    "deleteAccount", "Delete an account with its providers, rules and messages (operator)",
    {204: Reply("Deleted.")}, errors=(403, 404),
)
async def delete(account_id: uuid.UUID) -> Response:
    _may_see(account_id)
    if not caller().is_operator:
        raise forbidden("only an operator key may delete accounts")
    if not await storage().accounts.delete(account_id):
        raise not_found("account")
    return context.no_content()


@blueprint.post("/accounts/<uuid:account_id>/rotate-key")
@operation(
    "rotateAccountKey", "Replace the account's API key; the old one stops at once",
    {200: Reply("The new key, shown once.", "ApiKey")}, errors=(404,),
)
async def rotate_key(account_id: uuid.UUID) -> Response:
    _may_see(account_id)
    key = hashed_secrets.new_key(hashed_secrets.ACCOUNT_KEY_PREFIX)
    if not await storage().accounts.set_api_key(
        account_id, api_key_hash=key.hash, api_key_prefix=key.prefix
    ):
        raise not_found("account")
    return json_response(dump(ApiKey, api_key=key.secret, api_key_prefix=key.prefix))
