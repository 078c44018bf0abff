"""The driver: the only code that moves bytes between a trio stream and proto.

Strategy: the loop in STYLE.md. ``proto.ServerConnection`` decides what the bytes
mean, ``SubmissionPolicy`` decides the answers, and this module applies time limits
and the STARTTLS handoff. Protocol errors are caught here and nowhere else.

Time limits are deadlines a trickling client cannot push back (Postfix's
``smtpd_per_request_deadline`` and ``smtpd_min_data_rate`` work alike):

* a whole command line (or AUTH response) must arrive within ``command_timeout`` of
  the moment we started waiting for it, however many single bytes come meanwhile;
* in a message (DATA, or BDAT chunks) every read must come within
  ``command_timeout``, and the message may take ``command_timeout`` plus one second
  per ``min_data_rate`` octets received so far, and never more than ``data_timeout``,
  counted from its first octet; for BDAT the clock runs across the chunks (and the
  waits between them) until the transaction ends.

This is also the boundary of one unit of work: an unexpected exception in a session
is logged with its correlation id, answered ``421 4.3.0`` when the stream still
works, counted, and ends that session only (``SubmissionSession.run`` never raises it).
"""

from __future__ import annotations

import ssl

import attrs
import trio

import proto

from .. import metrics
from ..logging import get_logger
from .policy import SubmissionPolicy

log = get_logger("relay.smtp.session")

MAX_RECV = 64 * 1024

TIMEOUT = proto.Reply(421, "Timeout, closing connection", "4.4.2")
SHUTTING_DOWN = proto.Reply(421, "Server shutting down, try again later", "4.3.2")
INTERNAL_ERROR = proto.Reply(421, "Local error in processing, closing connection", "4.3.0")
#: Written as is when proto cannot serialize a reply any more (its state is unknown).
_INTERNAL_ERROR_LINE = b"421 4.3.0 Local error in processing, closing connection\r\n"
#: Seconds a goodbye (421) may take to write before the stream is closed anyway.
GOODBYE_TIMEOUT = 5.0


@attrs.frozen
class SessionSettings:
    hostname: str
    command_timeout: float
    data_timeout: float
    #: Octets per second a message must average after its first ``command_timeout``.
    min_data_rate: int
    limits: proto.Limits
    extensions: proto.Extensions
    bare_line_ending_policy: str
    #: ``smtp.long_line_policy``: "split" (accept, split on delivery) or "reject".
    long_line_policy: str
    auth_requires_tls: bool

    def connection(self, *, tls_active: bool, starttls: bool) -> proto.ServerConnection:
        """A new ``proto.ServerConnection`` for one session.

        Args:
            tls_active: The stream is already TLS (implicit TLS, RFC 8314).
            starttls: The server has a certificate, so STARTTLS may be offered
                (it never is once TLS is active).
        """
        extensions = self.extensions
        if not starttls or tls_active:
            extensions = attrs.evolve(extensions, starttls=False)
        return proto.ServerConnection(
            self.hostname,
            limits=self.limits,
            extensions=extensions,
            bare_line_ending_policy="normalize" if self.bare_line_ending_policy == "normalize" else "reject",
            long_line_policy="reject" if self.long_line_policy == "reject" else "accept",
            tls_active=tls_active,
            auth_requires_tls=self.auth_requires_tls,
        )


