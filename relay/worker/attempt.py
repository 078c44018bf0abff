"""One attempt at one message: route it, walk its providers, decide what happens next.

Strategy: the route gives providers in failover order. Each is tried with the
recipients still undelivered: delivered recipients are done, permanently refused ones
are dropped (and named), temporarily refused ones go on to the next provider. A
provider whose circuit is open, or that is disabled or deleted, is skipped with a
log row saying so. When every provider has had its turn:

* nobody left: SENT if anyone got the message, else FAILED;
* some recipients refused temporarily: DEFERRED by the retry policy (with the
  recipient list narrowed to them if others were done), or FAILED when out of
  attempts or past ``max_age``;
* nothing was tried because every circuit was open: DEFERRED until the first one
  closes, bounded by ``max_age`` only (no upstream refused anything).

Recipients on the account's suppression list when the message is claimed (suppressed
after it was queued) are not sent to: they count as refused for good, named in one
``AttemptLog`` row; a message left with none fails without a provider being tried.

Every provider tried, and every provider skipped, is one ``AttemptLog`` row with the
remote's words and the time it took. Recipients a provider refused for good because
of the address (``RecipientResult.hard_bounce``) go in ``Finish.suppress``, for the
account's suppression list.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Awaitable, Callable

import attrs
import trio

from .. import models
from ..models import DeliveryOutcome, MessageStatus
from ..storage import AttemptLog, Bounce, Finish
from .breaker import Breakers
from .providers import Envelope, Result, Verdict
from .providers.base import clip
from .retry import GiveUp, Retry, RetryPolicy
from .router import AccountRouting, NoRoute, choose

_LOG_OUTCOME = {
    Verdict.DELIVERED: DeliveryOutcome.DELIVERED,
    Verdict.TEMPORARY: DeliveryOutcome.DEFERRED,
    Verdict.PERMANENT: DeliveryOutcome.FAILED,
}


@attrs.frozen
class Outcome:
    """What the worker writes for one claimed message."""

    finish: Finish
    #: Set when a partly delivered message is deferred: retry only these recipients.
    narrow_to: tuple[str, ...] | None = None


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def summarize(result: Result) -> str:
    """The remote's words, plus which recipients fared differently from the message."""
    if len({r.verdict for r in result.recipients}) <= 1:
        return result.response
    parts = [result.response] + [
        f"{r.recipient}: {r.verdict.value} {r.response}"
        for r in result.recipients
        if r.verdict is not Verdict.DELIVERED
    ]
    return clip("; ".join(parts))


@attrs.define
class _Tally:
    """What one attempt has learnt so far, provider by provider."""

    #: Recipients no provider has delivered to or refused for good yet.
    remaining: tuple[str, ...]
    delivered: list[str] = attrs.field(factory=list)
    #: "recipient (the remote's words)" for each permanent refusal.
    refused: list[str] = attrs.field(factory=list)
    bounced: list[Bounce] = attrs.field(factory=list)
    logs: list[AttemptLog] = attrs.field(factory=list)
    #: The remote's words for the last temporary refusal, when recipients remain.
    last_temporary: str | None = None
    #: When each open circuit that made us skip a provider closes again.
    reopen: list[dt.datetime] = attrs.field(factory=list)
    #: Some provider was really tried (not every one skipped).
    tried: bool = False
    #: A message-level permanent refusal: no failover.
    stopped: bool = False

    def record(
        self, message: models.Message, provider_id: uuid.UUID, provider: models.Provider, result: Result,
        elapsed: int,
    ) -> None:
        """One provider's result: its log row, and each recipient's fate."""
        self.logs.append(AttemptLog(
            _LOG_OUTCOME[result.verdict], summarize(result), elapsed, provider_id,
            str(provider.type),
        ))
        self.delivered += result.recipients_with(Verdict.DELIVERED)
        self.refused += [
            f"{r.recipient} ({r.response})" for r in result.recipients
            if r.verdict is Verdict.PERMANENT
        ]
        # Refused for good because of the address: suppressed with the verdict.
        self.bounced += [
            Bounce(message.account_id, r.recipient, r.response, message.id, provider_id,
                   str(provider.type), message.correlation_id)
            for r in result.recipients if r.hard_bounce and r.verdict is Verdict.PERMANENT
        ]
        temporary = set(result.recipients_with(Verdict.TEMPORARY))
        self.remaining = tuple(r for r in self.remaining if r in temporary)
        if self.remaining:
            self.last_temporary = result.response
        # A message-level permanent refusal is not failed over: the next
        # provider would refuse the same message for the same reason.
        self.stopped = result.verdict is Verdict.PERMANENT and not self.delivered


