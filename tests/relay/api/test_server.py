"""serve_api: port 0, readiness through task_status, clean stop on cancel or shutdown."""

from __future__ import annotations

import functools

import httpx
import pytest
import trio

from relay.api.server import ApiListener, serve_api
from relay.composition import Runtime
from relay.config import Config

from .conftest import api_config


async def test_reports_the_bound_port_and_serves(runtime: Runtime) -> None:
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(serve_api, runtime)
        assert isinstance(bound, ApiListener)
        assert bound.host == "127.0.0.1" and bound.port > 0
        async with httpx.AsyncClient(base_url=bound.url) as client:
            reply = await client.get("/healthz")
            assert reply.status_code == 200
            assert "server" not in reply.headers
        nursery.cancel_scope.cancel()


async def test_cancellation_stops_and_frees_the_port(runtime: Runtime) -> None:
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(serve_api, runtime)
            scope.cancel()
    assert scope.cancelled_caught
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", bound.port)


async def test_shutdown_event_stops_gracefully(runtime: Runtime) -> None:
    shutdown = trio.Event()
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(functools.partial(serve_api, runtime, shutdown=shutdown))
            async with httpx.AsyncClient(base_url=bound.url) as client:
                assert (await client.get("/healthz")).status_code == 200
            shutdown.set()
    # serve_api returned on its own: the nursery closed without a cancel.


@pytest.fixture
def config() -> Config:
    return api_config()


async def test_busy_port_raises(runtime: Runtime, storage: object, database_url: str) -> None:
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(serve_api, runtime)
        clash = Runtime(config=api_config(listen=f"127.0.0.1:{bound.port}"),
                        database_url=database_url, storage=runtime.storage)
        with pytest.raises(OSError):
            await nursery.start(serve_api, clash)
        nursery.cancel_scope.cancel()
