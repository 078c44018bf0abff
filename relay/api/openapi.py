"""``GET /api/v1/openapi.json``: an OpenAPI 3.1 description of what the server does.

Strategy: request bodies come from the very ``validation.Object`` declarations the
views parse with, and per-type provider configs from the classes in ``relay/provider_configs.py``
(which the worker reads too), so the
document cannot promise a field the server refuses or miss one it accepts. Response
schemas are written here, next to each other, and are strict
(``unevaluatedProperties: false``): the test suite validates every response it sees
against them, so a response that grows a field — a hash, a secret — fails a test
instead of leaking quietly. A test also checks that the paths listed here are exactly
the routes the app serves.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response

from .. import provider_configs
from ..config import Config
from ..models import ProviderType, WebhookDeliveryStatus
from . import (
    accounts,
    dkim_keys,
    ip_credentials,
    messages,
    providers,
    routing_rules,
    suppressions,
    webhooks,
)
from .context import json_response, state

blueprint = Blueprint("openapi", __name__)

P = "/api/v1"
JSON = "application/json"
PROBLEM = "application/problem+json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


_TIME = {"type": "string", "format": "date-time"}
_ID = {"type": "string", "format": "uuid"}


def _strict(properties: dict[str, Any], description: str = "") -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "unevaluatedProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


_ACCOUNT = {
    "id": _ID,
    "name": {"type": "string"},
    "email": {"type": "string"},
    "allowed_domains": {"type": "array", "items": {"type": "string"}},
    "disabled": {"type": "boolean"},
    "messages_per_minute": {"type": ["integer", "null"]},
    "recipients_per_hour": {"type": ["integer", "null"]},
    "default_provider_id": _nullable(_ID),
    "api_key_prefix": {"type": "string", "description": "The visible start of the current key."},
    "created_at": _TIME,
    "updated_at": _TIME,
}

_SECRET_MARKER = {
    "type": "object",
    "properties": {"set": {"type": "boolean"}},
    "required": ["set"],
    "additionalProperties": False,
    "description": "A write-only secret: only whether it is set is shown.",
}


def _shown_config(kind: ProviderType) -> dict[str, Any]:
    """The config of one provider type as responses show it (secrets masked)."""
    return provider_configs.json_schema(provider_configs.CLASSES[kind], secret_shown_as=_SECRET_MARKER)


def _sent_config(kind: ProviderType) -> dict[str, Any]:
    """The config of one provider type as requests send it."""
    return provider_configs.json_schema(provider_configs.CLASSES[kind])


def _by_type(config_schema: Any) -> dict[str, Any]:
    """``oneOf`` over provider types, pairing ``type`` with that type's config schema."""
    return {"oneOf": [
        {
            "properties": {"type": {"const": str(kind)}, "config": config_schema(kind)},
            "required": ["type"],
        }
        for kind in ProviderType
    ]}


