"""The memory budget, path by path: whatever ends a message gives back what it
reserved, exactly once.

The test holds ``HELD`` octets of the budget itself while a session takes each path,
and expects exactly ``HELD`` in use afterwards: a release done twice would eat into
the test's share (``MemoryBudget.release`` clamps at zero, so an empty budget alone
would not show it), and one never done would stay above it. Sessions run over memory
streams; each path waits on a reply or on the session's end, never on time.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable

import attrs
import pytest
import trio

import proto
from relay.config import Config
from relay.smtp.compose import MAX_HEADER_BLOCK
from relay.smtp.policy import COPIES, MIN_RESERVATION, SubmissionPolicy
from relay.smtp.server import SmtpServer
from relay.storage import Storage, StorageError

from .conftest import create_account
from .trioclient import Client, open_session, smtp_config, start_server

BUDGET = 1_000_000
#: Octets of the budget the test itself holds during each path.
HELD = 1_000
#: What a message without SIZE reserves at DATA, and a first BDAT chunk of it.
FIRST = COPIES * MIN_RESERVATION
HEADERS = b"From: app@example.com\r\nSubject: t\r\n\r\n"
MESSAGE = HEADERS + b"hello\r\n"
#: 600,000 octets: two copies are more than the whole budget.
BIG = (b"y" * 998 + b"\r\n") * 600


def header_block(size: int) -> bytes:
    """A header block of exactly ``size`` octets (fields under 998 octets each)."""
    block = b"From: app@example.com\r\nSubject: t\r\n"
    while len(block) < size:
        left = size - len(block)
        n = left if left <= 900 else min(900, left - 20)  # the last field keeps >= 10 octets
        block += b"X-Pad: " + b"a" * (n - 9) + b"\r\n"
    assert len(block) == size
    return block


@pytest.fixture
async def server(
    relay_config: Config, storage: Storage, nursery: trio.Nursery, server_context: ssl.SSLContext
) -> SmtpServer:
    await create_account(storage)
    return await start_server(
        smtp_config(relay_config, memory_budget=BUDGET), storage, nursery, server_context
    )


def in_use(server: SmtpServer) -> int:
    return server._shared.budget.statistics().in_use


@attrs.frozen
class Scene:
    client: Client
    server: SmtpServer
    client_context: ssl.SSLContext
    monkeypatch: pytest.MonkeyPatch

    def in_use(self) -> int:
        return in_use(self.server)

    async def data(self, size: int | None = None) -> None:
        """MAIL, RCPT, DATA: the 354 holds the reservation for ``size`` (or 64 KiB)."""
        await self.client.envelope(size)
        assert (await self.client.command(b"DATA")).startswith(b"354 ")
        assert self.in_use() == HELD + COPIES * max(size or 0, MIN_RESERVATION)

    async def first_chunk(self) -> None:
        """MAIL, RCPT and a first BDAT chunk: its reservation is held between chunks."""
        await self.client.envelope()
        await self.client.send(b"BDAT %d\r\n" % len(HEADERS) + HEADERS)
        assert (await self.client.reply()).startswith(b"250 2.0.0")
        assert self.in_use() == HELD + FIRST


async def stored(s: Scene) -> None:
    await s.data()
    assert (await s.client.command(MESSAGE + b".")).startswith(b"250 2.0.0 Ok: queued")


async def stored_with_size(s: Scene) -> None:
    await s.data(size=200_000)
    assert (await s.client.command(MESSAGE + b".")).startswith(b"250 2.0.0 Ok: queued")


async def storage_failed(s: Scene) -> None:
    async def fail(message: object) -> None:
        raise StorageError("injected")

    s.monkeypatch.setattr(s.server.committer, "write", fail)
    await s.data()
    assert (await s.client.command(MESSAGE + b".")).startswith(b"451 4.3.0")


async def header_too_large(s: Scene) -> None:
    await s.data()
    message = header_block(MAX_HEADER_BLOCK + 1) + b"\r\nbody\r\n"
    assert (await s.client.command(message + b".")).startswith(b"552 5.3.4")


async def from_refused(s: Scene) -> None:
    await s.data()
    message = b"From: someone@other.example\r\n\r\nbody\r\n"
    assert (await s.client.command(message + b".")).startswith(b"550 5.7.1")


async def refused_by_proto(s: Scene) -> None:
    await s.data()
    assert (await s.client.command(HEADERS + b"bare\nLF\r\n.")).startswith(b"550 5.5.2")


async def size_over_budget(s: Scene) -> None:
    await s.client.envelope(size=BUDGET // 2)
    assert (await s.client.command(b"DATA")).startswith(b"452 4.3.1")
    assert s.in_use() == HELD
    assert (await s.client.command(b"RSET")).startswith(b"250 ")


async def over_budget_mid_data(s: Scene) -> None:
    await s.data()
    assert (await s.client.command(HEADERS + BIG + b".")).startswith(b"452 4.3.1")


async def disconnect_mid_data(s: Scene) -> None:
    await s.data()
    await s.client.send(HEADERS + b"half a message\r\n")
    await s.client.stream.aclose()
    await s.client.ended.wait()


async def fault_mid_data(s: Scene) -> None:
    respond = SubmissionPolicy.respond

    async def faulty(self: SubmissionPolicy, event: object) -> proto.Reply | None:
        if isinstance(event, proto.Data) and b"boom" in event.data:
            raise RuntimeError("injected fault")
        return await respond(self, event)

    s.monkeypatch.setattr(SubmissionPolicy, "respond", faulty)
    await s.data()
    await s.client.send(HEADERS + b"boom\r\n" + b"the rest of the message\r\n")
    assert (await s.client.reply()).startswith(b"421 4.3.0")
    await s.client.ended.wait()


async def bdat_last(s: Scene) -> None:
    await s.first_chunk()
    await s.client.send(b"BDAT 7 LAST\r\nhello\r\n")
    assert (await s.client.reply()).startswith(b"250 2.0.0 Ok: queued")


async def bdat_over_budget(s: Scene) -> None:
    await s.first_chunk()
    await s.client.send(b"BDAT %d\r\n" % len(BIG) + BIG)
    assert (await s.client.reply()).startswith(b"452 4.3.1")


async def bdat_refused_by_proto(s: Scene) -> None:
    await s.first_chunk()
    await s.client.send(b"BDAT 6\r\nbare\n\r")
    assert (await s.client.reply()).startswith(b"550 5.5.2")


async def rset_between_chunks(s: Scene) -> None:
    await s.first_chunk()
    assert (await s.client.command(b"RSET")).startswith(b"250 ")


async def ehlo_between_chunks(s: Scene) -> None:
    await s.first_chunk()
    assert (await s.client.command(b"EHLO again.test")).startswith(b"250 ")


async def quit_between_chunks(s: Scene) -> None:
    await s.first_chunk()
    assert (await s.client.command(b"QUIT")).startswith(b"221 ")
    await s.client.ended.wait()


async def disconnect_between_chunks(s: Scene) -> None:
    await s.first_chunk()
    await s.client.stream.aclose()
    await s.client.ended.wait()


async def starttls_between_chunks(s: Scene) -> None:
    await s.first_chunk()
    assert (await s.client.command(b"STARTTLS")).startswith(b"220 ")
    await s.client.start_tls(s.client_context)
    # The server has finished its side of the handshake once it answers.
    assert (await s.client.command(b"EHLO client.test")).startswith(b"250 ")


PATHS: list[Callable[[Scene], Awaitable[None]]] = [
    stored, stored_with_size, storage_failed, header_too_large, from_refused, refused_by_proto,
    size_over_budget, over_budget_mid_data, disconnect_mid_data, fault_mid_data,
    bdat_last, bdat_over_budget, bdat_refused_by_proto, rset_between_chunks, ehlo_between_chunks,
    quit_between_chunks, disconnect_between_chunks, starttls_between_chunks,
]


async def test_every_path_gives_back_its_reservation_once(
    server: SmtpServer, nursery: trio.Nursery, client_context: ssl.SSLContext,
) -> None:
    budget = server._shared.budget
    assert budget.try_reserve(HELD)
    for path in PATHS:  # one server for all: a database per path would triple the run time
        try:
            with pytest.MonkeyPatch.context() as monkeypatch, trio.fail_after(30):
                client = open_session(server, nursery)
                await client.login()
                await path(Scene(client, server, client_context, monkeypatch))
                assert in_use(server) == HELD
                if not client.ended.is_set():
                    assert (await client.command(b"QUIT")).startswith(b"221 ")
                    await client.ended.wait()
                assert in_use(server) == HELD
        except BaseException as exc:
            exc.add_note(f"on the path {path.__name__!r}")
            raise
    budget.release(HELD)
    assert in_use(server) == 0


async def test_bdat_over_budget_gives_452_and_the_session_stays_in_sync(
    server: SmtpServer, nursery: trio.Nursery
) -> None:
    """RFC 3030 §2: after a 4xx to a chunk the transaction is over, and the octets of
    the chunks the client pipelined after it are read, not taken for commands."""
    client = open_session(server, nursery)
    with trio.fail_after(30):
        await client.login()
        await client.envelope()
        await client.send(
            b"BDAT %d\r\n" % len(BIG) + BIG
            + b"BDAT 9 LAST\r\nNOOP\r\nNOO"  # a chunk that looks like commands
            + b"NOOP\r\n"
        )
        assert (await client.reply()).startswith(b"452 4.3.1")
        assert (await client.reply()).startswith(b"503 5.5.1")  # no transaction any more
        assert (await client.reply()).startswith(b"250 2.0.0 Ok")  # the NOOP, in step
        assert in_use(server) == 0
        # The next message that fits goes through.
        await client.envelope()
        await client.send(b"BDAT %d LAST\r\n" % len(MESSAGE) + MESSAGE)
        assert (await client.reply()).startswith(b"250 2.0.0 Ok: queued")
    assert in_use(server) == 0


@pytest.mark.parametrize("size, expected", [
    (MAX_HEADER_BLOCK - 1, b"250 2.0.0 Ok: queued"),
    (MAX_HEADER_BLOCK, b"250 2.0.0 Ok: queued"),
    (MAX_HEADER_BLOCK + 1, b"552 5.3.4"),
])
async def test_header_block_over_its_limit_gets_552_and_the_session_goes_on(
    server: SmtpServer, nursery: trio.Nursery, size: int, expected: bytes
) -> None:
    client = open_session(server, nursery)
    with trio.fail_after(30):
        await client.login()
        await client.envelope()
        assert (await client.command(b"DATA")).startswith(b"354 ")
        reply = await client.command(header_block(size) + b"\r\nbody\r\n.")
        assert reply.startswith(expected), reply
        assert (await client.command(b"NOOP")).startswith(b"250 ")
        await client.envelope()
        assert (await client.command(b"DATA")).startswith(b"354 ")
        assert (await client.command(MESSAGE + b".")).startswith(b"250 2.0.0 Ok: queued")
    assert in_use(server) == 0