class SubmissionSession:
    """One SMTP session; ``run`` returns when it is over (the caller closes the stream).

    ``conn`` (from ``SessionSettings.connection``) is the one the policy was built
    with: the policy reads its session and transaction, nothing is copied across.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        conn: proto.ServerConnection,
        policy: SubmissionPolicy,
        settings: SessionSettings,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self.stream = stream
        self.conn = conn
        self._policy = policy
        self._settings = settings
        self._ssl_context = ssl_context
        self._draining = False
        self._idle_scope: trio.CancelScope | None = None
        #: When the command line we are waiting for must be complete (None: not waiting).
        self._command_deadline: float | None = None
        #: The message being read: when it started, and octets received since.
        self._message_started: float | None = None
        self._message_octets = 0
        #: Whether an unexpected exception ended this session (counted by the server).
        self.faulted = False

    @property
    def in_message(self) -> bool:
        """Reading a message body: shutdown lets it finish."""
        return self.conn.state in (proto.State.DATA, proto.State.BDAT)

    def drain(self) -> None:
        """Shutdown has begun: end the session at its next wait for a command."""
        self._draining = True
        if self._idle_scope is not None:
            self._idle_scope.cancel()

    async def _send(self, reply: proto.Reply) -> None:
        data = self.conn.send(reply)
        metrics.series(metrics.SMTP_REPLIES, str(reply.code)).inc()
        await self.stream.send_all(data)

    async def _say_and_close(self, reply: proto.Reply) -> None:
        """Best effort: the peer may already be gone."""
        try:
            with trio.move_on_after(GOODBYE_TIMEOUT):
                await self._send(reply)
        except (trio.BrokenResourceError, trio.ClosedResourceError, proto.LocalProtocolError):
            pass

    async def run(self) -> None:
        """Run the session to its end. Never raises but ``trio.Cancelled``: a fault
        is contained here (logged, answered 421 4.3.0, ``faulted`` set)."""
        try:
            await self._run()
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError) as exc:
            log.info("connection lost", error=str(exc) or type(exc).__name__)
        except Exception:  # the unit-of-work boundary: contain, log, 421
            self.faulted = True
            log.exception("session failed", state=self.conn.state.name)
            await self._say_internal_error()
        finally:
            self._policy.release()

    async def _say_internal_error(self) -> None:
        """421 4.3.0 through proto if it still can, else as raw bytes (best effort)."""
        try:
            data = self.conn.send(INTERNAL_ERROR)
        except Exception:  # noqa: BLE001 -- proto's state is unknown after a fault
            data = _INTERNAL_ERROR_LINE
        try:
            with trio.move_on_after(GOODBYE_TIMEOUT):
                await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
            pass

    async def _run(self) -> None:
        await self._send(proto.Reply(220, f"{self._settings.hostname} ESMTP relay ready"))
        while True:
            try:
                event = self.conn.next_event()
            except proto.RemoteProtocolError as exc:
                log.info("protocol error", error=str(exc))
                if exc.reply_hint is not None:
                    await self._say_and_close(exc.reply_hint)
                return
            if event is proto.NEED_DATA:
                if not await self._receive():
                    return
                continue
            # An event: the next command line gets a deadline of its own.
            self._command_deadline = None
            if event is proto.PAUSED:
                raise AssertionError(f"proto paused in state {self.conn.state}")
            if isinstance(event, proto.ConnectionClosed):
                return
            if isinstance(event, proto.Data) and self._message_started is None:
                # A BDAT chunk that came in one read with its command starts the
                # message clock here (reads are counted from now on).
                self._message_started = trio.current_time()
                self._message_octets = len(event.data)
            reply = await self._policy.respond(event)
            if reply is None:
                continue
            await self._send(reply)
            if self._policy.close_after_reply or self.conn.state in (
                proto.State.CLOSING, proto.State.CLOSED
            ):
                return
            if self.conn.state is proto.State.TLS_HANDOFF:
                await self._start_tls()
            if (
                self._message_started is not None
                and not self.in_message
                and self.conn.transaction is None
            ):
                # The message clock runs for a whole transaction: BDAT chunks share
                # it, so "BDAT 1" every command_timeout cannot hold a slot for ever.
                self._message_started, self._message_octets = None, 0

    def _deadline(self, now: float) -> float:
        """When the input we are waiting for must have arrived (see the module doc)."""
        settings = self._settings
        if self.in_message:
            if self._message_started is None:
                self._message_started = now
            return min(now + settings.command_timeout, self._message_deadline())
        if self._command_deadline is None:
            self._command_deadline = now + settings.command_timeout
        if self._message_started is not None:  # between BDAT chunks
            return min(self._command_deadline, self._message_deadline())
        return self._command_deadline

    def _message_deadline(self) -> float:
        settings = self._settings
        assert self._message_started is not None
        earned = self._message_octets / settings.min_data_rate
        return self._message_started + min(
            settings.command_timeout + earned, settings.data_timeout
        )

    async def _receive(self) -> bool:
        """Read more input; False when the session must end."""
        deadline = self._deadline(trio.current_time())
        if self.in_message:
            with trio.move_on_at(deadline):
                data = await self.stream.receive_some(MAX_RECV)
                # Octets as sent, refused ones included: a message proto already
                # refused (oversize, bare LF) is still read to its end at its pace.
                self._message_octets += len(data)
                self.conn.receive_data(data)
                return True
            await self._say_and_close(TIMEOUT)
            log.info("timeout", state=self.conn.state.name, octets=self._message_octets)
            return False
        if self._draining:
            await self._say_and_close(SHUTTING_DOWN)
            return False
        with trio.CancelScope(deadline=deadline) as scope:
            self._idle_scope = scope
            if isinstance(self.stream, trio.SocketStream):
                # Idle sessions wait here, possibly for minutes, and thousands of them:
                # waiting on the socket itself keeps the stream's receive path (three
                # coroutine frames, ~0.7 KB) unallocated until there is something to read.
                await trio.lowlevel.wait_readable(self.stream.socket)
            data = await self.stream.receive_some(MAX_RECV)
            self._idle_scope = None
            if self._message_started is not None:  # between BDAT chunks
                self._message_octets += len(data)
            self.conn.receive_data(data)
            return True
        self._idle_scope = None
        await self._say_and_close(SHUTTING_DOWN if self._draining else TIMEOUT)
        if not self._draining:
            log.info("timeout", state=self.conn.state.name)
        return False

    async def _start_tls(self) -> None:
        assert self._ssl_context is not None
        tls_stream = trio.SSLStream(self.stream, self._ssl_context, server_side=True)
        with trio.fail_after(self._settings.command_timeout):
            try:
                await tls_stream.do_handshake()
            except trio.BrokenResourceError as exc:
                raise trio.BrokenResourceError(f"TLS handshake failed: {exc}") from None
        self.stream = tls_stream
        # Anything the client pipelined after STARTTLS was plaintext: proto drops it
        # (CVE-2011-0411), requires a new EHLO and forgets the AUTH (RFC 3207 4.2);
        # the policy reads all of that from conn.session.
        self.conn.tls_established()
        log.info("tls established", version=self._tls_version(tls_stream))

    @staticmethod
    def _tls_version(stream: trio.SSLStream[trio.abc.Stream]) -> str | None:
        version = stream.version()
        return None if version is None else str(version)