def _schemas() -> dict[str, Any]:
    provider_base = _strict({
        "id": _ID,
        "account_id": _ID,
        "name": {"type": "string"},
        "type": {"type": "string", "enum": [str(t) for t in ProviderType]},
        "config": {"type": "object"},
        "enabled": {"type": "boolean"},
        "created_at": _TIME,
        "updated_at": _TIME,
    })
    provider = {**provider_base, **_by_type(_shown_config)}
    attempt = _strict({
        "provider_id": _nullable(_ID),
        "provider_type": {"type": ["string", "null"]},
        "outcome": {"type": "string", "enum": ["delivered", "deferred", "failed"]},
        "response": {"type": "string"},
        "duration_ms": {"type": "integer"},
        "created_at": _TIME,
    })
    message = {
        "id": _ID,
        "account_id": _ID,
        "mail_from": {"type": "string"},
        "rcpt_to": {"type": "array", "items": {"type": "string"}},
        "size": {"type": "integer"},
        "status": {"type": "string", "enum": list(messages.STATUSES)},
        "attempts": {"type": "integer"},
        "next_attempt_at": _TIME,
        "message_id": {"type": ["string", "null"]},
        "client_ip": {"type": ["string", "null"]},
        "tls": {"type": "boolean"},
        "correlation_id": {"type": ["string", "null"]},
        "last_error": {"type": ["string", "null"]},
        "created_at": _TIME,
        "updated_at": _TIME,
    }
    check = {
        "type": "object",
        "properties": {
            "ok": {"type": "boolean"},
            "detail": {"type": "string"},
            "skipped": {"type": "boolean"},
            "not_after": _TIME,
        },
        "required": ["ok"],
        "additionalProperties": False,
    }
    checks = {
        "type": "object",
        "properties": {"database": check, "tls_certificate": check},
        "required": ["database", "tls_certificate"],
        "additionalProperties": False,
    }
    provider_create = {**providers.CREATE.schema(), **_by_type(_sent_config)}
    provider_replace = {**providers.REPLACE.schema(), **_by_type(_sent_config)}
    return {
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details; every error has this shape.",
            "properties": {
                "type": {"type": "string", "format": "uri"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "field": {"type": "string", "description": "The request member at fault."},
                "request_id": {"type": "string"},
                "checks": checks,
            },
            "required": ["type", "title", "status", "detail"],
            "additionalProperties": False,
        },
        "Account": _strict(_ACCOUNT),
        "AccountCreated": _strict(
            {**_ACCOUNT, "api_key": {"type": "string", "description": "Shown once; store it now."}}
        ),
        "AccountPage": _strict({
            "items": {"type": "array", "items": _ref("Account")},
            "next_after": {
                "type": ["string", "null"],
                "description": "Pass as ?after= for the next page; null on the last.",
            },
        }),
        "ApiKey": _strict({
            "api_key": {"type": "string", "description": "Shown once; the old key no longer works."},
            "api_key_prefix": {"type": "string"},
        }),
        "AccountCreate": accounts.CREATE.schema(),
        "AccountReplace": accounts.REPLACE.schema(),
        "AccountPatch": accounts.REPLACE.schema(partial=True),
        "IpCredential": _strict({
            "id": _ID,
            "account_id": _ID,
            "network": {"type": "string", "description": "Canonical CIDR, host bits cleared."},
            "description": {"type": "string"},
            "created_at": _TIME,
        }, "A network whose clients submit over SMTP as the account without AUTH."),
        "IpCredentialList": _strict({"items": {"type": "array", "items": _ref("IpCredential"),
                                               "description": "Oldest first."}}),
        "IpCredentialCreate": ip_credentials.CREATE.schema(),
        "DkimKey": _strict({
            "id": _ID,
            "account_id": _ID,
            "domain": {"type": "string"},
            "selector": {"type": "string"},
            "algorithm": {"type": "string", "enum": ["rsa-sha256", "ed25519-sha256"]},
            "enabled": {"type": "boolean", "description": "Whether it signs the domain's messages."},
            "created_at": _TIME,
            "updated_at": _TIME,
            "dns_record": _strict({
                "name": {"type": "string", "description": "<selector>._domainkey.<domain>"},
                "type": {"const": "TXT"},
                "value": {"type": "string", "description": "v=DKIM1; k=rsa|ed25519; p=<public key>"},
            }, "The TXT record to publish before enabling the key."),
        }, "A DKIM signing key of the account; the private key is never shown."),
        "DkimKeyList": _strict({"items": {"type": "array", "items": _ref("DkimKey"),
                                          "description": "Oldest first."}}),
        "DkimKeyCreate": dkim_keys.CREATE.schema(),
        "DkimKeyPatch": dkim_keys.PATCH.schema(),
        "Suppression": _strict({
            "id": _ID,
            "account_id": _ID,
            "address": {"type": "string", "description": "As first given; matched in any case."},
            "reason": {"type": "string"},
            "source": {"type": "string", "enum": list(suppressions.SOURCES),
                       "description": "bounce: a provider refused the address for good;"
                                      " manual: added through this API."},
            "message_id": _nullable(_ID),
            "response": {"type": ["string", "null"],
                         "description": "The remote's words, for a bounce."},
            "created_at": _TIME,
            "updated_at": _TIME,
            "expires_at": _nullable(_TIME),
        }, "An address the account does not send to: SMTP refuses it at RCPT TO (550 5.1.1)."),
        "SuppressionPage": _strict({
            "items": {"type": "array", "items": _ref("Suppression"), "description": "Newest first."},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "Pass as ?cursor= for the next (older) page; null on the last.",
            },
        }),
        "SuppressionCreate": suppressions.CREATE.schema(),
        "Provider": provider,
        "ProviderList": _strict({"items": {"type": "array", "items": _ref("Provider")}}),
        "ProviderCreate": provider_create,
        "ProviderReplace": provider_replace,
        "ProviderPatch": {
            **providers.REPLACE.schema(partial=True),
            "description": "config members merge into the stored config; null removes one."
            " Changing type requires the whole config.",
        },
        "RoutingRule": _strict({
            "id": _ID,
            "account_id": _ID,
            "name": {"type": "string"},
            "priority": {"type": "integer"},
            "conditions": routing_rules.CONDITIONS_SCHEMA,
            "provider_id": _ID,
            "fallback_provider_ids": {"type": "array", "items": _ID},
            "enabled": {"type": "boolean"},
            "created_at": _TIME,
            "updated_at": _TIME,
        }),
        "RoutingRuleList": _strict({
            "items": {"type": "array", "items": _ref("RoutingRule"),
                      "description": "Ordered by priority, lowest first."},
        }),
        "RoutingRuleCreate": routing_rules.CREATE.schema(),
        "RoutingRuleReplace": routing_rules.REPLACE.schema(),
        "RoutingRulePatch": routing_rules.REPLACE.schema(partial=True),
        "Message": _strict(message),
        "MessageDetail": _strict({**message, "delivery_attempts": {"type": "array", "items": attempt}}),
        "MessagePage": _strict({
            "items": {"type": "array", "items": _ref("Message")},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "Pass as ?cursor= for the next (older) page; null on the last.",
            },
        }),
        "ProviderHealth": _strict({
            "provider_id": _ID,
            "state": {"type": "string", "enum": ["closed", "open", "half_open"],
                      "description": "The delivery workers' circuit breaker: open means skipped."},
            "consecutive_failures": {"type": "integer"},
            "opened_until": _nullable(_TIME),
            "last_error": {"type": ["string", "null"]},
            "last_failure_at": _nullable(_TIME),
            "last_success_at": _nullable(_TIME),
        }),
        "Health": _strict({"status": {"const": "ok"}}),
        "Ready": _strict({"status": {"const": "ready"}, "checks": checks}),
        **_webhook_schemas(),
    }


