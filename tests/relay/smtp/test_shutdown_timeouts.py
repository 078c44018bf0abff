"""Graceful shutdown over real sockets; timeouts with trio's mock clock."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from relay.app import Runtime
from relay.config import Config
from relay.smtp.server import SmtpServer
from relay.storage import Storage

from .conftest import PASSWORD, Relay, in_thread
from .rawclient import RawClient

HEADERS = b"From: app@example.com\r\nSubject: t\r\n\r\n"


async def test_shutdown_lets_data_finish_and_closes_idle_sessions(relay: Relay, storage: Storage) -> None:
    busy = await in_thread(lambda: _logged_in(relay))
    idle = await in_thread(lambda: _logged_in(relay))
    try:
        def start_data() -> None:
            busy.command(b"MAIL FROM:<app@example.com>")
            busy.command(b"RCPT TO:<a@example.net>")
            assert busy.command(b"DATA")[0] == 354
            busy.send(HEADERS + b"first half\r\n")

        await in_thread(start_data)
        relay.started.shutdown.set()
        # The idle session is told at once...
        code, text = await in_thread(idle.reply)
        assert code == 421 and text[0].startswith("4.3.2")
        # ...while the one inside DATA may finish, and its 250 means stored.
        busy.send(b"second half\r\n.\r\n")
        code, text = await in_thread(busy.reply)
        assert code == 250
        queue_id = text[0].rsplit(" ", 1)[-1]
        stored = await storage.messages.list()  # the relay's own pool is closing
        assert [str(m.id) for m in stored] == [queue_id]
        # After its transaction the busy session is closed too.
        code, text = await in_thread(lambda: busy.command(b"NOOP"))
        assert code == 421
        # New connections are no longer accepted.
        with pytest.raises(OSError):
            await in_thread(lambda: RawClient(relay.port).reply())
    finally:
        busy.close()
        idle.close()


def _logged_in(relay: Relay) -> RawClient:
    client = RawClient(relay.port)
    client.login(relay.client_context, relay.account.email, PASSWORD)
    return client


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    # Jump only after 0.2 s of real idleness, so real database and thread work
    # (milliseconds) finishes first and only the waits for the client are skipped.
    return trio.testing.MockClock(autojump_threshold=0.2)


async def _session_over_memory(
    relay_config: Config, storage: Storage, nursery: trio.Nursery
) -> trio.testing.MemorySendStream:
    server = SmtpServer(Runtime(relay_config, "", storage), ssl_context=None)
    client, server_stream = trio.testing.memory_stream_pair()
    nursery.start_soon(server.run_session, server_stream, "192.0.2.1", "test", False)
    return client


async def _read_reply(stream: trio.abc.Stream) -> bytes:
    data = b""
    while not data.endswith(b"\r\n") or data.splitlines()[-1][3:4] == b"-":
        chunk = await stream.receive_some(4096)
        if not chunk:
            break
        data += chunk
    return data


async def test_idle_command_timeout_closes_with_421(
    mock_clock: trio.testing.MockClock, relay_config: Config, storage: Storage, nursery: trio.Nursery
) -> None:
    client = await _session_over_memory(relay_config, storage, nursery)
    assert (await _read_reply(client)).startswith(b"220 ")
    start = trio.current_time()
    reply = await _read_reply(client)
    assert reply.startswith(b"421 4.4.2")
    assert trio.current_time() - start == pytest.approx(relay_config.smtp.command_timeout, abs=0.5)
    assert await client.receive_some(10) == b""


async def test_data_timeout_bounds_a_trickling_client(
    mock_clock: trio.testing.MockClock, relay_config: Config, storage: Storage, nursery: trio.Nursery
) -> None:
    import attrs

    config = attrs.evolve(
        relay_config,
        smtp=attrs.evolve(relay_config.smtp, auth_require_tls=False, command_timeout=30.0, data_timeout=100.0),
    )
    import base64

    from .conftest import create_account

    await create_account(storage)
    client = await _session_over_memory(config, storage, nursery)
    await _read_reply(client)
    for line in [b"EHLO c", b"AUTH PLAIN " + base64.b64encode(f"\0app@example.com\0{PASSWORD}".encode()),
                 b"MAIL FROM:<app@example.com>", b"RCPT TO:<a@example.net>", b"DATA"]:
        await client.send_all(line + b"\r\n")
        await _read_reply(client)
    start = trio.current_time()
    # A line every 20 s never trips the 30 s command timeout, but DATA as a whole
    # must end by 100 s.
    reply = b""
    with trio.move_on_after(500):
        while True:
            await client.send_all(b"trickle\r\n")
            with trio.move_on_after(20):
                reply = await _read_reply(client)
                break
    assert reply.startswith(b"421 4.4.2")
    assert 100 <= trio.current_time() - start <= 121
