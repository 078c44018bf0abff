"""Routing on a real PostgreSQL: priority, each condition kind, disabled rules, default.

Matching is ``relay.conditions`` (shared with the API's validation); these tests skip
until that module exists. ``KIND`` holds one condition per kind in its JSON language:
keep it in step with the language documented in ``relay/conditions.py``.
"""

from __future__ import annotations

import uuid

import pytest

from relay import models
from relay.models import ProviderType
from relay.storage import Storage
from relay.worker.router import NoRoute, Route, Router, choose

from ..storage.helpers import make_account

conditions = pytest.importorskip("relay.conditions")

KIND = {
    "recipient_domain": {"recipient_domain": "example.net"},
    "sender_domain": {"sender_domain": "example.com"},
    "sender_address": {"sender": "alice@example.com"},
    "header": {"header": {"name": "X-Campaign", "equals": "spring"}},
    "size": {"size": {"greater_than": 1000}},
    "all": {"all": [{"recipient_domain": "example.net"}, {"sender_domain": "example.com"}]},
    "any": {"any": [{"recipient_domain": "nowhere.invalid"}, {"sender_domain": "example.com"}]},
}
NO_MATCH = {"recipient_domain": "nowhere.invalid"}


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
    account, (p0, p1, _) = await setup(storage)
    await storage.rules.create(account_id=account.id, provider_id=p0.id, conditions=NO_MATCH, priority=1)
    await storage.rules.create(account_id=account.id, provider_id=p1.id, conditions=KIND[kind], priority=2)
    raw = b"From: alice@example.com\r\nX-Campaign: spring\r\n\r\n" + b"x" * 2000
    route = choose(await Router(storage).routing(account.id), message(account, raw=raw))
    assert isinstance(route, Route) and route.provider_ids == (p1.id,)


async def test_lower_priority_wins_and_failover_order_is_kept(storage: Storage) -> None:
    account, (p0, p1, p2) = await setup(storage)
    await storage.rules.create(account_id=account.id, provider_id=p0.id, conditions=KIND["sender_domain"],
                               priority=20, name="late")
    await storage.rules.create(account_id=account.id, provider_id=p1.id, conditions=KIND["sender_domain"],
                               priority=10, name="early", fallback_provider_ids=[p2.id, p0.id])
    route = choose(await Router(storage).routing(account.id), message(account))
    assert isinstance(route, Route) and route.provider_ids == (p1.id, p2.id, p0.id)
    assert "early" in route.reason


async def test_disabled_rules_are_ignored(storage: Storage) -> None:
    account, (p0, p1, _) = await setup(storage)
    await storage.rules.create(account_id=account.id, provider_id=p0.id, conditions=KIND["sender_domain"],
                               priority=1, enabled=False)
    await storage.rules.create(account_id=account.id, provider_id=p1.id, conditions=KIND["sender_domain"],
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