def _webhook_schemas() -> dict[str, Any]:
    endpoint = {
        "id": _ID,
        "account_id": _ID,
        "url": {"type": "string"},
        "events": {"type": "array", "items": {"type": "string", "enum": list(webhooks.KINDS)}},
        "enabled": {"type": "boolean"},
        "description": {"type": "string"},
        "created_at": _TIME,
        "updated_at": _TIME,
    }
    attempt = _strict({
        "attempt": {"type": "integer"},
        "status_code": {"type": ["integer", "null"],
                        "description": "null: no HTTP answer (refused, timed out, address not allowed)."},
        "error": {"type": ["string", "null"]},
        "duration_ms": {"type": "integer"},
        "created_at": _TIME,
    })
    return {
        "Webhook": _strict(endpoint, "An endpoint that receives the account's delivery events."),
        "WebhookWithSecret": _strict({
            **endpoint,
            "secret": {"type": "string", "description": (
                "The HMAC-SHA256 signing key, shown only now. Verify each request's"
                " Relay-Webhook-Signature (v1=hex HMAC of '<Relay-Webhook-Timestamp>.<body>')."
            )},
        }),
        "WebhookList": _strict({"items": {"type": "array", "items": _ref("Webhook"),
                                          "description": "Oldest first."}}),
        "WebhookCreate": webhooks.CREATE.schema(),
        "WebhookPatch": webhooks.PATCH.schema(partial=True),
        "WebhookTest": _strict({"event_id": _ID, "delivery_id": _ID}),
        "WebhookDelivery": _strict({
            "id": _ID,
            "event_id": {**_ID, "description": "Also the Relay-Webhook-Id header: the idempotency key."},
            "endpoint_id": _ID,
            "type": {"type": "string"},
            "status": {"type": "string", "enum": [str(s) for s in WebhookDeliveryStatus]},
            "next_attempt_at": _nullable(_TIME),
            "last_status": {"type": ["integer", "null"]},
            "last_error": {"type": ["string", "null"]},
            "created_at": _TIME,
            "updated_at": _TIME,
            "body": {"type": "string", "description": "The exact JSON POSTed (and signed)."},
            "attempts": {"type": "array", "items": attempt},
        }),
        "WebhookDeliveryPage": _strict({
            "items": {"type": "array", "items": _ref("WebhookDelivery")},
            "next_cursor": {"type": ["string", "null"]},
        }),
    }


