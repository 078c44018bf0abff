"""Local SMTP upstreams for the smtp provider's tests.

``aiosmtpd_upstream``: a real SMTP server that no one here wrote (aiosmtpd's threaded
``Controller`` on 127.0.0.1), with STARTTLS or implicit TLS from a trustme CA and AUTH;
it records what arrives, can refuse chosen recipients or the data, and counts sessions.
``sink``: a trio server on ``proto.ServerConnection`` that offers PIPELINING and
CHUNKING (which aiosmtpd does not), for BDAT and the benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Any

import attrs
import trio
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

import proto

USER, PASSWORD = "relay-user", "s3cret upstream"


def free_port() -> int:
    """A port free right now on 127.0.0.1 (aiosmtpd's Controller needs it up front; it
    may be taken before the Controller binds it: see ``aiosmtpd_upstream``'s retry)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections for the whole block: bound, never
    listening (a port merely free a moment ago could be taken by another process)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


@attrs.frozen
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    mail_options: tuple[str, ...] = ()


@attrs.define(eq=False)
class Upstream:
    port: int = 0
    #: Recipient -> the reply that refuses it at RCPT.
    refuse: dict[str, str] = attrs.Factory(dict)
    #: When set, the reply to the end of data (instead of 250).
    data_reply: str | None = None
    #: While true, the end of data is not answered (a slow upstream); a message whose
    #: client left meanwhile is not recorded. ``holding`` counts those waiting.
    hold: bool = False
    holding: int = 0
    messages: list[Received] = attrs.Factory(list)
    auth_failures: int = 0
    #: One per SMTP session that said EHLO/HELO (aiosmtpd's own start-up probe does not).
    sessions: list[SMTP] = attrs.Factory(list)
    loop: asyncio.AbstractEventLoop | None = None

    @property
    def connections(self) -> int:
        return len(self.sessions)

    # aiosmtpd handler hooks (run in aiosmtpd's thread) --------------------

    def _seen(self, server: SMTP) -> None:
        if not any(s is server for s in self.sessions):
            self.sessions.append(server)

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        self._seen(server)
        session.host_name = hostname
        return responses

    async def handle_HELO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str) -> str:
        self._seen(server)
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.hold:
            self.holding += 1
            try:
                while self.hold:
                    await asyncio.sleep(0.01)
            finally:
                self.holding -= 1
            if server.transport is None:  # the client is gone: nobody to answer
                return "421 4.4.2 client gone"
        if self.data_reply is not None:
            return self.data_reply
        self.messages.append(Received(
            envelope.mail_from, tuple(envelope.rcpt_tos), bytes(envelope.original_content or b""),
            tuple(envelope.mail_options),
        ))
        return "250 2.0.0 OK queued"

    def authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                     auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword)
              and (auth_data.login, auth_data.password) == (USER.encode(), PASSWORD.encode()))
        if not ok:
            self.auth_failures += 1
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd sends the 535

    # from the trio side ----------------------------------------------------

    async def drop_connections(self) -> None:
        """Abort every session's socket on the server side (an upstream restart)."""
        assert self.loop is not None

        async def abort() -> None:
            for server in self.sessions:
                if server.transport is not None:
                    server.transport.abort()

        future = asyncio.run_coroutine_threadsafe(abort(), self.loop)
        await trio.to_thread.run_sync(future.result)


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@contextlib.asynccontextmanager
async def aiosmtpd_upstream(
    ca: trustme.CA | None, *, tls: str = "starttls", auth: bool = True, **upstream: Any
) -> AsyncIterator[Upstream]:
    """aiosmtpd on 127.0.0.1 with a certificate from ``ca``; stopped on exit.

    Args:
        ca: issues the server's certificate; ``None`` only with ``tls="none"``.
        tls: ``"starttls"`` (required before MAIL and AUTH), ``"implicit"`` or ``"none"``.
        auth: offer AUTH (only under TLS) and check ``USER``/``PASSWORD``.
    """
    up = Upstream(**upstream)
    kwargs: dict[str, Any] = {}
    if tls == "starttls":
        assert ca is not None, "a TLS upstream needs a CA"
        kwargs.update(tls_context=server_context(ca), require_starttls=True)
    elif tls == "implicit":
        assert ca is not None, "a TLS upstream needs a CA"
        kwargs.update(ssl_context=server_context(ca))
    if auth:
        kwargs.update(authenticator=up.authenticate, auth_require_tls=tls != "none")
    up.loop = asyncio.SelectorEventLoop()  # aiosmtpd's own loop, in its own thread
    for attempt in range(5):
        up.port = free_port()
        controller = Controller(up, hostname="127.0.0.1", port=up.port, loop=up.loop,
                                server_hostname="upstream.test", **kwargs)
        try:
            await trio.to_thread.run_sync(controller.start)
            break
        except OSError as exc:  # the free port was taken meanwhile (another worker)
            if exc.errno != errno.EADDRINUSE or attempt == 4:
                raise
    try:
        yield up
    finally:
        await trio.to_thread.run_sync(controller.stop)


