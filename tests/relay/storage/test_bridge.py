"""The trio/asyncio crossing: trio as the guest of the asyncio host loop (relay.storage.host)."""

from __future__ import annotations

import asyncio
import signal
import threading
from typing import Any

import pytest
import trio
import trio.testing

from relay.storage import DatabaseUnavailable, Storage, StorageError, host, open_storage


async def test_trio_runs_on_the_host_loops_thread(storage: Storage) -> None:
    """Why ``Bridge`` may call ``loop.create_task`` directly: trio code runs inside a
    host-loop callback, on the thread of the running asyncio loop."""
    loop = asyncio.get_running_loop()
    trio_thread = threading.get_ident()
    seen: list[Any] = []

    async def where(conn: Any) -> int:
        seen.append((asyncio.get_running_loop(), threading.get_ident()))
        return int(await conn.fetchval("SELECT 1"))

    assert await storage._bridge.run(where) == 1
    assert seen == [(loop, trio_thread)]
    assert storage._bridge._loop is loop


async def test_cancelling_an_operation_rolls_back_its_transaction(storage: Storage) -> None:
    started = trio.Event()
    token = trio.lowlevel.current_trio_token()

    async def insert_then_hang(conn: Any) -> None:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO admin_keys (id, name, key_hash, key_prefix)"
                " VALUES (gen_random_uuid(), 'held', 'h', 'p')"
            )
            token.run_sync_soon(started.set)
            await asyncio.sleep(3600)

    with trio.move_on_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(storage._bridge.run, insert_then_hang)
            await started.wait()
            nursery.cancel_scope.cancel()
    # run() returned only after the asyncio task finished: rolled back, connection back.
    health = await storage.health()
    assert health.in_use == 0
    assert await storage.admin_keys.count_active() == 0


async def test_database_errors_still_map_to_storage_errors(storage: Storage) -> None:
    async def bad_sql(conn: Any) -> None:
        await conn.execute("SELECT * FROM no_such_table")

    with pytest.raises(StorageError, match="42P01"):
        await storage._bridge.run(bad_sql)


async def test_an_unreachable_database_is_unavailable() -> None:
    with pytest.raises(DatabaseUnavailable):
        async with open_storage(
            "postgresql://nobody@127.0.0.1:1/none", min_size=1, max_size=1, connect_timeout=2
        ):
            pass  # pragma: no cover


async def test_storage_works_under_the_autojump_clock(
    storage: Storage, autojump_clock: trio.testing.MockClock
) -> None:
    """The clock is handed to the guest run; the database still answers while trio's
    virtual time jumps."""
    before = trio.current_time()
    await trio.sleep(1000)
    assert trio.current_time() - before == pytest.approx(1000)
    await storage.ping()


def test_open_storage_under_plain_trio_run_says_what_to_use(database_url: str) -> None:
    async def main() -> None:
        async with open_storage(database_url):
            pass  # pragma: no cover

    with pytest.raises(RuntimeError, match="relay.storage.host.run"):
        trio.run(main)


def test_host_run_returns_and_raises_like_trio_run() -> None:
    async def answer(x: int) -> int:
        await trio.lowlevel.checkpoint()
        return x * 2

    async def boom() -> None:
        await trio.lowlevel.checkpoint()
        raise ValueError("boom")

    assert host.run(answer, 21) == 42
    with pytest.raises(ValueError, match="boom"):
        host.run(boom)


def test_host_run_delivers_signals_to_trio() -> None:
    """``relay.composition.watch_signals`` relies on ``trio.open_signal_receiver`` under the guest run."""

    async def main() -> int:
        with trio.open_signal_receiver(signal.SIGTERM) as signals:
            signal.raise_signal(signal.SIGTERM)
            with trio.fail_after(5):
                async for signum in signals:
                    return int(signum)
        raise AssertionError("unreachable")  # pragma: no cover

    assert host.run(main) == signal.SIGTERM


async def test_a_cancelled_operation_gets_a_bounded_grace(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An asyncio side that ignores cancellation does not hold the trio caller forever."""
    from relay.storage import _bridge

    monkeypatch.setattr(_bridge, "CANCEL_GRACE", 0.2)
    started = trio.Event()
    token = trio.lowlevel.current_trio_token()
    stop = asyncio.Event()

    async def stubborn(conn: Any) -> None:
        token.run_sync_soon(started.set)
        while not stop.is_set():
            try:
                await stop.wait()
            except asyncio.CancelledError:
                continue  # refuses to stop

    with trio.fail_after(10):
        with trio.move_on_after(60) as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(storage._bridge.run, stubborn)
                await started.wait()
                nursery.cancel_scope.cancel()
    assert not scope.cancelled_caught
    stop.set()  # let it go, so the pool closes cleanly


def test_relay_uvloop_0_keeps_asyncios_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(host.UVLOOP_ENV, "0")
    loop = host.new_host_loop()
    try:
        assert host.host_loop_name(loop) == "asyncio"
    finally:
        loop.close()


def test_on_uvloop_storage_and_signals_work_as_on_asyncio(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The container image hosts on uvloop (relay[uvloop]): a database round trip
    through the bridge and trio's signal delivery (which needs uvloop's own wake-up
    fd declared to trio) work on it too."""
    monkeypatch.setenv(host.UVLOOP_ENV, "1")

    async def main() -> tuple[str, int, int]:
        async with open_storage(database_url, min_size=1, max_size=2) as storage:

            async def one(conn: Any) -> int:
                return int(await conn.fetchval("SELECT 1"))

            answer = await storage._bridge.run(one)
        with trio.open_signal_receiver(signal.SIGTERM) as signals:
            signal.raise_signal(signal.SIGTERM)
            with trio.fail_after(5):
                async for signum in signals:
                    return host.running_loop_name(), answer, signum
        raise AssertionError("no signal")

    assert host.run(main) == ("uvloop", 1, signal.SIGTERM)
