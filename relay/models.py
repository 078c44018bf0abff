"""Domain values shared by every service: what a row of each table means.

Every model is a frozen attrs class; storage builds them from rows and the services
pass them around. Secrets (password hashes, key hashes, raw provider credentials) are
``repr=False`` so that a logged or printed model never shows them.
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
import uuid
from typing import Any

import attrs

__all__ = [
    "Account",
    "AdminKey",
    "DeliveryLog",
    "DeliveryOutcome",
    "DkimKey",
    "Event",
    "EventKind",
    "IpCredential",
    "Message",
    "MessageStatus",
    "NewMessage",
    "Provider",
    "ProviderType",
    "RoutingRule",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookDeliveryStatus",
    "WebhookEndpoint",
]


class MessageStatus(enum.StrEnum):
    """Where a message is in the queue."""

    #: Accepted over SMTP, never attempted.
    QUEUED = "queued"
    #: Claimed by a worker until ``locked_until``.
    SENDING = "sending"
    #: An upstream accepted it; final.
    SENT = "sent"
    #: The last attempt failed temporarily; retried at ``next_attempt_at``.
    DEFERRED = "deferred"
    #: Permanently refused, or out of attempts; final.
    FAILED = "failed"


class DeliveryOutcome(enum.StrEnum):
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    FAILED = "failed"


class ProviderType(enum.StrEnum):
    SMTP = "smtp"
    SENDGRID = "sendgrid"
    MAILGUN = "mailgun"
    SES = "ses"
    POSTMARK = "postmark"


@attrs.frozen
class Account:
    id: uuid.UUID
    name: str
    email: str
    password_hash: str = attrs.field(repr=False)
    api_key_prefix: str
    allowed_domains: tuple[str, ...]
    disabled: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    #: None: the configured default (smtp.account_messages_per_minute) applies; 0: unlimited.
    messages_per_minute: int | None = None
    #: None: the configured default (smtp.account_recipients_per_hour) applies; 0: unlimited.
    recipients_per_hour: int | None = None
    #: Used when no routing rule matches.
    default_provider_id: uuid.UUID | None = None


@attrs.frozen
class IpCredential:
    """A network from which an account submits over SMTP without AUTH.

    Networks never overlap, across all accounts (an exclusion constraint), so a client
    address belongs to at most one account.
    """

    id: uuid.UUID
    account_id: uuid.UUID
    #: Canonical (host bits cleared), at least relay.networks.MIN_PREFIX long.
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    description: str
    created_at: dt.datetime


class SuppressionSource(enum.StrEnum):
    """Why an address is on an account's suppression list."""

    #: A provider refused the address for good (unknown or disabled mailbox).
    BOUNCE = "bounce"
    #: Added through the API.
    MANUAL = "manual"


@attrs.frozen
class Suppression:
    """An address an account does not send to: SMTP refuses it at RCPT TO.

    One per address and account, compared case-insensitively; an entry whose
    ``expires_at`` has passed counts as absent.
    """

    id: uuid.UUID
    account_id: uuid.UUID
    #: As first given (not case-folded).
    address: str
    reason: str
    source: SuppressionSource
    #: The message whose bounce added (or last refreshed) it; it may have been purged.
    message_id: uuid.UUID | None
    #: The remote's words for a bounce.
    response: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    expires_at: dt.datetime | None


@attrs.frozen
class DkimKey:
    """A DKIM signing key of an account for one sender domain (``relay.dkim``).

    ``(domain, selector)`` is unique across accounts: it names the key in DNS.
    """

    id: uuid.UUID
    account_id: uuid.UUID
    #: Lower case, one of the account's allowed domains when it was made.
    domain: str
    selector: str
    #: ``rsa-sha256`` or ``ed25519-sha256``.
    algorithm: str
    #: Encrypted under dkim.key_encryption_key (``relay.dkim.KeyEncryption``).
    private_key: bytes = attrs.field(repr=False)
    #: The base64 of the DNS record's p= tag.
    public_key: str
    enabled: bool
    created_at: dt.datetime
    updated_at: dt.datetime


@attrs.frozen
class AdminKey:
    id: uuid.UUID
    name: str
    key_prefix: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


@attrs.frozen
class Provider:
    id: uuid.UUID
    account_id: uuid.UUID
    name: str
    type: ProviderType
    #: Type-specific settings, credentials included: never log or return it whole.
    config: dict[str, Any] = attrs.field(repr=False)
    enabled: bool
    created_at: dt.datetime
    updated_at: dt.datetime


