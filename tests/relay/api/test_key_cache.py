"""The verified-key cache (``api.key_cache_ttl``) and its invalidation by LISTEN/NOTIFY.

A hit costs no key lookup; a key rotated, an operator key revoked or an account
disabled — in this process or another — is refused on the very next request; while
the listener is lost, the cache is bypassed. The ``KeyCache`` rules themselves (TTL,
size bound, epochs) are checked without a database at the end.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import attrs
import httpx
import psycopg2
import pytest
import trio

from relay import hashed_secrets
from relay.api.app import create_app
from relay.api.bearer import Caller
from relay.api.context import EXTENSION
from relay.api.keycache import KeyCache
from relay.composition import Runtime
from relay.storage import Storage, key_changes

from ..test_cli import TIMEOUT, _env, start_relay
from .conftest import Tenant, api_config

PATH = "/api/v1/accounts/{}"


@pytest.fixture
def config() -> Any:
    return api_config(key_cache_ttl=30.0)


@attrs.define
class Lookups:
    """Counts the key lookups that reach storage."""

    count: int = 0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        async def counted(*args: Any) -> Any:
            self.count += 1
            return await fn(*args)

        return counted


@pytest.fixture
def lookups(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Lookups:
    found = Lookups()
    storage = runtime.storage
    monkeypatch.setattr(storage.accounts, "get_by_api_key_hash",
                        found.wrap(storage.accounts.get_by_api_key_hash))
    monkeypatch.setattr(storage.admin_keys, "find_active", found.wrap(storage.admin_keys.find_active))
    return found


class App:
    """Process A: the app in this process, through quart's test client."""

    def __init__(self, runtime: Runtime) -> None:
        self.app = create_app(runtime)
        self.client = self.app.test_client()
        self.cache: KeyCache = self.app.extensions[EXTENSION].keys

    async def status(self, method: str, path: str, key: str, body: Any = None) -> int:
        response = await self.client.open(
            path, method=method, headers={"Authorization": f"Bearer {key}"},
            json=body,
        )
        return response.status_code


async def wait_listening(storage: Storage, listening: bool = True) -> None:
    """Poll: the listener lives on the asyncio host loop, which trio's clock cannot drive."""
    storage.key_changes.start()
    with trio.fail_after(10):
        while storage.key_changes.listening is not listening:
            await trio.sleep(0.01)


async def wait_heard(storage: Storage, before: int) -> None:
    """Until this process's listener has received a notification past ``before``.

    NOTIFY is delivered asynchronously: PostgreSQL signals the listening backends at
    commit, but under load the writer's reply can reach a client before another
    process's listener has read the notification (seen on a loaded machine). The
    window is that delivery latency, not the TTL; this bounded wait keeps the test
    deterministic.
    """
    with trio.fail_after(5):
        while storage.key_changes.received <= before:
            await trio.sleep(0.001)


@pytest.fixture
async def app(runtime: Runtime) -> AsyncIterator[App]:
    a = App(runtime)
    await wait_listening(runtime.storage)
    yield a


async def test_a_hit_costs_no_lookup(app: App, tenant: Tenant, lookups: Lookups) -> None:
    path = PATH.format(tenant.id)
    for _ in range(3):
        assert await app.status("GET", path, tenant.key) == 200
    assert lookups.count == 1
    stats = app.cache.statistics()
    assert (stats.hits, stats.misses, stats.size, stats.serving) == (2, 1, 1, True)


async def test_a_wrong_key_is_always_looked_up(app: App, tenant: Tenant, lookups: Lookups) -> None:
    bad = hashed_secrets.new_key(hashed_secrets.ACCOUNT_KEY_PREFIX).secret
    for _ in range(2):
        assert await app.status("GET", PATH.format(tenant.id), bad) == 401
    assert lookups.count == 2
    assert app.cache.statistics().size == 0


async def test_rotated_key_and_disabled_account_act_on_the_next_request(
    app: App, tenant: Tenant, operator_key: str
) -> None:
    path = PATH.format(tenant.id)
    assert await app.status("GET", path, tenant.key) == 200
    assert await app.status("GET", path, tenant.key) == 200  # from the cache

    assert await app.status("PATCH", path, operator_key, {"disabled": True}) == 200
    assert await app.status("GET", path, tenant.key) == 403
    assert await app.status("PATCH", path, operator_key, {"disabled": False}) == 200
    assert await app.status("GET", path, tenant.key) == 200
    assert await app.status("GET", path, tenant.key) == 200  # cached again

    response = await app.client.post(
        path + "/rotate-key", headers={"Authorization": f"Bearer {tenant.key}"}
    )
    new_key = (await response.get_json())["api_key"]
    assert await app.status("GET", path, tenant.key) == 401
    assert await app.status("GET", path, new_key) == 200


async def test_revoked_operator_key_is_refused_at_once(app: App, runtime: Runtime) -> None:
    key = hashed_secrets.new_key(hashed_secrets.OPERATOR_KEY_PREFIX)
    admin = await runtime.storage.admin_keys.create(
        name="short-lived", key_hash=key.hash, key_prefix=key.prefix
    )
    assert await app.status("GET", "/api/v1/accounts", key.secret) == 200
    assert await app.status("GET", "/api/v1/accounts", key.secret) == 200
    assert app.cache.statistics().hits == 1
    assert await runtime.storage.admin_keys.revoke(admin.id)
    assert await app.status("GET", "/api/v1/accounts", key.secret) == 401


