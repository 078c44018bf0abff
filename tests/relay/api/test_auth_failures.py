"""api.auth_failures_per_minute: failed authentications are budgeted per client address.

Over real HTTP (hypercorn on 127.0.0.1:0). That a refused request costs no database
lookup is shown with the database itself: once the budget is spent the test makes
the database refuse every connection and ends the pool's sessions, and the refused
requests still get an instant 429 — a lookup would have failed with a 5xx — while
the same valid key sent from another address does fail.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import httpx
import psycopg2
import pytest
import trio

from relay.api.ratelimit import client_key
from relay.api.server import ApiListener, serve_api
from relay.composition import Runtime
from relay.config import Config

from .conftest import Tenant, api_config

BUDGET = 5
#: Another loopback address: Linux routes all of 127.0.0.0/8 to lo.
OTHER_ADDRESS = "127.0.0.2"
BAD_HEADERS = [
    {"Authorization": "Bearer rk_live_" + "x" * 40},   # unknown account key: a lookup
    {"Authorization": "Bearer rk_admin_" + "y" * 40},  # unknown operator key: a lookup
    {"Authorization": "Basic dXNlcjpwYXNz"},           # malformed: no lookup, still a failure
    {},                                                # no key at all
    {"Authorization": "Bearer not-one-of-ours"},       # foreign prefix
]


@pytest.fixture
def config() -> Config:
    return api_config(auth_failures_per_minute=BUDGET)


@pytest.fixture
async def bound(runtime: Runtime) -> AsyncIterator[ApiListener]:
    async with trio.open_nursery() as nursery:
        yield await nursery.start(serve_api, runtime)
        nursery.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def client(bound: ApiListener, local_address: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.AsyncHTTPTransport(local_address=local_address)
    async with httpx.AsyncClient(base_url=bound.url, transport=transport, timeout=10) as http:
        yield http


@contextlib.contextmanager
def database_refusing(pg_server_url: str, database_url: str) -> Iterator[None]:
    """The test's database accepts no connection and its sessions are ended, then restored."""
    name = urlsplit(database_url).path.lstrip("/")
    admin = psycopg2.connect(pg_server_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
            )
        yield
    finally:
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.close()


async def test_bad_keys_are_refused_without_a_lookup_once_the_budget_is_spent(
    bound: ApiListener, tenant: Tenant, pg_server_url: str, database_url: str,
) -> None:
    async with client(bound) as http:
        for headers in BAD_HEADERS:
            reply = await http.get("/api/v1/providers", headers=headers)
            assert reply.status_code == 401, reply.text
        with database_refusing(pg_server_url, database_url):
            for _ in range(20):
                refused = await http.get("/api/v1/providers", headers=BAD_HEADERS[0])
                assert refused.status_code == 429
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["type"] == "urn:relay:problem:rate-limited"
            assert "failed authentications" in refused.json()["detail"]
            assert 1 <= int(refused.headers["retry-after"]) <= 60 // BUDGET
            # As documented: an address over its budget is refused whatever it sends,
            # a valid key included — and still without touching the database.
            valid = await http.get("/api/v1/providers", headers={"Authorization": f"Bearer {tenant.key}"})
            assert valid.status_code == 429
            # The control: the same key from another address is looked up, and the
            # lookup fails because the database really is refusing.
            async with client(bound, OTHER_ADDRESS) as elsewhere:
                looked_up = await elsewhere.get(
                    "/api/v1/providers", headers={"Authorization": f"Bearer {tenant.key}"}
                )
            assert looked_up.status_code >= 500
        # Public routes need no key and are never refused.
        assert (await http.get("/healthz")).status_code == 200


async def test_budget_is_per_address_and_spent_only_by_failures(bound: ApiListener, tenant: Tenant) -> None:
    good = {"Authorization": f"Bearer {tenant.key}"}
    async with client(bound) as http, client(bound, OTHER_ADDRESS) as elsewhere:
        # Successes hand their token back: many more than the budget pass.
        for _ in range(3 * BUDGET):
            assert (await http.get("/api/v1/providers", headers=good)).status_code == 200
        for _ in range(BUDGET):
            assert (await http.get("/api/v1/providers", headers=BAD_HEADERS[0])).status_code == 401
        assert (await http.get("/api/v1/providers", headers=BAD_HEADERS[0])).status_code == 429
        assert (await http.get("/api/v1/providers", headers=good)).status_code == 429
        # Another address has its own budget.
        assert (await elsewhere.get("/api/v1/providers", headers=good)).status_code == 200
        assert (await elsewhere.get("/api/v1/providers", headers=BAD_HEADERS[2])).status_code == 401


async def test_concurrent_attempts_never_start_more_lookups_than_the_budget(bound: ApiListener) -> None:
    statuses: list[int] = []
    async with client(bound) as http:

        async def attempt() -> None:
            statuses.append((await http.get("/api/v1/providers", headers=BAD_HEADERS[1])).status_code)

        async with trio.open_nursery() as nursery:
            for _ in range(4 * BUDGET):
                nursery.start_soon(attempt)
    assert statuses.count(401) == BUDGET
    assert statuses.count(429) == 3 * BUDGET


@pytest.mark.parametrize(("address", "key"), [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
    (None, "unknown"),
    ("<local>", "unknown"),
])
def test_client_key(address: str | None, key: str) -> None:
    assert client_key(address) == key