@attrs.frozen
class RoutingRule:
    id: uuid.UUID
    account_id: uuid.UUID
    name: str
    priority: int
    conditions: dict[str, Any]
    provider_id: uuid.UUID
    enabled: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    #: Tried in order after ``provider_id`` when it fails temporarily or is unreachable.
    fallback_provider_ids: tuple[uuid.UUID, ...] = ()

    @property
    def provider_ids(self) -> tuple[uuid.UUID, ...]:
        """Every provider this rule may use, in failover order."""
        return (self.provider_id, *self.fallback_provider_ids)


@attrs.frozen
class NewMessage:
    """A message accepted over SMTP, about to be stored."""

    account_id: uuid.UUID
    mail_from: str
    rcpt_to: tuple[str, ...]
    raw: bytes = attrs.field(repr=False)
    message_id: str | None = None
    client_ip: str | None = None
    tls: bool = False
    correlation_id: str | None = None
    #: Chosen before the insert so the 250 reply can name it.
    id: uuid.UUID = attrs.field(factory=uuid.uuid4)

    @property
    def size(self) -> int:
        return len(self.raw)


@attrs.frozen
class Message:
    id: uuid.UUID
    account_id: uuid.UUID
    mail_from: str
    rcpt_to: tuple[str, ...]
    size: int
    status: MessageStatus
    attempts: int
    next_attempt_at: dt.datetime
    locked_until: dt.datetime | None
    locked_by: str | None
    message_id: str | None
    client_ip: str | None
    tls: bool
    correlation_id: str | None
    last_error: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    #: Present when the query asked for the body (claims do, listings don't).
    raw: bytes | None = attrs.field(default=None, repr=False)


@attrs.frozen
class DeliveryLog:
    id: int
    message_id: uuid.UUID
    provider_id: uuid.UUID | None
    provider_type: str | None
    outcome: DeliveryOutcome
    response: str
    duration_ms: int
    created_at: dt.datetime


class EventKind(enum.StrEnum):
    """What a webhook event reports (its ``type``)."""

    #: Accepted over SMTP and committed (the 250 was or is about to be sent).
    MESSAGE_QUEUED = "message.queued"
    #: One provider attempt delivered the message (to some or all recipients).
    MESSAGE_SENT = "message.sent"
    #: An attempt failed temporarily; ``next_attempt_at`` says when the next one is.
    MESSAGE_DEFERRED = "message.deferred"
    #: Refused for good, or out of attempts; final.
    MESSAGE_FAILED = "message.failed"
    #: An address was put on the account's suppression list.
    RECIPIENT_SUPPRESSED = "recipient.suppressed"
    #: Sent only by the API's "send a test event" call, to that one endpoint.
    WEBHOOK_TEST = "webhook.test"


@attrs.frozen
class Event:
    """A webhook event as stored in the outbox.

    ``body`` is the exact JSON text every endpoint receives and the signature covers;
    it is built once (``relay.events``) so a redelivery sends the same octets.
    """

    id: uuid.UUID
    account_id: uuid.UUID
    kind: EventKind
    body: str


@attrs.frozen
class WebhookEndpoint:
    id: uuid.UUID
    account_id: uuid.UUID
    url: str
    #: The event kinds it wants.
    events: tuple[EventKind, ...]
    enabled: bool
    description: str
    created_at: dt.datetime
    updated_at: dt.datetime
    #: The HMAC key; only the API's create and rotate answers ever show it.
    secret: str = attrs.field(repr=False, default="")


class WebhookDeliveryStatus(enum.StrEnum):
    #: Waiting for its first or next attempt (``next_attempt_at``).
    PENDING = "pending"
    #: The endpoint answered 2xx; final.
    DELIVERED = "delivered"
    #: Given up (a 4xx other than 408/429, or a day of failures); final.
    FAILED = "failed"


@attrs.frozen
class WebhookAttempt:
    attempt: int
    #: None: no HTTP answer (refused, timed out, blocked by the address policy).
    status_code: int | None
    error: str | None
    duration_ms: int
    created_at: dt.datetime


@attrs.frozen
class WebhookDelivery:
    """One event for one endpoint, with every attempt made."""

    id: uuid.UUID
    event_id: uuid.UUID
    endpoint_id: uuid.UUID
    kind: EventKind
    body: str
    status: WebhookDeliveryStatus
    attempts: tuple[WebhookAttempt, ...]
    next_attempt_at: dt.datetime
    last_status: int | None
    last_error: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
