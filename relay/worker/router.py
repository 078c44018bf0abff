"""Which providers a message goes to: the account's rules, then its default provider.

Strategy: an account's routing (enabled rules in priority order with their conditions
already parsed, its default provider, its providers) is loaded in three storage
crossings and kept for ``ttl`` seconds, so a batch of messages from one account costs
one load, and a rule changed through the API takes effect within ``ttl``. Matching
itself is ``relay.conditions`` — the same module the API validates rules with — and
is a pure function of the message's facts.

A rule whose stored conditions no longer parse (written before a validation change)
is skipped, and the skip is named in the reason if nothing else matches.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

import attrs
import trio

from .. import conditions, models
from ..storage import Storage


@attrs.frozen
class Route:
    """Providers to try, in failover order, and why they were chosen."""

    provider_ids: tuple[uuid.UUID, ...]
    reason: str


@attrs.frozen
class NoRoute:
    reason: str


@attrs.frozen
class ParsedRule:
    rule: models.RoutingRule
    #: ``None`` when the stored conditions did not parse; ``error`` says why.
    condition: conditions.Condition | None
    error: str | None = None


@attrs.frozen
class AccountRouting:
    account_id: uuid.UUID
    rules: tuple[ParsedRule, ...]
    default_provider_id: uuid.UUID | None
    providers: dict[uuid.UUID, models.Provider] = attrs.field(repr=False)


def parse_rules(rules: Sequence[models.RoutingRule]) -> tuple[ParsedRule, ...]:
    """Enabled rules in evaluation order (priority; ties keep storage's order: oldest first)."""
    parsed = []
    for rule in sorted((r for r in rules if r.enabled), key=lambda r: r.priority):
        try:
            parsed.append(ParsedRule(rule, conditions.parse(rule.conditions, root="conditions")))
        except conditions.ConditionError as exc:
            parsed.append(ParsedRule(rule, None, str(exc)))
    return tuple(parsed)


def facts(message: models.Message) -> conditions.MessageFacts:
    """What conditions can test: the envelope (as accepted), the header block and the size."""
    return conditions.MessageFacts.from_raw(
        mail_from=message.mail_from, rcpt_to=message.rcpt_to, raw=message.raw or b""
    )


def _describe(rule: models.RoutingRule) -> str:
    return f"rule {rule.name or rule.id!s} (priority {rule.priority})"


def choose(routing: AccountRouting, message: models.Message) -> Route | NoRoute:
    """The first enabled rule that matches, else the default provider, else no route."""
    return choose_by_facts(routing, lambda: facts(message))


def choose_by_facts(
    routing: AccountRouting, facts_of: Callable[[], conditions.MessageFacts]
) -> Route | NoRoute:
    """``choose`` for facts given directly (the web console's "which provider?" tester);
    ``facts_of`` is called only when a rule needs them."""
    broken = []
    message_facts = None
    for parsed in routing.rules:
        if parsed.condition is None:
            broken.append(f"{_describe(parsed.rule)} skipped, its conditions no longer parse: {parsed.error}")
            continue
        if message_facts is None:
            message_facts = facts_of()
        if conditions.matches(parsed.condition, message_facts):
            return Route(parsed.rule.provider_ids, f"matched {_describe(parsed.rule)}")
    if routing.default_provider_id is not None:
        return Route((routing.default_provider_id,), "no rule matched: account default provider")
    reason = (
        "no route: no enabled routing rule matched and the account has no default provider;"
        " add a routing rule or set the account's default_provider_id"
    )
    return NoRoute("; ".join([reason, *broken]))


class Router:
    """Loads and caches each account's routing; one per worker."""

    def __init__(
        self, storage: Storage, *, ttl: float = 10.0, clock: Callable[[], float] = trio.current_time
    ) -> None:
        self._storage = storage
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[uuid.UUID, tuple[float, AccountRouting]] = {}

    async def routing(self, account_id: uuid.UUID) -> AccountRouting:
        """Raises: StorageError: the database could not be read (the caller retries)."""
        now = self._clock()
        cached = self._cache.get(account_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        store = self._storage
        # One crossing, one snapshot: no rule names a provider this read missed.
        account, rules, providers = await store.run(
            store.accounts.get(account_id),
            store.rules.list(account_id=account_id, enabled_only=True),
            store.providers.list(account_id=account_id),
            snapshot=True,
        )
        routing = AccountRouting(
            account_id=account_id,
            rules=parse_rules(rules),
            default_provider_id=None if account is None else account.default_provider_id,
            providers={p.id: p for p in providers},
        )
        self._cache[account_id] = (now + self._ttl, routing)
        return routing

    def forget(self) -> None:
        self._cache.clear()
