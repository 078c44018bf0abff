"""An async byte-level SMTP client over any trio stream (memory streams or sockets),
and the session or server it talks to, for tests that drive time with a MockClock."""

from __future__ import annotations

import base64
import ssl
from typing import Any

import attrs
import trio
import trio.testing

from relay.config import Config
from relay.smtp.server import SmtpServer
from relay.storage import Storage

from .conftest import PASSWORD

CLIENT_IP = "192.0.2.1"


class Client:
    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._buffer = b""
        #: Set when the server's session task has returned (``open_session`` only).
        self.ended = trio.Event()

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def reply(self) -> bytes:
        """One reply, possibly multi-line; returns its last line ("250 2.0.0 Ok")."""
        while True:
            while b"\r\n" not in self._buffer:
                chunk = await self.stream.receive_some(65536)
                if not chunk:
                    raise EOFError(f"closed by the server; left over: {self._buffer!r}")
                self._buffer += chunk
            line, self._buffer = self._buffer.split(b"\r\n", 1)
            if line[3:4] != b"-":
                return line

    async def command(self, line: bytes) -> bytes:
        await self.send(line + b"\r\n")
        return await self.reply()

    async def closed_by_server(self) -> bool:
        """Read to the end: True when nothing but EOF (or a broken stream) was left."""
        rest = b""
        try:
            while chunk := await self.stream.receive_some(65536):
                rest += chunk
        except trio.BrokenResourceError:
            pass
        return not rest and not self._buffer

    async def start_tls(self, context: ssl.SSLContext) -> None:
        assert not self._buffer
        tls = trio.SSLStream(self.stream, context, server_hostname="localhost")
        await tls.do_handshake()
        self.stream = tls

    async def login(self, user: str = "app@example.com") -> None:
        assert (await self.reply()).startswith(b"220 ")
        assert (await self.command(b"EHLO client.test")).startswith(b"250 ")
        blob = base64.b64encode(f"\0{user}\0{PASSWORD}".encode())
        assert (await self.command(b"AUTH PLAIN " + blob)).startswith(b"235 ")

    async def envelope(self, size: int | None = None) -> None:
        mail = b"MAIL FROM:<app@example.com>" + (b" SIZE=%d" % size if size else b"")
        assert (await self.command(mail)).startswith(b"250 ")
        assert (await self.command(b"RCPT TO:<a@example.net>")).startswith(b"250 ")


def smtp_config(config: Config, **smtp: Any) -> Config:
    """``config`` with AUTH allowed without TLS (memory streams) and ``smtp`` changes."""
    return attrs.evolve(config, smtp=attrs.evolve(config.smtp, auth_require_tls=False, **smtp))


async def start_server(
    config: Config, storage: Storage, nursery: trio.Nursery, ssl_context: ssl.SSLContext | None = None
) -> SmtpServer:
    """A server whose committer runs; sessions are started with ``open_session``."""
    server = SmtpServer(config, storage, ssl_context)
    await nursery.start(server.committer.run)
    return server


def open_session(server: SmtpServer, nursery: trio.Nursery, *, tls: bool = False) -> Client:
    """One session over a memory stream (no listener, no per-IP accounting)."""
    client_stream, server_stream = trio.testing.memory_stream_pair()
    client = Client(client_stream)

    async def run() -> None:
        try:
            await server.run_session(server_stream, CLIENT_IP, "test", tls)
        finally:
            client.ended.set()

    nursery.start_soon(run)
    return client


async def jump(clock: trio.testing.MockClock, seconds: float) -> None:
    """Let every task settle into its wait, move time on, let them react."""
    await trio.testing.wait_all_tasks_blocked()
    clock.jump(seconds)
    await trio.testing.wait_all_tasks_blocked()
