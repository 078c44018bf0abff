"""``/api/v1/accounts/{id}/webhooks``: where an account's delivery events are POSTed.

An account key manages its own account's endpoints (another account's id is 404, as
everywhere); an operator manages every account's. The signing secret is generated
here and shown twice only: in the answer to the create and to a rotation. Every
other answer leaves it out, and nothing logs it.

A URL must satisfy ``relay.webhooks.UrlPolicy`` (``https``, no literal private
address) when it is stored; the worker checks the addresses the name resolves to
again at every delivery. Each delivery and its attempts (status code, error,
duration) are listed under ``…/webhooks/{webhook_id}/deliveries``.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
import uuid
from typing import Annotated, Any

import attrs
from quart import Blueprint, Response, request

from .. import events, models, webhooks
from ..jsonvalue import JSON
from .context import json_response, no_content, read_body, state, storage
from .ip_credentials import visible
from .messages import decode_cursor, encode_cursor
from .operations import CURSOR, Query, Reply, names, operation, page_limit
from .problems import Problem, not_found
from .shapes import Doc, Schema, dump
from .validation import (
    Boolean,
    Custom,
    Enum,
    Field,
    Invalid,
    ListOf,
    Object,
    String,
    page_size,
    parse_query,
)

blueprint = Blueprint("webhooks", __name__)

#: Endpoints one account may have: a few receivers per application.
MAX_PER_ACCOUNT = 20
DEFAULT_PAGE = 50
MAX_PAGE = 200
DELIVERIES_QUERY = (
    Query("status", {"type": "string", "enum": [str(s) for s in models.WebhookDeliveryStatus]},
          "Only this status."),
    page_limit(MAX_PAGE, DEFAULT_PAGE),
    CURSOR,
)
#: Kinds an endpoint may subscribe to (``webhook.test`` is sent only on request).
KINDS = tuple(str(k) for k in models.EventKind if k is not models.EventKind.WEBHOOK_TEST)
URL_SCHEMA: dict[str, Any] = {
    "type": "string",
    "maxLength": 2048,
    "description": (
        "https:// URL the events are POSTed to (http:// only with webhooks.allow_http);"
        " no loopback, private or link-local address unless webhooks.allow_private_networks."
    ),
}


def _url(value: JSON, path: str) -> str:
    if not isinstance(value, str) or not value or len(value) > URL_SCHEMA["maxLength"]:
        raise Invalid(path, "expected an https:// URL of at most 2048 characters")
    # ``Custom`` skips ``String``'s checks: a NUL reached PostgreSQL (a 500), and
    # whitespace or control characters (which urlsplit silently drops) were stored as sent.
    if any(c.isspace() or unicodedata.category(c) == "Cc" for c in value):
        raise Invalid(path, "must not contain spaces or control characters; percent-encode them")
    config = state().runtime.config.webhooks
    try:
        return webhooks.UrlPolicy(config.allow_http, config.allow_private_networks).check_url(value)
    except webhooks.InvalidUrl as exc:
        raise Invalid(path, str(exc)) from None


_FIELDS = {
    "url": Field(Custom(_url, URL_SCHEMA), required=True),
    "events": Field(
        ListOf(Enum(KINDS), len(KINDS), description="The event kinds to receive (at least one)."),
        required=True,
    ),
    "enabled": Field(Boolean(), default=True),
    "description": Field(String(200, min_length=0, description="What it is, for people."), default=""),
}
CREATE = Object(_FIELDS)
PATCH = Object(_FIELDS)


@attrs.frozen
class WebhookJson:
    """An endpoint that receives the account's delivery events."""

    id: uuid.UUID
    account_id: uuid.UUID
    url: str
    events: Annotated[tuple[str, ...], Schema({"items": {"type": "string", "enum": list(KINDS)}})]
    enabled: bool
    description: str
    created_at: dt.datetime
    updated_at: dt.datetime


@attrs.frozen
class WebhookWithSecret(WebhookJson):
    secret: Annotated[
        str,
        Doc(
            "The HMAC-SHA256 signing key, shown only now. Verify each request's"
            " Relay-Webhook-Signature (v1=hex HMAC of '<Relay-Webhook-Timestamp>.<body>')."
        ),
    ]


@attrs.frozen
class WebhookList:
    items: Annotated[tuple[WebhookJson, ...], Doc("Oldest first.")]


@attrs.frozen
class WebhookTest:
    event_id: uuid.UUID
    delivery_id: uuid.UUID


@attrs.frozen
class WebhookAttemptJson:
    attempt: int
    status_code: Annotated[int | None, Doc("null: no HTTP answer (refused, timed out, address not allowed).")]
    error: str | None
    duration_ms: int
    created_at: dt.datetime


