"""Graceful shutdown over real sockets; timeouts with trio's mock clock."""

from __future__ import annotations

import base64

import attrs
import pytest
import trio
import trio.testing

from relay.config import Config
from relay.smtp.server import SmtpServer
from relay.storage import Storage

from .conftest import PASSWORD, Relay, create_account, in_thread
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


# Time limits run on pytest-trio's ``mock_clock`` (a MockClock that never moves by
# itself): the test jumps it only once the session is provably waiting for the client
# (``wait_all_tasks_blocked``), so real database and thread work, however slow the
# machine, can never be overtaken by a deadline. (An autojumping clock once made the
# idle test fail under coverage: a slow pool acquire looked like idleness.)


async def _session_over_memory(
    relay_config: Config, storage: Storage, nursery: trio.Nursery
) -> trio.testing.MemorySendStream:
    server = SmtpServer(relay_config, storage, ssl_context=None)
    await nursery.start(server.committer.run)
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


async def _jump(clock: trio.testing.MockClock, seconds: float) -> None:
    """Let the server settle into its wait, move time on, let it react."""
    await trio.testing.wait_all_tasks_blocked()
    clock.jump(seconds)
    await trio.testing.wait_all_tasks_blocked()


async def _expect_timeout_at(
    clock: trio.testing.MockClock, client: trio.abc.Stream, nursery: trio.Nursery, at: float
) -> None:
    """Nothing until just before ``at``; just after it, 421 4.4.2 and the close."""
    got: list[bytes] = []

    async def watch() -> None:
        got.append(await _read_reply(client))

    nursery.start_soon(watch)
    await _jump(clock, at - trio.current_time() - 0.01)
    assert got == [], "closed before its deadline"
    await _jump(clock, 0.02)
    assert got and got[0].startswith(b"421 4.4.2"), got
    assert await client.receive_some(10) == b""


def _timeouts(relay_config: Config, **smtp: object) -> Config:
    return attrs.evolve(relay_config, smtp=attrs.evolve(relay_config.smtp, auth_require_tls=False, **smtp))


async def test_idle_command_timeout_closes_with_421(
    mock_clock: trio.testing.MockClock, relay_config: Config, storage: Storage, nursery: trio.Nursery
) -> None:
    timeout = relay_config.smtp.command_timeout
    client = await _session_over_memory(relay_config, storage, nursery)
    assert (await _read_reply(client)).startswith(b"220 ")
    await _jump(mock_clock, timeout - 0.01)
    await client.send_all(b"NOOP\r\n")  # just in time: the next command gets its own
    assert (await _read_reply(client)).startswith(b"250 ")
    await _expect_timeout_at(mock_clock, client, nursery, trio.current_time() + timeout)


async def test_a_trickled_command_line_cannot_extend_its_deadline(
    mock_clock: trio.testing.MockClock, relay_config: Config, storage: Storage, nursery: trio.Nursery
) -> None:
    """One byte every 9 s used to re-arm a 30 s timeout for ever (slowloris)."""
    config = _timeouts(relay_config, command_timeout=30.0)
    client = await _session_over_memory(config, storage, nursery)
    await _read_reply(client)
    began = trio.current_time()
    for byte in b"NOO":
        await _jump(mock_clock, 9.0)
        await client.send_all(bytes([byte]))
    await _expect_timeout_at(mock_clock, client, nursery, began + 30.0)


async def _in_data(config: Config, storage: Storage, nursery: trio.Nursery) -> trio.abc.Stream:
    await create_account(storage)
    client = await _session_over_memory(config, storage, nursery)
    await _read_reply(client)
    plain = base64.b64encode(f"\0app@example.com\0{PASSWORD}".encode())
    for line, code in [(b"EHLO c", b"250"), (b"AUTH PLAIN " + plain, b"235"),
                       (b"MAIL FROM:<app@example.com>", b"250"), (b"RCPT TO:<a@example.net>", b"250"),
                       (b"DATA", b"354")]:
        await client.send_all(line + b"\r\n")
        assert (await _read_reply(client)).startswith(code)
    return client


