"""The one interface every provider module implements, and the values it returns.

A provider is told the envelope (reverse path, the recipients still to deliver) and
the message bytes as queued, and answers with a ``Result``: delivered, temporary
failure or permanent failure, always with the remote's own words, plus one
``RecipientResult`` per recipient when the upstream says (SMTP does; the HTTP APIs
answer for the whole request, so every recipient shares the request's verdict).

Drivers never raise for a delivery problem: timeouts, refused connections and
HTTP errors all become a ``Result``. What they may raise is ``ProviderConfigError``
when built, because a provider whose settings are unusable is the operator's problem,
not the message's.
"""

from __future__ import annotations

import enum
import uuid
from typing import Any, Protocol, TypeVar

import attrs

from ... import models, provider_configs

_C = TypeVar("_C")


class Verdict(enum.Enum):
    """What the upstream said about a message or one recipient."""

    #: Accepted for delivery; final.
    DELIVERED = "delivered"
    #: Refused for now (4xx SMTP, 429/5xx HTTP, timeouts, unreachable): retry later
    #: or at the next provider.
    TEMPORARY = "temporary"
    #: Refused for good (5xx SMTP, 4xx HTTP other than 429): no retry.
    PERMANENT = "permanent"


class ProviderConfigError(Exception):
    """A provider's settings cannot be used; the message names the key and what to do."""


def settings(provider: models.Provider, cls: type[_C]) -> _C:
    """The provider's stored config as its class (``relay/provider_configs.py``), defaults applied.

    A key stored as ``null`` or ``""`` counts as not set (configs written before the API
    checked them).

    Raises:
        ProviderConfigError: naming the key to fix.
    """
    given: dict[str, Any] = {k: v for k, v in provider.config.items() if v is not None and v != ""}
    try:
        return provider_configs.structure(cls, given)  # type: ignore[no-any-return]
    except provider_configs.InvalidConfig as exc:
        # "config.host is required", "config.port: expected a whole number, got a string"
        sep = " " if exc.problem.startswith(("is ", "must ")) else ": "
        raise ProviderConfigError(
            f"{provider.type} provider {provider.name!r}: config.{exc.field}{sep}{exc.problem};"
            " set it on the provider through the API"
        ) from None


@attrs.frozen
class Envelope:
    """What the SMTP transaction accepted: authoritative over any header."""

    message_id: uuid.UUID
    mail_from: str
    rcpt_to: tuple[str, ...]
    raw: bytes = attrs.field(repr=False)


@attrs.frozen
class RecipientResult:
    recipient: str
    verdict: Verdict
    response: str
    #: The upstream refused this address for good *because of the address* (unknown
    #: or disabled mailbox), as opposed to a policy, content or session problem: the
    #: worker puts it on the account's suppression list. Set only where a driver's
    #: answer is about the address (``smtp.address_refused``, Postmark's 406/300).
    hard_bounce: bool = False


@attrs.frozen
class Result:
    """A provider's answer for one envelope.

    ``verdict`` is the message-level answer: DELIVERED when at least one recipient
    was accepted (look at ``recipients`` for the others), else the worst-for-retry
    of the refusals (TEMPORARY if any recipient may be retried).
    """

    verdict: Verdict
    #: The remote's words (status line and error text), or ours for a timeout.
    response: str
    recipients: tuple[RecipientResult, ...] = ()
    #: True when the upstream was never reached (connect error, timeout before a
    #: reply): counts against the provider's breaker and moves on to the next one.
    unreachable: bool = False

    @classmethod
    def whole(
        cls, verdict: Verdict, response: str, rcpt_to: tuple[str, ...], *, unreachable: bool = False
    ) -> Result:
        """Every recipient shares one answer (the HTTP APIs, a failed connection)."""
        return cls(
            verdict=verdict,
            response=response,
            recipients=tuple(RecipientResult(r, verdict, response) for r in rcpt_to),
            unreachable=unreachable,
        )

    @classmethod
    def combine(cls, results: list[Result]) -> Result:
        """One answer for a message sent as several requests (recipient-limit chunks)."""
        if len(results) == 1:
            return results[0]
        recipients = tuple(r for result in results for r in result.recipients)
        verdicts = {r.verdict for r in recipients} or {results[0].verdict}
        verdict = next(v for v in Verdict if v in verdicts)  # DELIVERED, TEMPORARY, PERMANENT
        responses = list(dict.fromkeys(result.response for result in results))
        return cls(
            verdict=verdict,
            response=clip(" | ".join(responses)),
            recipients=recipients,
            unreachable=all(result.unreachable for result in results),
        )

    def recipients_with(self, verdict: Verdict) -> tuple[str, ...]:
        return tuple(r.recipient for r in self.recipients if r.verdict is verdict)


class Driver(Protocol):
    """One configured upstream. Built from a ``models.Provider`` by ``providers.build``."""

    async def deliver(self, envelope: Envelope) -> Result:
        """Send one message; never raises for a delivery problem.

        On cancellation (the caller's time limit or shutdown) the attempt is abandoned
        and whatever connection it held is closed; the caller treats it as a timeout.
        """
        ...

    async def aclose(self) -> None:
        """Close any connection kept for reuse."""
        ...


def clip(text: str, limit: int = 2000) -> str:
    """Remote responses go into delivery logs; keep them readable and bounded."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