def _webhook_paths() -> dict[str, Any]:
    ids = [_path_id("id"), _path_id("webhook_id")]
    base = f"{P}/accounts/{{id}}/webhooks"
    return {
        base: {
            "post": _operation(
                "createWebhook", "Add an endpoint for the account's delivery events",
                _ok("201", "WebhookWithSecret", "The endpoint and its signing secret, shown once."),
                body="WebhookCreate", params=[_path_id("id")], errors=("404", "409"),
            ),
            "get": _operation(
                "listWebhooks", "List the account's webhook endpoints",
                _ok("200", "WebhookList", "The endpoints (without secrets)."),
                params=[_path_id("id")], errors=("404",),
            ),
        },
        f"{base}/{{webhook_id}}": {
            "get": _operation("getWebhook", "Get a webhook endpoint",
                              _ok("200", "Webhook", "The endpoint."), params=ids, errors=("404",)),
            "patch": _operation(
                "updateWebhook", "Change an endpoint's URL, events, enabled flag or description",
                _ok("200", "Webhook", "The endpoint."), body="WebhookPatch", params=ids,
                errors=("404",),
            ),
            "delete": _operation(
                "deleteWebhook", "Delete an endpoint and its pending deliveries",
                _ok("204", None, "Deleted."), params=ids, errors=("404",),
            ),
        },
        f"{base}/{{webhook_id}}/rotate-secret": {
            "post": _operation(
                "rotateWebhookSecret", "Replace the signing secret; attempts from now on use the new one",
                _ok("200", "WebhookWithSecret", "The endpoint and its new secret, shown once."),
                params=ids, errors=("404",),
            ),
        },
        f"{base}/{{webhook_id}}/test": {
            "post": _operation(
                "testWebhook", "Queue a webhook.test event for this endpoint",
                _ok("202", "WebhookTest", "Queued; follow it under deliveries."),
                params=ids, errors=("404",),
            ),
        },
        f"{base}/{{webhook_id}}/deliveries": {
            "get": _operation(
                "listWebhookDeliveries", "The endpoint's deliveries, newest first, with every attempt",
                _ok("200", "WebhookDeliveryPage", "A page of deliveries."),
                params=[
                    *ids,
                    _query("status", {"type": "string", "enum": [str(s) for s in WebhookDeliveryStatus]},
                           "Only this status."),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": webhooks.MAX_PAGE},
                           f"Page size, default {webhooks.DEFAULT_PAGE}."),
                    _query("cursor", {"type": "string"}, "next_cursor of the previous page."),
                ],
                errors=("400", "404"),
            ),
        },
    }


def _problem(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM: {"schema": _ref("Problem")}},
    }
    if headers:
        response["headers"] = headers
    return response


_INT_HEADER = {"schema": {"type": "integer"}}
_RESPONSES = {
    "BadRequest": _problem("Malformed JSON, a duplicate member, or a bad query parameter."),
    "Unauthorized": _problem(
        "No key, or a key that is unknown, revoked or rotated.",
        {"WWW-Authenticate": {"schema": {"type": "string"}}},
    ),
    "Forbidden": _problem("An operator-only action or field, or a disabled account."),
    "NotFound": _problem("No such object — or another tenant's, which is never revealed."),
    "Conflict": _problem(
        "Duplicate email, an IP credential network that overlaps an existing one (another"
        " account's is not named to a tenant) or one too many, or a message in a state"
        " that forbids the action; a DKIM selector already taken, one key too many, or"
        " dkim.key_encryption_key not configured."
    ),
    "TooLarge": _problem("The body exceeds api.max_body_size."),
    "UnsupportedMediaType": _problem("The body is not application/json."),
    "Unprocessable": _problem("A member breaks the schema; field names it."),
    "TooManyRequests": _problem(
        "The key's rate limit (api.rate_limit_per_minute) is spent, or the client"
        " address has failed to authenticate api.auth_failures_per_minute times in"
        " the last minute (then every key from it is refused unlooked-up).",
        {"Retry-After": _INT_HEADER},
    ),
    "Unavailable": _problem("The database is unreachable.", {"Retry-After": _INT_HEADER}),
    "ServerError": _problem("An unexpected failure; quote request_id."),
}


def _ok(status: str, schema: str | None, description: str) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    if schema is not None:
        response["content"] = {JSON: {"schema": _ref(schema)}}
    return {status: response}


