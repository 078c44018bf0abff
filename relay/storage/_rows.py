"""Row → model mapping shared by the repositories."""

from __future__ import annotations

import datetime as dt
import json

from .. import models
from ._bridge import Record


def account(row: Record) -> models.Account:
    return models.Account(
        id=row["id"],
        name=row["name"],
        email=row["email"],
        password_hash=row["password_hash"],
        api_key_prefix=row["api_key_prefix"],
        allowed_domains=tuple(row["allowed_domains"]),
        disabled=row["disabled"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        messages_per_minute=row["messages_per_minute"],
        recipients_per_hour=row["recipients_per_hour"],
        default_provider_id=row["default_provider_id"],
    )


def admin_key(row: Record) -> models.AdminKey:
    return models.AdminKey(
        id=row["id"],
        name=row["name"],
        key_prefix=row["key_prefix"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


def provider(row: Record) -> models.Provider:
    return models.Provider(
        id=row["id"],
        account_id=row["account_id"],
        name=row["name"],
        type=models.ProviderType(row["type"]),
        config=row["config"],
        enabled=row["enabled"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def routing_rule(row: Record) -> models.RoutingRule:
    return models.RoutingRule(
        id=row["id"],
        account_id=row["account_id"],
        name=row["name"],
        priority=row["priority"],
        conditions=row["conditions"],
        provider_id=row["provider_id"],
        enabled=row["enabled"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        fallback_provider_ids=tuple(row["fallback_provider_ids"]),
    )


def message(row: Record) -> models.Message:
    keys = row.keys()
    return models.Message(
        id=row["id"],
        account_id=row["account_id"],
        mail_from=row["mail_from"],
        rcpt_to=tuple(row["rcpt_to"]),
        size=row["size"],
        status=models.MessageStatus(row["status"]),
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        locked_until=row["locked_until"],
        locked_by=row["locked_by"],
        message_id=row["message_id"],
        client_ip=row["client_ip"],
        tls=row["tls"],
        correlation_id=row["correlation_id"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        raw=row["raw"] if "raw" in keys else None,
    )


def delivery_log(row: Record) -> models.DeliveryLog:
    return models.DeliveryLog(
        id=row["id"],
        message_id=row["message_id"],
        provider_id=row["provider_id"],
        provider_type=row["provider_type"],
        outcome=models.DeliveryOutcome(row["outcome"]),
        response=row["response"],
        duration_ms=row["duration_ms"],
        created_at=row["created_at"],
    )


def ip_credential(row: Record) -> models.IpCredential:
    return models.IpCredential(
        id=row["id"],
        account_id=row["account_id"],
        network=row["network"],
        description=row["description"],
        created_at=row["created_at"],
    )


def suppression(row: Record) -> models.Suppression:
    return models.Suppression(
        id=row["id"],
        account_id=row["account_id"],
        address=row["address"],
        reason=row["reason"],
        source=models.SuppressionSource(row["source"]),
        message_id=row["message_id"],
        response=row["response"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        expires_at=row["expires_at"],
    )


def webhook_endpoint(row: Record, *, with_secret: bool = False) -> models.WebhookEndpoint:
    return models.WebhookEndpoint(
        id=row["id"],
        account_id=row["account_id"],
        url=row["url"],
        events=tuple(models.EventKind(e) for e in row["events"]),
        enabled=row["enabled"],
        description=row["description"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        secret=row["secret"] if with_secret else "",
    )


def webhook_delivery(row: Record) -> models.WebhookDelivery:
    attempts = row["attempt_rows"]
    if isinstance(attempts, str):  # json_agg arrives as text without a codec
        attempts = json.loads(attempts)
    return models.WebhookDelivery(
        id=row["id"],
        event_id=row["event_id"],
        endpoint_id=row["endpoint_id"],
        kind=models.EventKind(row["kind"]),
        body=row["body"],
        status=models.WebhookDeliveryStatus(row["status"]),
        attempts=tuple(
            models.WebhookAttempt(
                attempt=a["attempt"], status_code=a["status_code"], error=a["error"],
                duration_ms=a["duration_ms"], created_at=dt.datetime.fromisoformat(a["created_at"]),
            )
            for a in attempts
        ),
        next_attempt_at=row["next_attempt_at"],
        last_status=row["last_status"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def dkim_key(row: Record) -> models.DkimKey:
    return models.DkimKey(
        id=row["id"],
        account_id=row["account_id"],
        domain=row["domain"],
        selector=row["selector"],
        algorithm=row["algorithm"],
        private_key=bytes(row["private_key"]),
        public_key=row["public_key"],
        enabled=row["enabled"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