@attrs.frozen
class WebhookDeliveryJson:
    id: uuid.UUID
    event_id: Annotated[uuid.UUID, Doc("Also the Relay-Webhook-Id header: the idempotency key.")]
    endpoint_id: uuid.UUID
    type: str
    status: models.WebhookDeliveryStatus
    next_attempt_at: dt.datetime | None
    last_status: int | None
    last_error: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    body: Annotated[str, Doc("The exact JSON POSTed (and signed).")]
    attempts: tuple[WebhookAttemptJson, ...]


@attrs.frozen
class WebhookDeliveryPage:
    items: tuple[WebhookDeliveryJson, ...]
    next_cursor: str | None


SCHEMAS = {
    "Webhook": WebhookJson,
    "WebhookWithSecret": WebhookWithSecret,
    "WebhookList": WebhookList,
    "WebhookCreate": CREATE.schema(),
    "WebhookPatch": PATCH.schema(partial=True),
    "WebhookTest": WebhookTest,
    "WebhookDelivery": WebhookDeliveryJson,
    "WebhookDeliveryPage": WebhookDeliveryPage,
}


def to_json(endpoint: models.WebhookEndpoint) -> dict[str, Any]:
    return dump(WebhookJson, endpoint)


def _with_secret(endpoint: models.WebhookEndpoint) -> dict[str, Any]:
    return dump(WebhookWithSecret, endpoint)


def delivery_json(delivery: models.WebhookDelivery) -> dict[str, Any]:
    pending = delivery.status is models.WebhookDeliveryStatus.PENDING
    return dump(
        WebhookDeliveryJson, delivery,
        type=delivery.kind,
        next_attempt_at=delivery.next_attempt_at if pending else None,
        attempts=[dump(WebhookAttemptJson, a) for a in delivery.attempts],
    )


def event_kinds(fields: dict[str, Any]) -> tuple[models.EventKind, ...]:
    """The parsed ``events`` member as kinds (the console's forms use it too).

    Raises: Invalid naming ``events`` when it names none.
    """
    kinds = tuple(models.EventKind(k) for k in fields["events"])
    if not kinds:
        raise Invalid("events", "name at least one event kind: " + ", ".join(KINDS))
    return kinds


def _location(endpoint: models.WebhookEndpoint) -> dict[str, str]:
    return {"Location": f"/api/v1/accounts/{endpoint.account_id}/webhooks/{endpoint.id}"}


@blueprint.post("/accounts/<uuid:account_id>/webhooks")
@operation(
    "createWebhook", "Add an endpoint for the account's delivery events",
    {201: Reply("The endpoint and its signing secret, shown once.", "WebhookWithSecret")},
    body="WebhookCreate", errors=(404, 409),
)
async def create(account_id: uuid.UUID) -> Response:
    await visible(account_id)
    fields = await read_body(CREATE)
    endpoint = await storage().webhooks.create(
        account_id=account_id, url=fields["url"], events=event_kinds(fields),
        secret=webhooks.new_secret(), enabled=fields["enabled"],
        description=fields["description"], limit=MAX_PER_ACCOUNT,
    )
    if endpoint is None:
        raise too_many_endpoints()
    return json_response(_with_secret(endpoint), 201, _location(endpoint))


def too_many_endpoints() -> Problem:
    """The 409 for a create past ``MAX_PER_ACCOUNT`` (the API's and the console's)."""
    return Problem(
        409, f"this account has {MAX_PER_ACCOUNT} webhook endpoints, the most allowed;"
        " delete one, or subscribe an existing one to more events", kind="conflict",
    )


@blueprint.get("/accounts/<uuid:account_id>/webhooks")
@operation(
    "listWebhooks", "List the account's webhook endpoints",
    {200: Reply("The endpoints (without secrets).", "WebhookList")}, errors=(404,),
)
async def list_endpoints(account_id: uuid.UUID) -> Response:
    await visible(account_id)
    items = await storage().webhooks.list(account_id=account_id)
    return json_response(dump(WebhookList, items=[to_json(e) for e in items]))


async def _endpoint(account_id: uuid.UUID, webhook_id: uuid.UUID) -> models.WebhookEndpoint:
    await visible(account_id)
    endpoint = await storage().webhooks.get(webhook_id, account_id=account_id)
    if endpoint is None:
        raise not_found("webhook endpoint")
    return endpoint


@blueprint.get("/accounts/<uuid:account_id>/webhooks/<uuid:webhook_id>")
@operation("getWebhook", "Get a webhook endpoint", {200: Reply("The endpoint.", "Webhook")}, errors=(404,))
async def get(account_id: uuid.UUID, webhook_id: uuid.UUID) -> Response:
    return json_response(to_json(await _endpoint(account_id, webhook_id)))


