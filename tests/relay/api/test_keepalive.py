"""HTTP/1.1 connections end cleanly: never a request left unanswered on a reused connection.

The regression behind ``relay.api.asgi``: a schema fuzzer saw requests hang on
keep-alive connections. The condition, reproduced byte for byte over a real socket:
the server answers a request (here 404, without reading the body) *before* the body
has arrived, the body arrives afterwards, and the client sends its next request on
the same connection. hypercorn's close of that connection used to be cancelled by
quart-trio, so the next request was parsed and never answered.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import h11
import pytest
import trio
import trio.testing

from relay.api import server
from relay.api.server import ApiListener, serve_api
from relay.composition import Runtime

#: Far longer than any answer takes here; a hang shows as TooSlowError, not a stuck run.
DEADLINE = 5.0


@pytest.fixture
async def bound(runtime: Runtime) -> AsyncIterator[ApiListener]:
    async with trio.open_nursery() as nursery:
        yield await nursery.start(serve_api, runtime)
        nursery.cancel_scope.cancel()


@pytest.fixture
async def connection(bound: ApiListener) -> AsyncIterator[trio.SocketStream]:
    stream = await trio.open_tcp_stream(bound.host, bound.port)
    try:
        yield stream
    finally:
        await stream.aclose()


async def read_response(stream: trio.SocketStream, buffer: bytearray) -> tuple[int, dict[bytes, bytes], bytes] | None:
    """One response read off ``stream`` (``None``: the server closed it first)."""
    reader = h11.Connection(h11.CLIENT)
    # h11 needs to have "sent" a request before it will parse a response.
    reader.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    reader.send(h11.EndOfMessage())
    if buffer:  # (receive_data(b"") would mean EOF)
        reader.receive_data(bytes(buffer))
        buffer.clear()
    status, headers, body = 0, {}, b""
    with trio.fail_after(DEADLINE):
        while True:
            event = reader.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await stream.receive_some(65536)
                except trio.BrokenResourceError:  # a reset: closed with our bytes unread
                    data = b""
                if not data and not status:
                    return None  # closed before a response began
                reader.receive_data(data)
            elif isinstance(event, h11.Response):
                status, headers = event.status_code, dict(event.headers)
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                buffer.extend(reader.trailing_data[0])
                return status, headers, body


def request(method: str, target: str, *, key: str = "", body_length: int = 0) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: relay.test"]
    if key:
        lines.append(f"Authorization: Bearer {key}")
    if body_length:
        lines += ["Content-Type: application/json", f"Content-Length: {body_length}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_answer_before_the_body_then_next_request_is_never_left_hanging(
    connection: trio.SocketStream, operator_key: str,
) -> None:
    buffer = bytearray()
    # The fuzzer's request: PATCH of an unknown provider with the 1-byte body "\x00",
    # the body in a later segment than the head. The server answers 404 at once.
    await connection.send_all(request(
        "PATCH", f"/api/v1/providers/{uuid.uuid4()}", key=operator_key, body_length=1,
    ))
    first = await read_response(connection, buffer)
    assert first is not None
    status, headers, _ = first
    assert status == 404
    # Only now does the body arrive, then the next request on the same connection.
    await connection.send_all(b"\x00")
    try:
        await connection.send_all(request("GET", "/healthz"))
    except trio.BrokenResourceError:
        pass  # already closed: that is an answer too
    # Before the fix: no reply and no close, until the client gave up. Now: closed,
    # as the server said up front (RFC 9112 §9.6).
    assert await read_response(connection, buffer) is None
    assert headers.get(b"connection") == b"close"


async def test_keep_alive_survives_requests_whose_body_was_read(
    connection: trio.SocketStream, operator_key: str,
) -> None:
    buffer = bytearray()
    for _ in range(3):
        # The body in a later segment again, but this endpoint reads it before answering.
        await connection.send_all(request("POST", "/api/v1/accounts", key=operator_key, body_length=9))
        await trio.testing.wait_all_tasks_blocked()  # the server has the head alone
        await connection.send_all(b"{not json")
        reply = await read_response(connection, buffer)
        assert reply is not None
        status, headers, _ = reply
        assert status == 400
        assert b"connection" not in headers


async def test_idle_keep_alive_connections_are_closed(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The keep-alive timer is restarted after each response (it used to be cancelled too)."""
    monkeypatch.setattr(server, "KEEP_ALIVE_TIMEOUT", 0.2)
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(serve_api, runtime)
        stream = await trio.open_tcp_stream(bound.host, bound.port)
        buffer = bytearray()
        await stream.send_all(request("GET", "/healthz"))
        reply = await read_response(stream, buffer)
        assert reply is not None and reply[0] == 200
        # Idle from now on: the server closes within its keep-alive timeout.
        assert await read_response(stream, buffer) is None
        await stream.aclose()
        nursery.cancel_scope.cancel()
