"""Connection accounting over real sockets, and the deadlines around TLS and shutdown,
on trio's MockClock (it moves only when the test jumps it, once the server is
provably waiting: ``jump`` waits for every task to block first).

Every way out of a connection (QUIT, the peer vanishing, a timeout, a fault, a failed
or unfinished implicit-TLS handshake, shutdown) must give back its slot in
``smtp.max_connections`` and in ``smtp.max_connections_per_ip`` exactly once, and a
refused connection must never take one.
"""

from __future__ import annotations

import base64
import ssl

import pytest
import trio
import trio.testing

import proto
from relay.config import Config
from relay.smtp.policy import SubmissionPolicy
from relay.smtp.server import SmtpListeners, SmtpServer
from relay.storage import Storage

from .conftest import PASSWORD, create_account
from .trioclient import Client, jump, open_session, smtp_config, start_server

LOCAL = "127.0.0.1"
TIMEOUT = 30.0
HEADERS = b"From: app@example.com\r\nSubject: t\r\n\r\n"


@pytest.fixture
def config(relay_config: Config) -> Config:
    return smtp_config(
        relay_config, max_connections_per_ip=2, implicit_tls_listen=f"{LOCAL}:0",
        command_timeout=TIMEOUT, data_timeout=600.0, shutdown_timeout=5.0,
        # These tests follow trio's scheduling exactly (wait_all_tasks_blocked); a
        # sync of shared limit counts in flight would be database I/O they don't wait for.
        shared_limits_interval=0,
    )


async def serve(
    config: Config, storage: Storage, nursery: trio.Nursery, context: ssl.SSLContext
) -> tuple[SmtpServer, trio.Event, SmtpListeners, trio.Event]:
    """A listening server; the last event is set once ``serve`` has returned."""
    server = SmtpServer(config, storage, context)
    shutdown, stopped = trio.Event(), trio.Event()

    async def run(task_status: trio.TaskStatus[SmtpListeners]) -> None:
        try:
            await server.serve(shutdown, task_status=task_status)
        finally:
            stopped.set()

    bound: SmtpListeners = await nursery.start(run)
    return server, shutdown, bound, stopped


async def connect(port: int) -> Client:
    return Client(await trio.open_tcp_stream(LOCAL, port))


def counted(server: SmtpServer) -> tuple[int, int]:
    """(open connections, of them from 127.0.0.1)."""
    return server.statistics().connections, server._per_ip.open_from(LOCAL)


async def settled(server: SmtpServer) -> tuple[int, int]:
    await trio.testing.wait_all_tasks_blocked()
    return counted(server)


async def greeted(port: int) -> Client:
    client = await connect(port)
    assert (await client.reply()).startswith(b"220 ")
    return client


async def test_every_exit_gives_back_its_slot_once(
    mock_clock: trio.testing.MockClock, config: Config, storage: Storage, nursery: trio.Nursery,
    server_context: ssl.SSLContext, client_context: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch,
) -> None:
    await create_account(storage)
    server, shutdown, bound, stopped = await serve(config, storage, nursery, server_context)
    port, tls_port = bound.ports[0], bound.implicit_tls_ports[0]

    # QUIT.
    client = await greeted(port)
    assert counted(server) == (1, 1)
    assert (await client.command(b"QUIT")).startswith(b"221 ")
    assert await client.closed_by_server()
    assert await settled(server) == (0, 0)

    # The peer vanishes.
    client = await greeted(port)
    await client.stream.aclose()
    assert await settled(server) == (0, 0)

    # At the limit (2), a third connection from the address is refused and not counted.
    held = [await greeted(port), await greeted(port)]
    extra = await connect(port)
    assert (await extra.reply()).startswith(b"421 4.7.0")
    assert await extra.closed_by_server()
    assert await settled(server) == (2, 2)
    assert server.statistics().refused_per_ip == 1
    for client in held:
        await client.stream.aclose()
    assert await settled(server) == (0, 0)

    # An idle timeout.
    client = await greeted(port)
    await jump(mock_clock, TIMEOUT)
    assert (await client.reply()).startswith(b"421 4.4.2")
    assert await client.closed_by_server()
    assert await settled(server) == (0, 0)

    # A fault in the session.
    respond = SubmissionPolicy.respond

    async def faulty(self: SubmissionPolicy, event: object) -> proto.Reply | None:
        if isinstance(event, proto.AutoReply) and event.reason == "VRFY":
            raise RuntimeError("injected fault")
        return await respond(self, event)

    with monkeypatch.context() as patch:
        patch.setattr(SubmissionPolicy, "respond", faulty)
        client = await greeted(port)
        assert (await client.command(b"VRFY boom")).startswith(b"421 4.3.0")
        assert await client.closed_by_server()
    assert await settled(server) == (0, 0)
    assert server.statistics().session_faults == 1

    # Implicit TLS: handshakes that never start hold their slots (a plain connection
    # from the address is refused meanwhile), until command_timeout.
    silent = [await connect(tls_port), await connect(tls_port)]
    assert await settled(server) == (2, 2)
    extra = await connect(port)
    assert (await extra.reply()).startswith(b"421 4.7.0")
    assert server.statistics().refused_per_ip == 2
    await jump(mock_clock, TIMEOUT)
    for client in silent:
        assert await client.closed_by_server()
    assert await settled(server) == (0, 0)

    # Implicit TLS: a handshake that fails.
    client = await connect(tls_port)
    await client.send(b"EHLO plaintext.test\r\n")
    await client.closed_by_server()  # a TLS alert may come first
    assert await settled(server) == (0, 0)

    # Implicit TLS: a session, then shutdown while it is idle and another is in DATA.
    tls = await connect(tls_port)
    await tls.start_tls(client_context)
    assert (await tls.reply()).startswith(b"220 ")
    busy = await greeted(port)
    await _into_data(busy)
    assert counted(server) == (2, 2)
    shutdown.set()
    assert (await tls.reply()).startswith(b"421 4.3.2")
    await jump(mock_clock, config.smtp.shutdown_timeout)  # the message never ends
    assert stopped.is_set()
    assert await busy.closed_by_server()
    assert counted(server) == (0, 0) and len(server._per_ip) == 0