async def test_data_trickle_is_cut_by_the_minimum_data_rate(
    mock_clock: trio.testing.MockClock, relay_config: Config, storage: Storage, nursery: trio.Nursery
) -> None:
    """A line every 20 s never trips the 30 s read timeout, but 100 octets at 500/s
    earn only 0.2 s beyond the message's first 30 s."""
    config = _timeouts(relay_config, command_timeout=30.0, data_timeout=600.0, min_data_rate=500)
    client = await _in_data(config, storage, nursery)
    began = trio.current_time()
    line = b"x" * 48 + b"\r\n"
    await client.send_all(line)
    await _jump(mock_clock, 20.0)
    await client.send_all(line)
    await _expect_timeout_at(mock_clock, client, nursery, began + 30.0 + 100 / 500)


async def test_data_above_the_minimum_rate_finishes(
    mock_clock: trio.testing.MockClock, relay_config: Config, storage: Storage, nursery: trio.Nursery
) -> None:
    config = _timeouts(relay_config, command_timeout=30.0, data_timeout=100.0, min_data_rate=10)
    client = await _in_data(config, storage, nursery)
    # 200 octets every 10 s is twice the minimum rate, 99.99 s in all.
    for _ in range(9):
        await client.send_all(b"y" * 198 + b"\r\n")
        await _jump(mock_clock, 10.0)
    await client.send_all(b"y" * 198 + b"\r\n")
    await _jump(mock_clock, 10.0 - 0.01)
    await client.send_all(b".\r\n")
    assert (await _read_reply(client)).startswith(b"250 ")


async def test_whole_data_is_bounded_by_data_timeout(
    mock_clock: trio.testing.MockClock, relay_config: Config, storage: Storage, nursery: trio.Nursery
) -> None:
    config = _timeouts(relay_config, command_timeout=30.0, data_timeout=100.0, min_data_rate=1)
    client = await _in_data(config, storage, nursery)
    began = trio.current_time()
    for _ in range(9):
        await client.send_all(b"z" * 998 + b"\r\n")
        await _jump(mock_clock, 10.0)
    await client.send_all(b"z" * 998 + b"\r\n")
    await _expect_timeout_at(mock_clock, client, nursery, began + 100.0)


async def test_bdat_chunks_share_one_message_clock(
    mock_clock: trio.testing.MockClock, relay_config: Config, storage: Storage, nursery: trio.Nursery
) -> None:
    """"BDAT 1" every 14 s never trips the 30 s command timeout, but the transaction's
    octets (the first chunk's 1, then 9 for each later command and chunk, at 500/s)
    earn only 38 ms beyond its first 30 s."""
    config = _timeouts(relay_config, command_timeout=30.0, data_timeout=600.0, min_data_rate=500)
    await create_account(storage)
    client = await _session_over_memory(config, storage, nursery)
    await _read_reply(client)
    plain = base64.b64encode(f"\0app@example.com\0{PASSWORD}".encode())
    for line in [b"EHLO c", b"AUTH PLAIN " + plain, b"MAIL FROM:<app@example.com>", b"RCPT TO:<a@example.net>"]:
        await client.send_all(line + b"\r\n")
        await _read_reply(client)
    began = trio.current_time()
    await client.send_all(b"BDAT 1\r\nx")
    assert (await _read_reply(client)).startswith(b"250 ")
    for _ in range(2):
        await _jump(mock_clock, 14.0)
        await client.send_all(b"BDAT 1\r\nx")
        assert (await _read_reply(client)).startswith(b"250 ")
    await _expect_timeout_at(mock_clock, client, nursery, began + 30.0 + (1 + 2 * 9) / 500)


async def test_a_refused_message_is_read_to_its_end_at_its_own_pace(
    mock_clock: trio.testing.MockClock, relay_config: Config, storage: Storage, nursery: trio.Nursery
) -> None:
    """proto stops handing on a message it refused (a bare LF here) but reads it to its
    end; the octets still count for the data rate, so the client gets the 550, not a
    421 that would make it retry a message that can never be accepted."""
    config = _timeouts(relay_config, command_timeout=30.0, data_timeout=600.0, min_data_rate=10)
    client = await _in_data(config, storage, nursery)
    await client.send_all(b"bare\nLF\r\n")
    for _ in range(10):
        await _jump(mock_clock, 10.0)
        await client.send_all(b"y" * 198 + b"\r\n")
    await client.send_all(b".\r\n")
    assert (await _read_reply(client)).startswith(b"550 5.5.2")