class Attempt:
    """Runs attempts with the worker's shared parts.

    ``send(provider, envelope)`` delivers through that provider within the worker's
    limits and time limit and never raises for a delivery problem.
    """

    def __init__(
        self,
        *,
        send: Callable[[models.Provider, Envelope], Awaitable[Result]],
        breakers: Breakers,
        policy: RetryPolicy,
        rng: random.Random,
        now: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self._send = send
        self._breakers = breakers
        self._policy = policy
        self._rng = rng
        self._now = now

    async def run(
        self, message: models.Message, routing: AccountRouting, suppressed: frozenset[str] = frozenset()
    ) -> Outcome:
        """``suppressed``: recipients of the message on the account's suppression list."""
        decision = choose(routing, message)
        if isinstance(decision, NoRoute):
            log = AttemptLog(DeliveryOutcome.FAILED, decision.reason, 0)
            return Outcome(Finish(message.id, MessageStatus.FAILED, (log,), decision.reason))

        recipients = tuple(dict.fromkeys(message.rcpt_to))
        tally = _Tally(remaining=tuple(r for r in recipients if r not in suppressed))
        if len(tally.remaining) < len(recipients):
            listed = [r for r in recipients if r in suppressed]
            tally.refused += [f"{r} (on the account's suppression list)" for r in listed]
            tally.logs.append(AttemptLog(
                DeliveryOutcome.FAILED, clip("not sent, on the account's suppression list: " + ", ".join(listed)), 0,
            ))
        for provider_id in decision.provider_ids:
            if not tally.remaining or tally.stopped:
                break
            provider = routing.providers.get(provider_id)
            if self._skipped(provider_id, provider, tally):
                continue
            assert provider is not None
            tally.tried = True
            envelope = Envelope(message.id, message.mail_from, tally.remaining, message.raw or b"")
            started = trio.current_time()
            result = await self._send(provider, envelope)
            elapsed = int((trio.current_time() - started) * 1000)
            if result.verdict is Verdict.TEMPORARY:
                self._breakers.failure(provider_id, self._now(), result.response)
            else:
                self._breakers.success(provider_id, self._now())
            tally.record(message, provider_id, provider, result, elapsed)
        outcome = self._decide(message, tally)
        if tally.bounced:
            outcome = attrs.evolve(outcome, finish=attrs.evolve(outcome.finish, suppress=tuple(tally.bounced)))
        return outcome

    def _skipped(self, provider_id: uuid.UUID, provider: models.Provider | None, tally: _Tally) -> bool:
        """Whether the provider is passed over (deleted, disabled, circuit open); its
        log row says which, and an open circuit's reopening time is noted."""
        if provider is None or not provider.enabled:
            why = "deleted" if provider is None else "disabled"
            tally.logs.append(AttemptLog(
                DeliveryOutcome.DEFERRED, f"skipped: provider {why}", 0, provider_id,
                None if provider is None else str(provider.type),
            ))
            return True
        if not self._breakers.allow(provider_id, self._now()):
            until = self._breakers.reopens_at(provider_id)
            if until is not None:
                tally.reopen.append(until)
            tally.logs.append(AttemptLog(
                DeliveryOutcome.DEFERRED,
                f"skipped: {self._breakers.describe(provider_id)}", 0, provider_id,
                str(provider.type),
            ))
            return True
        return False

    def _decide(self, message: models.Message, tally: _Tally) -> Outcome:
        remaining, delivered, refused, logs = tally.remaining, tally.delivered, tally.refused, tally.logs
        last_temporary, tried, reopen = tally.last_temporary, tally.tried, tally.reopen
        refused_text = "refused: " + "; ".join(refused) if refused else None
        if not remaining:
            if delivered:
                return Outcome(Finish(message.id, MessageStatus.SENT, tuple(logs), refused_text))
            return Outcome(Finish(message.id, MessageStatus.FAILED, tuple(logs), clip(refused_text or "refused")))
        now = self._now()
        if not tried and reopen:
            plan = self._policy.not_before(min(reopen), created_at=message.created_at, now=now)
            error = "every provider skipped: circuits open"
        elif not tried:
            plan = self._policy.after_temporary_failure(
                attempts=message.attempts, created_at=message.created_at, now=now, rng=self._rng
            )
            error = "no usable provider: every provider on the route is disabled or deleted"
        else:
            plan = self._policy.after_temporary_failure(
                attempts=message.attempts, created_at=message.created_at, now=now, rng=self._rng
            )
            error = last_temporary or "temporary failure"
        partly = bool(delivered or refused)
        if isinstance(plan, Retry):
            return Outcome(
                Finish(message.id, MessageStatus.DEFERRED, tuple(logs), clip(error), plan.at),
                narrow_to=remaining if partly else None,
            )
        assert isinstance(plan, GiveUp)
        reason = clip(f"{plan.reason}; last error: {error}")
        logs.append(AttemptLog(DeliveryOutcome.FAILED, reason, 0))
        status = MessageStatus.SENT if delivered else MessageStatus.FAILED
        if delivered:
            reason = clip(f"not delivered to {', '.join(remaining)}: {reason}")
        return Outcome(Finish(message.id, status, tuple(logs), reason))