async def test_a_lost_listener_bypasses_the_cache_until_it_is_back(
    app: App, runtime: Runtime, database_url: str, tenant: Tenant, lookups: Lookups
) -> None:
    path = PATH.format(tenant.id)
    assert await app.status("GET", path, tenant.key) == 200
    assert await app.status("GET", path, tenant.key) == 200
    assert lookups.count == 1

    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %s",
            (key_changes.APPLICATION_NAME,),
        )
        assert cur.fetchall() == [(True,)]
    conn.close()
    await wait_listening(runtime.storage, listening=False)
    assert await app.status("GET", path, tenant.key) == 200
    assert lookups.count == 2  # not served from the cache
    assert app.cache.statistics().size == 0

    await wait_listening(runtime.storage)  # reconnected by itself
    assert await app.status("GET", path, tenant.key) == 200
    assert await app.status("GET", path, tenant.key) == 200
    assert lookups.count == 3


async def test_a_change_through_another_process_acts_on_the_next_request(
    app: App, runtime: Runtime, database_url: str, tenant: Tenant, operator_key: str,
    tmp_path: Path, lookups: Lookups,
) -> None:
    """Process A (this one) caches the key; process B (`relay api`) rotates it, disables,
    enables and deletes the account; A acts on each as soon as B's NOTIFY reaches it."""
    path = PATH.format(tenant.id)
    env = _env(database_url, tmp_path, RELAY_API__KEY_CACHE_TTL="30")
    async with trio.open_nursery() as nursery:
        process, reader = await start_relay(nursery, "api", env)
        try:
            with trio.fail_after(TIMEOUT):
                line = await reader.until(lambda s: '"api listening"' in s, "api listening")
                nursery.start_soon(reader.rest)
            b_url = json.loads(line)["url"]
            operator = {"Authorization": f"Bearer {operator_key}"}
            async with httpx.AsyncClient(base_url=b_url, headers=operator, timeout=30) as b:
                assert await app.status("GET", path, tenant.key) == 200
                assert await app.status("GET", path, tenant.key) == 200
                assert (lookups.count, app.cache.statistics().hits) == (1, 1)

                changes = runtime.storage.key_changes
                heard = changes.received
                rotated = await b.post(path + "/rotate-key")
                assert rotated.status_code == 200
                await wait_heard(runtime.storage, heard)
                assert await app.status("GET", path, tenant.key) == 401
                new_key = rotated.json()["api_key"]
                assert await app.status("GET", path, new_key) == 200
                assert await app.status("GET", path, new_key) == 200

                heard = changes.received
                assert (await b.patch(path, json={"disabled": True})).status_code == 200
                await wait_heard(runtime.storage, heard)
                assert await app.status("GET", path, new_key) == 403
                heard = changes.received
                assert (await b.patch(path, json={"disabled": False})).status_code == 200
                await wait_heard(runtime.storage, heard)
                assert await app.status("GET", path, new_key) == 200

                heard = changes.received
                assert (await b.delete(path)).status_code == 204
                await wait_heard(runtime.storage, heard)
                assert await app.status("GET", path, new_key) == 401
            assert runtime.storage.key_changes.received >= 4
        finally:
            process.terminate()


# ---------------------------------------------------------------- KeyCache alone


@attrs.define
class Changes:
    epoch: int = 0
    listening: bool = True

    def start(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _caller(n: int) -> Caller:
    import uuid

    return Caller("operator", uuid.UUID(int=n), bytes([n]))


def _cache(changes: Changes, clock: Clock, *, ttl: float = 30.0, max_entries: int = 3) -> KeyCache:
    return KeyCache(changes, ttl=ttl, max_entries=max_entries, clock=clock)  # type: ignore[arg-type]


def test_an_entry_lives_for_the_ttl() -> None:
    clock = Clock()
    cache = _cache(Changes(), clock)
    cache.put(b"k", _caller(1), cache.epoch())
    clock.now = 29.999
    assert cache.get(b"k") == _caller(1)
    clock.now = 30.0
    assert cache.get(b"k") is None


@pytest.mark.parametrize("entries", [2, 3, 4])  # limit-1, limit, limit+1
def test_the_size_is_bounded_oldest_first(entries: int) -> None:
    cache = _cache(Changes(), Clock(), max_entries=3)
    for n in range(entries):
        cache.put(bytes([n]), _caller(n), cache.epoch())
    assert cache.statistics().size == min(entries, 3)
    assert (cache.get(bytes([0])) is None) is (entries > 3)
    assert cache.get(bytes([entries - 1])) == _caller(entries - 1)


def test_a_change_forgets_everything_and_refuses_results_looked_up_before_it() -> None:
    changes = Changes()
    cache = _cache(changes, Clock())
    cache.put(b"a", _caller(1), cache.epoch())
    started = cache.epoch()  # a lookup starts...
    changes.epoch += 1  # ...a key changes meanwhile...
    cache.put(b"b", _caller(2), started)  # ...and its result must not be kept
    assert cache.get(b"a") is None and cache.get(b"b") is None


def test_nothing_is_served_or_kept_while_not_listening() -> None:
    changes = Changes()
    cache = _cache(changes, Clock())
    cache.put(b"a", _caller(1), cache.epoch())
    changes.listening = False
    assert cache.epoch() is None and cache.get(b"a") is None
    cache.put(b"a", _caller(1), None)
    changes.listening = True
    assert cache.get(b"a") is None


def test_ttl_zero_disables_the_cache() -> None:
    cache = _cache(Changes(), Clock(), ttl=0)
    cache.put(b"a", _caller(1), cache.epoch())
    assert cache.get(b"a") is None and not cache.statistics().serving
