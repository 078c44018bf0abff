"""Webhook events: what each one says, built once as the exact JSON an endpoint gets.

Strategy: an event is built where the state change it reports is decided (the SMTP
service for ``message.queued``, the worker for a verdict, the suppression list for
``recipient.suppressed``) and handed to storage with that change, which writes it to
the outbox in the same transaction (``relay.storage.webhooks.record_events``): the
event exists if and only if the change committed. Its ``body`` is serialised here,
once, so every delivery and redelivery of it sends the same octets and the same
``id`` (the receiver's idempotency key).

Every body has the same envelope::

    {"id": "<event uuid>", "type": "message.sent", "created_at": "<RFC 3339>",
     "account_id": "<uuid>", "correlation_id": "<SMTP session id or null>",
     "data": {...}}

and every message event's ``data`` the same members (null where they do not apply),
so a receiver can read any of them with one schema: ``message_id`` (the queue id),
``message_id_header``, ``envelope`` (``mail_from``, ``rcpt_to``), ``provider``
(``id``, ``type``), ``response`` (the remote's words), ``attempt``,
``next_attempt_at``, ``queued_at``.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from .models import Event, EventKind

__all__ = ["build", "message_event", "recipient_suppressed", "test_event"]


def _time(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def build(
    kind: EventKind,
    account_id: uuid.UUID,
    data: Mapping[str, Any],
    *,
    at: dt.datetime,
    correlation_id: str | None = None,
    event_id: uuid.UUID | None = None,
) -> Event:
    """One event with its body serialised (compact, keys in a fixed order)."""
    event_id = event_id or uuid.uuid4()
    body = json.dumps(
        {
            "id": str(event_id),
            "type": str(kind),
            "created_at": _time(at),
            "account_id": str(account_id),
            "correlation_id": correlation_id,
            "data": data,
        },
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return Event(id=event_id, account_id=account_id, kind=kind, body=body)


def message_event(
    kind: EventKind,
    *,
    message_id: uuid.UUID,
    account_id: uuid.UUID,
    mail_from: str,
    rcpt_to: Sequence[str],
    at: dt.datetime,
    queued_at: dt.datetime | None = None,
    message_id_header: str | None = None,
    correlation_id: str | None = None,
    provider_id: uuid.UUID | None = None,
    provider_type: str | None = None,
    response: str | None = None,
    attempt: int | None = None,
    next_attempt_at: dt.datetime | None = None,
) -> Event:
    """A ``message.*`` event; ``rcpt_to`` is who it concerns (for ``message.sent``,
    the recipients that provider accepted)."""
    provider = (
        None if provider_id is None and provider_type is None
        else {"id": None if provider_id is None else str(provider_id), "type": provider_type}
    )
    data = {
        "message_id": str(message_id),
        "message_id_header": message_id_header,
        "envelope": {"mail_from": mail_from, "rcpt_to": list(rcpt_to)},
        "provider": provider,
        "response": response,
        "attempt": attempt,
        "next_attempt_at": _time(next_attempt_at),
        "queued_at": _time(queued_at),
    }
    return build(kind, account_id, data, at=at, correlation_id=correlation_id)


def recipient_suppressed(
    *,
    account_id: uuid.UUID,
    address: str,
    reason: str,
    source: str,
    at: dt.datetime,
    expires_at: dt.datetime | None = None,
    message_id: uuid.UUID | None = None,
    provider_id: uuid.UUID | None = None,
    provider_type: str | None = None,
    response: str | None = None,
    correlation_id: str | None = None,
) -> Event:
    """``recipient.suppressed``: ``source`` is ``bounce`` (a provider refused the
    address for good; ``message_id``, ``provider`` and ``response`` say where) or
    ``manual`` (added through the API)."""
    provider = (
        None if provider_id is None and provider_type is None
        else {"id": None if provider_id is None else str(provider_id), "type": provider_type}
    )
    data = {
        "address": address,
        "reason": reason,
        "source": source,
        "expires_at": _time(expires_at),
        "message_id": None if message_id is None else str(message_id),
        "provider": provider,
        "response": response,
    }
    return build(EventKind.RECIPIENT_SUPPRESSED, account_id, data, at=at,
                 correlation_id=correlation_id)


def test_event(account_id: uuid.UUID, endpoint_id: uuid.UUID, *, at: dt.datetime) -> Event:
    """``webhook.test``: what the API's "send a test event" call delivers."""
    data = {"endpoint_id": str(endpoint_id), "message": "a test event from relay"}
    return build(EventKind.WEBHOOK_TEST, account_id, data, at=at)