# ------------------------------------------------------------------ a proto sink


@attrs.define(eq=False)
class Sink:
    port: int = 0
    messages: list[Received] = attrs.Factory(list)
    connections: int = 0
    commands: list[str] = attrs.Factory(list)
    #: The commands of each read, in order: what the client wrote together (on
    #: loopback a small write arrives in one read).
    groups: list[list[str]] = attrs.Factory(list)
    #: Offer CHUNKING (BDAT); without it the client sends DATA.
    chunking: bool = True
    #: Recipients refused at RCPT with 550 5.1.1.
    refuse: frozenset[str] = frozenset()
    #: Record each message (tests); the benchmark only counts them.
    keep: bool = True
    count: int = 0


async def _sink_session(stream: trio.SocketStream, sink: Sink) -> None:
    sink.connections += 1
    conn = proto.ServerConnection(
        "sink.test", extensions=proto.Extensions(starttls=False, auth=(), chunking=sink.chunking),
        auth_requires_tls=False,
    )
    body: list[bytes] = []
    try:
        await stream.send_all(conn.send(proto.Reply(220, "sink.test ESMTP")))
        while conn.state not in (proto.CLOSING, proto.CLOSED):
            event = conn.next_event()
            if event is proto.NEED_DATA:
                conn.receive_data(await stream.receive_some(1 << 16))
                if sink.keep:
                    sink.groups.append([])
                continue
            if not isinstance(event, proto.Event) or isinstance(event, proto.ConnectionClosed):
                continue
            if isinstance(event, proto.Data):
                body.append(event.data)
                continue
            if sink.keep:
                sink.commands.append(type(event).__name__)
                sink.groups[-1].append(type(event).__name__)
            reply = _sink_reply(event, conn, body, sink)
            await stream.send_all(conn.send(reply))
    except (trio.BrokenResourceError, proto.RemoteProtocolError):
        pass
    finally:
        await trio.aclose_forcefully(stream)


def _sink_reply(event: proto.Event, conn: proto.ServerConnection, body: list[bytes], sink: Sink) -> proto.Reply:
    if isinstance(event, (proto.AutoReply, proto.ProtocolViolation, proto.AuthRequest)):
        return event.reply
    if isinstance(event, (proto.Ehlo, proto.Helo)):
        return proto.Reply(250, "")
    if isinstance(event, proto.RcptTo) and str(event.forward_path) in sink.refuse:
        return proto.Reply(550, "no such user", "5.1.1")
    if isinstance(event, proto.DataStart):
        return proto.Reply(354, "go ahead")
    if isinstance(event, proto.Quit):
        return proto.Reply(221, "bye", "2.0.0")
    if isinstance(event, proto.EndOfData):
        if event.refusal:
            return event.refusal
        transaction = conn.transaction
        assert transaction is not None
        sink.count += 1
        if sink.keep:
            sink.messages.append(Received(
                str(transaction.reverse_path or ""), tuple(str(a) for a in transaction.forward_paths),
                b"".join(body), (transaction.method or "",),
            ))
        body.clear()
        return proto.Reply(250, "queued", "2.0.0")
    return proto.Reply(250, "OK", "2.0.0")


async def sink(nursery: trio.Nursery, *, keep: bool = True, chunking: bool = True,
               refuse: frozenset[str] = frozenset()) -> Sink:
    """Start the proto sink on 127.0.0.1:0 in ``nursery``."""
    state = Sink(keep=keep, chunking=chunking, refuse=refuse)

    async def handler(stream: trio.SocketStream) -> None:
        await _sink_session(stream, state)

    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    state.port = listeners[0].socket.getsockname()[1]
    return state