@blueprint.patch("/accounts/<uuid:account_id>/webhooks/<uuid:webhook_id>")
@operation(
    "updateWebhook", "Change an endpoint's URL, events, enabled flag or description",
    {200: Reply("The endpoint.", "Webhook")}, body="WebhookPatch", errors=(404,),
)
async def patch(account_id: uuid.UUID, webhook_id: uuid.UUID) -> Response:
    current = await _endpoint(account_id, webhook_id)
    fields = await read_body(PATCH, partial=True)
    kinds = event_kinds(fields) if "events" in fields else current.events
    endpoint = await storage().webhooks.update(
        webhook_id, account_id=account_id, url=fields.get("url", current.url), events=kinds,
        enabled=fields.get("enabled", current.enabled),
        description=fields.get("description", current.description),
    )
    if endpoint is None:
        raise not_found("webhook endpoint")
    return json_response(to_json(endpoint))


@blueprint.delete("/accounts/<uuid:account_id>/webhooks/<uuid:webhook_id>")
@operation(
    "deleteWebhook", "Delete an endpoint and its pending deliveries", {204: Reply("Deleted.")}, errors=(404,),
)
async def delete(account_id: uuid.UUID, webhook_id: uuid.UUID) -> Response:
    await visible(account_id)
    if not await storage().webhooks.delete(webhook_id, account_id=account_id):
        raise not_found("webhook endpoint")
    return no_content()


@blueprint.post("/accounts/<uuid:account_id>/webhooks/<uuid:webhook_id>/rotate-secret")
@operation(
    "rotateWebhookSecret", "Replace the signing secret; attempts from now on use the new one",
    {200: Reply("The endpoint and its new secret, shown once.", "WebhookWithSecret")}, errors=(404,),
)
async def rotate_secret(account_id: uuid.UUID, webhook_id: uuid.UUID) -> Response:
    await visible(account_id)
    endpoint = await storage().webhooks.rotate_secret(
        webhook_id, account_id=account_id, secret=webhooks.new_secret()
    )
    if endpoint is None:
        raise not_found("webhook endpoint")
    return json_response(_with_secret(endpoint))


@blueprint.post("/accounts/<uuid:account_id>/webhooks/<uuid:webhook_id>/test")
@operation(
    "testWebhook", "Queue a webhook.test event for this endpoint",
    {202: Reply("Queued; follow it under deliveries.", "WebhookTest")}, errors=(404,),
)
async def send_test(account_id: uuid.UUID, webhook_id: uuid.UUID) -> Response:
    """Queue a ``webhook.test`` event for this endpoint; the worker delivers it like
    any other (watch it under ``deliveries``)."""
    endpoint = await _endpoint(account_id, webhook_id)
    event_id, delivery_id = await queue_test(endpoint)
    return json_response(dump(WebhookTest, event_id=event_id, delivery_id=delivery_id), 202)


async def queue_test(endpoint: models.WebhookEndpoint) -> tuple[uuid.UUID, uuid.UUID]:
    """Queue a ``webhook.test`` event for ``endpoint`` alone (the API's and the
    console's "send test event"); its (event id, delivery id)."""
    event = events.test_event(endpoint.account_id, endpoint.id, at=dt.datetime.now(dt.UTC))
    return event.id, await storage().webhooks.send_test(endpoint, event)


@blueprint.get("/accounts/<uuid:account_id>/webhooks/<uuid:webhook_id>/deliveries")
@operation(
    "listWebhookDeliveries", "The endpoint's deliveries, newest first, with every attempt",
    {200: Reply("A page of deliveries.", "WebhookDeliveryPage")}, query=DELIVERIES_QUERY, errors=(400, 404),
)
async def list_deliveries(account_id: uuid.UUID, webhook_id: uuid.UUID) -> Response:
    query = parse_query(request.args, names(DELIVERIES_QUERY))
    await _endpoint(account_id, webhook_id)
    status = None
    if "status" in query:
        choices = [str(s) for s in models.WebhookDeliveryStatus]
        if query["status"] not in choices:
            raise Invalid("status", f"must be one of {', '.join(choices)}", status=400)
        status = models.WebhookDeliveryStatus(query["status"])
    limit = page_size(query.get("limit"), default=DEFAULT_PAGE, maximum=MAX_PAGE)
    before = decode_cursor(query["cursor"]) if "cursor" in query else None
    found = await storage().webhooks.deliveries(
        webhook_id, account_id=account_id, status=status, before=before, limit=limit + 1,
    )
    page = found[:limit]
    next_cursor = encode_cursor(page[-1]) if len(found) > limit else None
    return json_response(
        dump(WebhookDeliveryPage, items=[delivery_json(d) for d in page], next_cursor=next_cursor)
    )