async def unprompted(client: Client, nursery: trio.Nursery) -> list[bytes]:
    """What the server says without being asked, until it waits (b"EOF" if it closed)."""
    said: list[bytes] = []

    async def watch() -> None:
        try:
            while True:
                said.append(await client.reply())
        except (EOFError, trio.BrokenResourceError):
            said.append(b"EOF")

    nursery.start_soon(watch)
    await trio.testing.wait_all_tasks_blocked()
    return said


async def _into_data(client: Client) -> None:
    assert (await client.command(b"EHLO client.test")).startswith(b"250 ")
    blob = base64.b64encode(f"\0app@example.com\0{PASSWORD}".encode())
    assert (await client.command(b"AUTH PLAIN " + blob)).startswith(b"235 ")
    assert (await client.command(b"MAIL FROM:<app@example.com>")).startswith(b"250 ")
    assert (await client.command(b"RCPT TO:<a@example.net>")).startswith(b"250 ")
    assert (await client.command(b"DATA")).startswith(b"354 ")
    await client.send(HEADERS + b"the first half\r\n")


async def test_shutdown_cancelling_a_message_gives_back_its_reservation(
    mock_clock: trio.testing.MockClock, config: Config, storage: Storage, nursery: trio.Nursery,
    server_context: ssl.SSLContext,
) -> None:
    await create_account(storage)
    server, shutdown, bound, stopped = await serve(config, storage, nursery, server_context)
    budget = server._shared.budget
    client = await greeted(bound.ports[0])
    await _into_data(client)
    assert budget.statistics().in_use > 0
    shutdown.set()
    await jump(mock_clock, config.smtp.shutdown_timeout - 0.01)
    assert not stopped.is_set()  # a message in progress may finish...
    await jump(mock_clock, 0.02)  # ...until shutdown_timeout
    assert stopped.is_set()
    assert budget.statistics().in_use == 0
    assert await client.closed_by_server()


async def test_a_session_that_starts_while_draining_is_told_to_go(
    mock_clock: trio.testing.MockClock, config: Config, storage: Storage, nursery: trio.Nursery,
    server_context: ssl.SSLContext, client_context: ssl.SSLContext,
) -> None:
    """An implicit-TLS handshake in progress when shutdown begins ends in a session
    that was never in the list drained: it used to be served as usual until
    shutdown_timeout cut it off, in the middle of whatever it was doing."""
    await create_account(storage)
    server, shutdown, bound, stopped = await serve(config, storage, nursery, server_context)
    busy = await greeted(bound.ports[0])
    await _into_data(busy)  # keeps the server draining
    late = await connect(bound.implicit_tls_ports[0])
    assert await settled(server) == (2, 2)  # the handshake has begun
    shutdown.set()
    await trio.testing.wait_all_tasks_blocked()
    await late.start_tls(client_context)
    said = await unprompted(late, nursery)
    assert [line[:9] for line in said] == [b"220 relay", b"421 4.3.2", b"EOF"], said
    await busy.send(b".\r\n")
    assert (await busy.reply()).startswith(b"250 2.0.0 Ok: queued")
    assert (await busy.command(b"NOOP")).startswith(b"421 4.3.2")
    await trio.testing.wait_all_tasks_blocked()
    assert stopped.is_set()


async def test_starttls_handshake_is_bounded_by_command_timeout(
    mock_clock: trio.testing.MockClock, config: Config, storage: Storage, nursery: trio.Nursery,
    server_context: ssl.SSLContext,
) -> None:
    server = await start_server(config, storage, nursery, server_context)
    client = open_session(server, nursery)
    assert (await client.reply()).startswith(b"220 ")
    assert (await client.command(b"EHLO client.test")).startswith(b"250 ")
    assert (await client.command(b"STARTTLS")).startswith(b"220 ")
    began = trio.current_time()
    await client.send(b"\x16\x03\x01")  # the start of a ClientHello, and no more
    await jump(mock_clock, began + TIMEOUT - 0.01 - trio.current_time())
    assert not client.ended.is_set()
    await jump(mock_clock, 0.02)
    assert client.ended.is_set()
    assert await client.closed_by_server()