def _operation(
    operation_id: str, summary: str, responses: dict[str, Any], *,
    body: str | None = None, params: list[dict[str, Any]] | None = None,
    errors: tuple[str, ...] = (), public: bool = False,
) -> dict[str, Any]:
    codes = {
        "400": "BadRequest", "401": "Unauthorized", "403": "Forbidden", "404": "NotFound",
        "409": "Conflict", "413": "TooLarge", "415": "UnsupportedMediaType",
        "422": "Unprocessable", "429": "TooManyRequests", "503": "Unavailable",
    }
    wanted = set(errors) | ({"503"} if not public else set())
    if not public:
        wanted |= {"401", "403", "429"}  # 403: a disabled account's key
    if body is not None:
        wanted |= {"400", "413", "415", "422"}
    all_responses = dict(responses)
    for code in sorted(wanted):
        all_responses[code] = {"$ref": f"#/components/responses/{codes[code]}"}
    all_responses["500"] = {"$ref": "#/components/responses/ServerError"}
    operation: dict[str, Any] = {
        "operationId": operation_id, "summary": summary, "responses": all_responses,
    }
    if body is not None:
        operation["requestBody"] = {
            "required": True, "content": {JSON: {"schema": _ref(body)}},
        }
    if params:
        operation["parameters"] = params
    if public:
        operation["security"] = []
    return operation


def _path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": _ID}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def _crud(
    collection: str, item: str, name: str, *, list_params: list[dict[str, Any]],
    create_errors: tuple[str, ...], change_errors: tuple[str, ...],
) -> dict[str, Any]:
    plural = f"{name}s"
    id_param = [_path_id("id")]
    return {
        f"{P}/{collection}": {
            "post": _operation(
                f"create{name}", f"Create a {item}", _ok("201", name, f"The new {item}."),
                body=f"{name}Create", errors=create_errors,
            ),
            "get": _operation(
                f"list{plural}", f"List {item}s", _ok("200", f"{name}List", f"The {item}s."),
                params=list_params, errors=("400",),
            ),
        },
        f"{P}/{collection}/{{id}}": {
            "get": _operation(f"get{name}", f"Get a {item}", _ok("200", name, f"The {item}."),
                              params=id_param, errors=("404",)),
            "put": _operation(
                f"replace{name}", f"Replace a {item}", _ok("200", name, f"The {item}."),
                body=f"{name}Replace", params=id_param, errors=("404", *change_errors),
            ),
            "patch": _operation(
                f"update{name}", f"Change some fields of a {item}", _ok("200", name, f"The {item}."),
                body=f"{name}Patch", params=id_param, errors=("404", *change_errors),
            ),
            "delete": _operation(
                f"delete{name}", f"Delete a {item}", _ok("204", None, "Deleted."),
                params=id_param, errors=("404",),
            ),
        },
    }


