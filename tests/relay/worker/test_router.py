"""Routing on a real PostgreSQL: priority, each condition kind, disabled rules, default.

Matching is ``relay.conditions`` (shared with the API's validation). ``KIND`` holds,
for each kind of condition in its JSON language (see ``relay/conditions.py``), one
condition the test message matches and one it does not; keep it in step with that
grammar.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from relay import models
from relay.models import DeliveryOutcome, MessageStatus, ProviderType
from relay.storage import Storage
from relay.worker.router import NoRoute, Route, Router, choose

from ..storage.helpers import make_account

#: The message: from alice@example.com to bob@example.net and eve@mail.example.org,
#: with X-Campaign: spring and a Subject, 2,000+ bytes.
KIND: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "everything": ({}, {"not": {}}),
    "recipient_domain": ({"recipient_domain": "example.net"}, {"recipient_domain": "example.com"}),
    "recipient_domain in": ({"recipient_domain": {"in": ["a.test", "EXAMPLE.NET"]}},
                            {"recipient_domain": {"in": ["a.test", "b.test"]}}),
    "recipient_domain suffix": ({"recipient_domain": {"suffix": "example.org"}},
                                {"recipient_domain": {"suffix": "ample.org"}}),
    "recipient_domain glob": ({"recipient_domain": {"glob": "mail*.example.*"}},
                              {"recipient_domain": {"glob": "smtp*.example.*"}}),
    "every_recipient_domain": ({"every_recipient_domain": {"glob": "*example.*"}},
                               {"every_recipient_domain": "example.net"}),
    "sender_domain": ({"sender_domain": "example.com"}, {"sender_domain": "example.net"}),
    "sender": ({"sender": "Alice@Example.com"}, {"sender": "bob@example.com"}),
    "sender glob": ({"sender": {"glob": "alice@*"}}, {"sender": {"glob": "bob@*"}}),
    "header equals": ({"header": {"name": "x-campaign", "equals": "Spring"}},
                      {"header": {"name": "X-Campaign", "equals": "autumn"}}),
    "header contains": ({"header": {"name": "Subject", "contains": "report"}},
                        {"header": {"name": "Subject", "contains": "invoice"}}),
    "header exists": ({"header": {"name": "X-Campaign", "exists": True}},
                      {"header": {"name": "X-Priority", "exists": True}}),
    "header absent": ({"header": {"name": "X-Priority", "exists": False}},
                      {"header": {"name": "X-Campaign", "exists": False}}),
    "size": ({"size": {"greater_than": 1000}}, {"size": {"less_than": 1000}}),
    "all": ({"all": [{"recipient_domain": "example.net"}, {"sender_domain": "example.com"}]},
            {"all": [{"recipient_domain": "example.net"}, {"sender_domain": "example.net"}]}),
    "any": ({"any": [{"recipient_domain": "nowhere.invalid"}, {"sender_domain": "example.com"}]},
            {"any": [{"recipient_domain": "nowhere.invalid"}, {"sender_domain": "example.net"}]}),
    "not": ({"not": {"sender_domain": "example.net"}}, {"not": {"sender_domain": "example.com"}}),
}
NO_MATCH = {"recipient_domain": "nowhere.invalid"}
RAW = (b"From: alice@example.com\r\nX-Campaign: spring\r\nSubject: Quarterly report\r\n\r\n"
       + b"x" * 2000 + b"\r\n")
RCPT = ("bob@example.net", "eve@mail.example.org")


def message(account: models.Account, *, raw: bytes | None = None, mail_from: str = "alice@example.com",
            rcpt: tuple[str, ...] = ("bob@example.net",)) -> models.Message:
    import datetime as dt

    body = raw or b"From: alice@example.com\r\nX-Campaign: spring\r\nSubject: s\r\n\r\nhi\r\n"
    now = dt.datetime.now(dt.UTC)
    return models.Message(
        id=uuid.uuid4(), account_id=account.id, mail_from=mail_from, rcpt_to=rcpt, size=len(body),
        status=models.MessageStatus.SENDING, attempts=1, next_attempt_at=now, locked_until=None,
        locked_by="w", message_id=None, client_ip=None, tls=True, correlation_id=None,
        last_error=None, created_at=now, updated_at=now, raw=body,
    )


async def setup(storage: Storage) -> tuple[models.Account, list[models.Provider]]:
    account = await make_account(storage)
    providers = [
        await storage.providers.create(account_id=account.id, name=f"p{i}", type=ProviderType.SENDGRID,
                                       config={"api_key": "k"})
        for i in range(3)
    ]
    return account, providers


@pytest.mark.parametrize("kind", sorted(KIND))
async def test_each_condition_kind_routes(storage: Storage, kind: str) -> None:
    account, (p0, p1, p2) = await setup(storage)
    yes, no = KIND[kind]
    await storage.rules.create(account_id=account.id, provider_id=p0.id, conditions=NO_MATCH, priority=1)
    await storage.rules.create(account_id=account.id, provider_id=p1.id, conditions=no, priority=2)
    await storage.rules.create(account_id=account.id, provider_id=p2.id, conditions=yes, priority=3)
    route = choose(await Router(storage).routing(account.id), message(account, raw=RAW, rcpt=RCPT))
    assert isinstance(route, Route) and route.provider_ids == (p2.id,), route


async def test_lower_priority_wins_and_failover_order_is_kept(storage: Storage) -> None:
    account, (p0, p1, p2) = await setup(storage)
    match = KIND["sender_domain"][0]
    await storage.rules.create(account_id=account.id, provider_id=p0.id, conditions=match,
                               priority=20, name="late")
    await storage.rules.create(account_id=account.id, provider_id=p1.id, conditions=match,
                               priority=10, name="early", fallback_provider_ids=[p2.id, p0.id])
    route = choose(await Router(storage).routing(account.id), message(account))
    assert isinstance(route, Route) and route.provider_ids == (p1.id, p2.id, p0.id)
    assert "early" in route.reason


async def test_disabled_rules_are_ignored(storage: Storage) -> None:
    account, (p0, p1, _) = await setup(storage)
    match = KIND["sender_domain"][0]
    await storage.rules.create(account_id=account.id, provider_id=p0.id, conditions=match,
                               priority=1, enabled=False)
    await storage.rules.create(account_id=account.id, provider_id=p1.id, conditions=match,
                               priority=2)
    route = choose(await Router(storage).routing(account.id), message(account))
    assert isinstance(route, Route) and route.provider_ids == (p1.id,)


async def test_default_provider_when_nothing_matches(storage: Storage) -> None:
    account, (p0, p1, _) = await setup(storage)
    await storage.rules.create(account_id=account.id, provider_id=p0.id, conditions=NO_MATCH)
    await storage.accounts.update(account.id, default_provider_id=p1.id)
    route = choose(await Router(storage).routing(account.id), message(account))
    assert isinstance(route, Route) and route.provider_ids == (p1.id,) and "default" in route.reason


async def test_no_match_and_no_default_is_no_route(storage: Storage) -> None:
    account, (p0, _, _) = await setup(storage)
    await storage.rules.create(account_id=account.id, provider_id=p0.id, conditions=NO_MATCH)
    route = choose(await Router(storage).routing(account.id), message(account))
    assert isinstance(route, NoRoute) and "default_provider_id" in route.reason


async def test_routing_is_cached_for_its_ttl(storage: Storage) -> None:
    account, (p0, _, _) = await setup(storage)
    now = [0.0]
    router = Router(storage, ttl=10, clock=lambda: now[0])
    first = await router.routing(account.id)
    await storage.accounts.update(account.id, default_provider_id=p0.id)
    assert (await router.routing(account.id)) is first
    now[0] = 11
    assert (await router.routing(account.id)).default_provider_id == p0.id


async def test_equal_priorities_keep_the_older_rule_first(storage: Storage) -> None:
    account, (p0, p1, _) = await setup(storage)
    await storage.rules.create(account_id=account.id, provider_id=p0.id, conditions={}, priority=5, name="older")
    await storage.rules.create(account_id=account.id, provider_id=p1.id, conditions={}, priority=5, name="newer")
    route = choose(await Router(storage).routing(account.id), message(account))
    assert isinstance(route, Route) and route.provider_ids == (p0.id,) and "older" in route.reason


async def test_a_stored_rule_that_no_longer_parses_is_skipped_and_named(storage: Storage) -> None:
    account, (p0, p1, _) = await setup(storage)
    await storage.rules.create(account_id=account.id, provider_id=p0.id, name="legacy", priority=1,
                               conditions={"recipient": "bob@example.net"})  # not in the grammar
    await storage.rules.create(account_id=account.id, provider_id=p1.id, conditions=KIND["sender"][0], priority=2)
    routing = await Router(storage).routing(account.id)
    route = choose(routing, message(account))
    assert isinstance(route, Route) and route.provider_ids == (p1.id,)
    miss = choose(routing, message(account, mail_from="zed@example.org"))
    assert isinstance(miss, NoRoute)
    assert "rule legacy (priority 1) skipped" in miss.reason and "conditions: unknown condition 'recipient'" in miss.reason


async def test_no_route_fails_the_message_with_the_reason_in_its_log(storage: Storage) -> None:
    from .conftest import running, wait_until

    account, (p0, _, _) = await setup(storage)
    await storage.rules.create(account_id=account.id, provider_id=p0.id, conditions=NO_MATCH)
    [mid] = await storage.messages.enqueue_many([models.NewMessage(
        account_id=account.id, mail_from="alice@example.com", rcpt_to=("bob@example.net",), raw=RAW)])
    async with running(storage):
        await wait_until(lambda: _status(storage, mid, MessageStatus.FAILED))
    [log] = await storage.delivery_logs.list_for_message(mid)
    assert log.outcome is DeliveryOutcome.FAILED and log.provider_id is None
    assert log.response.startswith("no route: no enabled routing rule matched")
    assert "default_provider_id" in log.response


async def _status(storage: Storage, message_id: uuid.UUID, status: MessageStatus) -> bool:
    found = await storage.messages.get(message_id)
    return found is not None and found.status is status
