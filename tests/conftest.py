"""Shared fixtures: a real PostgreSQL for the whole run, a fresh database per test.

The server is the embedded one from ``pgserver`` (or ``RELAY_TEST_DATABASE_URL``).
A template database is migrated once; each test gets ``CREATE DATABASE … TEMPLATE``,
which copies files instead of replaying migrations.

Every trio test runs the way the process does: trio as the guest of an asyncio host
loop (``relay.storage.host.run``), not under ``trio.run``, which has no asyncio loop
for asyncpg. pytest-trio's ``trio_run`` ini option only knows "trio" and "qtrio", but
its ``trio`` marker takes ``run=``: after pytest-trio has marked the async tests
(``trio_mode = true``), ``pytest_collection_modifyitems`` below puts a
``trio(run=host.run)`` marker in front of each, which pytest-trio reads first. pytest-trio
passes ``clock=`` and ``instruments=`` to the runner, so ``mock_clock`` and
``autojump_clock`` keep working. (pytest-trio runs an async Hypothesis test with
``trio.run`` regardless; the suite has none.)
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest

from relay.storage import Storage, host, migrations, open_storage

# The suite runs relay on asyncio's own loop, the loop of a plain `pip install relay`.
# uvloop (relay[uvloop], the container image's loop) is installed for the tests too:
# the tests of the CLI start relay processes without any RELAY_ variable, so on uvloop,
# and tests/relay/storage/test_bridge.py runs the bridge on it in process.
os.environ.setdefault(host.UVLOOP_ENV, "0")

#: One template per pytest session (dropped at its end): several runs may share one
#: server (``RELAY_TEST_DATABASE_URL``), and a shared template name lets one run's
#: DROP/CREATE collide with another's ``CREATE DATABASE … TEMPLATE`` ("is being
#: accessed by other users").
TEMPLATE = f"relay_test_template_{uuid.uuid4().hex[:12]}"


@pytest.hookimpl(trylast=True)  # after pytest-trio's own automark
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("trio") is not None:
            item.add_marker(pytest.mark.trio(run=host.run), append=False)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def _admin(url: str):  # type: ignore[no-untyped-def]
    conn = psycopg2.connect(url)
    conn.autocommit = True
    return conn


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a PostgreSQL server for the whole session (database ``postgres``)."""
    given = os.environ.get("RELAY_TEST_DATABASE_URL")
    if given:
        yield given
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def template_url(pg_server_url: str) -> Iterator[str]:
    """A migrated template database, built once per session and dropped at its end."""
    conn = _admin(pg_server_url)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
        cur.execute(f"CREATE DATABASE {TEMPLATE}")
    url = _with_database(pg_server_url, TEMPLATE)
    migrations.apply(url)
    try:
        yield url
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
        conn.close()


@pytest.fixture
def empty_database_url(pg_server_url: str) -> Iterator[str]:
    """A fresh database with no schema at all (for migration tests)."""
    yield from _fresh(pg_server_url, template="template0")


@pytest.fixture
def database_url(pg_server_url: str, template_url: str) -> Iterator[str]:
    """A fresh, fully migrated database for one test."""
    yield from _fresh(pg_server_url, template=TEMPLATE)


def _fresh(server_url: str, template: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    conn = _admin(server_url)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    try:
        yield _with_database(server_url, name)
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.close()


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[Storage]:
    async with open_storage(database_url, min_size=1, max_size=4) as s:
        yield s