def _paths() -> dict[str, Any]:
    account_filter = [_query(
        "account_id", _ID, "Operators: only this account's. Account keys always see only their own.",
    )]
    paths: dict[str, Any] = {
        f"{P}/accounts": {
            "post": _operation(
                "createAccount", "Create an account (operator)",
                _ok("201", "AccountCreated", "The account and its API key, shown once."),
                body="AccountCreate", errors=("403", "409"),
            ),
            "get": _operation(
                "listAccounts", "List accounts (operator)",
                _ok("200", "AccountPage", "A page of accounts ordered by id."),
                params=[
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": accounts.MAX_PAGE},
                           "Page size, default 100."),
                    _query("after", _ID, "next_after of the previous page."),
                ],
                errors=("400", "403"),
            ),
        },
        f"{P}/accounts/{{id}}": {
            "get": _operation("getAccount", "Get an account", _ok("200", "Account", "The account."),
                              params=[_path_id("id")], errors=("404",)),
            "put": _operation(
                "replaceAccount", "Replace an account; operator-only fields must stay unchanged for an account key",
                _ok("200", "Account", "The account."), body="AccountReplace",
                params=[_path_id("id")], errors=("403", "404", "409"),
            ),
            "patch": _operation(
                "updateAccount", "Change some fields of an account",
                _ok("200", "Account", "The account."), body="AccountPatch",
                params=[_path_id("id")], errors=("403", "404", "409"),
            ),
            "delete": _operation(
                "deleteAccount", "Delete an account with its providers, rules and messages (operator)",
                _ok("204", None, "Deleted."), params=[_path_id("id")], errors=("403", "404"),
            ),
        },
        f"{P}/accounts/{{id}}/rotate-key": {
            "post": _operation(
                "rotateAccountKey", "Replace the account's API key; the old one stops at once",
                _ok("200", "ApiKey", "The new key, shown once."),
                params=[_path_id("id")], errors=("404",),
            ),
        },
        f"{P}/accounts/{{id}}/ip-credentials": {
            "post": _operation(
                "createIpCredential",
                "Let a network submit over SMTP as the account without AUTH",
                _ok("201", "IpCredential", "The credential, network in canonical form."),
                body="IpCredentialCreate", params=[_path_id("id")], errors=("404", "409"),
            ),
            "get": _operation(
                "listIpCredentials", "List the account's IP credentials",
                _ok("200", "IpCredentialList", "The account's IP credentials."),
                params=[_path_id("id")], errors=("404",),
            ),
        },
        f"{P}/accounts/{{id}}/ip-credentials/{{credential_id}}": {
            "get": _operation(
                "getIpCredential", "Get an IP credential",
                _ok("200", "IpCredential", "The credential."),
                params=[_path_id("id"), _path_id("credential_id")], errors=("404",),
            ),
            "delete": _operation(
                "deleteIpCredential", "Delete an IP credential; its network must AUTH from then on",
                _ok("204", None, "Deleted."),
                params=[_path_id("id"), _path_id("credential_id")], errors=("404",),
            ),
        },
        f"{P}/accounts/{{id}}/dkim-keys": {
            "post": _operation(
                "createDkimKey",
                "Generate (algorithm) or import (private_key) a DKIM key for one of the account's domains",
                _ok("201", "DkimKey", "The key, enabled, with the DNS record to publish."),
                body="DkimKeyCreate", params=[_path_id("id")], errors=("404", "409"),
            ),
            "get": _operation(
                "listDkimKeys", "List the account's DKIM keys",
                _ok("200", "DkimKeyList", "The account's DKIM keys."),
                params=[_path_id("id")], errors=("404",),
            ),
        },
        f"{P}/accounts/{{id}}/dkim-keys/{{key_id}}": {
            "get": _operation(
                "getDkimKey", "Get a DKIM key and its DNS record",
                _ok("200", "DkimKey", "The key."),
                params=[_path_id("id"), _path_id("key_id")], errors=("404",),
            ),
            "patch": _operation(
                "updateDkimKey", "Enable or disable a DKIM key (acts within dkim.key_cache_ttl seconds)",
                _ok("200", "DkimKey", "The key."), body="DkimKeyPatch",
                params=[_path_id("id"), _path_id("key_id")], errors=("404",),
            ),
            "delete": _operation(
                "deleteDkimKey", "Delete a DKIM key; it stops signing within dkim.key_cache_ttl seconds",
                _ok("204", None, "Deleted."),
                params=[_path_id("id"), _path_id("key_id")], errors=("404",),
            ),
        },
        f"{P}/accounts/{{id}}/suppressions": {
            "post": _operation(
                "createSuppression",
                "Stop sending to an address (an address already listed is refreshed: 200)",
                {**_ok("201", "Suppression", "The new entry."),
                 **_ok("200", "Suppression", "The address was listed already; its entry, refreshed.")},
                body="SuppressionCreate", params=[_path_id("id")], errors=("404",),
            ),
            "get": _operation(
                "listSuppressions", "List the account's suppressed addresses, newest first",
                _ok("200", "SuppressionPage", "A page of entries."),
                params=[
                    _path_id("id"),
                    _query("address", {"type": "string", "minLength": 1,
                                       "maxLength": suppressions.MAX_ADDRESS_FILTER},
                           "Only addresses containing this text (any case)."),
                    _query("source", {"type": "string", "enum": list(suppressions.SOURCES)},
                           "Only this source."),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": suppressions.MAX_PAGE},
                           f"Page size, default {suppressions.DEFAULT_PAGE}."),
                    _query("cursor", {"type": "string"}, "next_cursor of the previous page."),
                ],
                errors=("400", "404"),
            ),
        },
        f"{P}/accounts/{{id}}/suppressions/{{entry_id}}": {
            "get": _operation(
                "getSuppression", "Get a suppression entry",
                _ok("200", "Suppression", "The entry."),
                params=[_path_id("id"), _path_id("entry_id")], errors=("404",),
            ),
            "delete": _operation(
                "deleteSuppression", "Lift a suppression: the address may be sent to again",
                _ok("204", None, "Deleted."),
                params=[_path_id("id"), _path_id("entry_id")], errors=("404",),
            ),
        },
        **_crud("providers", "provider", "Provider", list_params=account_filter,
                create_errors=(), change_errors=()),
        f"{P}/providers/{{id}}/health": {
            "get": _operation(
                "getProviderHealth", "The provider's circuit-breaker state as the workers last saw it",
                _ok("200", "ProviderHealth", "Closed when it never failed."),
                params=[_path_id("id")], errors=("404",),
            ),
        },
        **_crud("routing-rules", "routing rule", "RoutingRule", list_params=account_filter,
                create_errors=(), change_errors=()),
        f"{P}/messages": {
            "get": _operation(
                "listMessages", "List messages, newest first",
                _ok("200", "MessagePage", "A page of messages."),
                params=[
                    _query("status", {"type": "string", "enum": list(messages.STATUSES)}, "Only this status."),
                    _query("since", _TIME, "Created at or after (with a time zone)."),
                    _query("until", _TIME, "Created before (with a time zone)."),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": messages.MAX_PAGE},
                           f"Page size, default {messages.DEFAULT_PAGE}."),
                    _query("cursor", {"type": "string"}, "next_cursor of the previous page."),
                    *account_filter,
                ],
                errors=("400",),
            ),
        },
        f"{P}/messages/{{id}}": {
            "get": _operation(
                "getMessage", "Get a message with its delivery attempts",
                _ok("200", "MessageDetail", "The message."), params=[_path_id("id")],
                errors=("404",),
            ),
            "delete": _operation(
                "deleteMessage", "Delete a queued, deferred or failed message",
                _ok("204", None, "Deleted."), params=[_path_id("id")], errors=("404", "409"),
            ),
        },
        f"{P}/messages/{{id}}/retry": {
            "post": _operation(
                "retryMessage", "Make a queued, deferred or failed message due now",
                _ok("200", "Message", "The message, queued."), params=[_path_id("id")],
                errors=("404", "409"),
            ),
        },
        **_webhook_paths(),
        f"{P}/openapi.json": {
            "get": _operation(
                "getOpenApi", "This document",
                {"200": {"description": "OpenAPI 3.1", "content": {JSON: {"schema": {"type": "object"}}}}},
                public=True,
            ),
        },
    }
    for prefix in ("", P):
        paths[f"{prefix}/healthz"] = {"get": _operation(
            f"healthz{'V1' if prefix else ''}", "Liveness: the process answers",
            _ok("200", "Health", "Alive."), public=True,
        )}
        ready = _operation(
            f"readyz{'V1' if prefix else ''}", "Readiness: database and TLS certificate",
            _ok("200", "Ready", "Ready."), public=True,
        )
        ready["responses"]["503"] = _problem("A check failed; checks names it.")
        paths[f"{prefix}/readyz"] = {"get": ready}
    return paths


def _metrics_path(config: Config) -> dict[str, Any]:
    operation = _operation(
        "metrics", "Prometheus metrics of this node (every process of it)",
        {"200": {
            "description": "Prometheus text exposition format 0.0.4",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }},
        public=not config.api.metrics_auth,
    )
    return {"get": operation}


def document(config: Config) -> dict[str, Any]:
    """The OpenAPI document for an app with this configuration."""
    schemas = _schemas()
    # The generated list schemas are named after _crud's convention.
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "relay admin API",
            "version": "1.0.0",
            "description": (
                "Tenants, upstream providers, routing rules and the message queue of a relay"
                " SMTP submission service. Authenticate with 'Authorization: Bearer <key>':"
                " an operator key (rk_admin_…) manages every account; an account key"
                " (rk_live_…) sees only its own account and its objects — any other id"
                " answers 404. Each key may make"
                f" {config.api.rate_limit_per_minute} requests per minute (429 with"
                " Retry-After beyond); an address that fails to authenticate"
                f" {config.api.auth_failures_per_minute} times a minute gets 429 for any"
                " key until its budget refills. Bodies are JSON objects of at most"
                f" {config.api.max_body_size} bytes; unknown members are refused. Every"
                " error is application/problem+json (RFC 9457). Every response carries"
                " X-Request-Id."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": {**_paths(), "/metrics": _metrics_path(config)},
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key."},
            },
            "schemas": schemas,
            "responses": _RESPONSES,
        },
    }


@blueprint.get("/openapi.json")
async def serve_document() -> Response:
    return json_response(state().openapi)
