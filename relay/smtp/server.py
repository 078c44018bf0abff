"""The submission listeners: accept, admit or refuse, run a session per connection.

Strategy (after trio's serve_listeners): one accept loop per listener, every
connection a task in one handler nursery. Admission is decided before the greeting
and before any TLS handshake: past ``smtp.max_connections`` open connections, past
``smtp.max_connections_per_ip`` from one address, or past an IP's
``smtp.ip_connection_rate`` the client gets ``421 4.7.0`` and is closed at once. A
connection counts from accept to close, its implicit-TLS handshake included, so
clients that never finish a handshake hold no more slots than any other.

Each connection is one unit of work: a fault in it is logged with its correlation
id and counted, and ends that connection only, never the process.

Shutdown is graceful: listeners close, idle sessions get ``421 4.3.2``, sessions
inside DATA may finish (their message is stored and 250'd, or refused — never 250'd
and lost), and after ``smtp.shutdown_timeout`` everything left is cancelled. The
group committer outlives the sessions so that a message whose DATA finished during
shutdown is still stored.
"""

from __future__ import annotations

import errno
import socket
import ssl
import uuid

import attrs
import trio

import proto

from .. import dkim, metrics
from ..change_cache import ChangeBoundCache, K, V
from ..config import Config, parse_listen
from ..limiting import SlidingWindow
from ..logging import bind, get_logger
from ..reload import Reloader
from ..runtime import Runtime
from ..sampling import sample_certificate
from ..storage import Storage
from .credentials import Authenticator
from .dkim import DkimSigner
from .ip_credentials import IpCredentialLookup
from .limits import (
    AccountLimits,
    AuthFailureTracker,
    ConcurrencyPerIp,
    ConnectionRateLimiter,
    MemoryBudget,
    TrustedNetworks,
)
from .policy import PolicySettings, SessionInfo, Shared, SubmissionPolicy
from .session import SessionSettings, SubmissionSession
from .shared_limits import SharedCounts
from .suppressions import SuppressionCheck
from .tls import ensure_key_pair, server_context

log = get_logger("relay.smtp.server")

TOO_MANY_CONNECTIONS = proto.Reply(421, "Too many connections, try again later", "4.7.0")
RATE_LIMITED = proto.Reply(421, "Too many connections from your address, try again later", "4.7.0")
TOO_MANY_FROM_IP = proto.Reply(
    421, "Too many concurrent connections from your address, try again later", "4.7.0"
)
#: Refusals being written at once; past it a refused connection is closed unanswered,
#: so a flood of refused clients costs at most this many tasks and TLS handshakes.
MAX_REFUSALS_IN_FLIGHT = 64
#: Seconds one refusal (a 421 line, after a TLS handshake on an implicit-TLS port) may take.
REFUSAL_TIMEOUT = 2.0

#: The group committer's batch is at most 1/BATCH_SHARE of smtp.memory_budget in octets
#: (one message always fits, however large).
BATCH_SHARE = 16
#: Logins and client addresses each remembered at most (``smtp.account_cache_ttl``).
ACCOUNT_CACHE_ENTRIES = 10_000

# trio's list of accept errors that mean "resources are short", not "the listener is broken".
_TRANSIENT_ACCEPT = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}


@attrs.frozen
class ServerStatistics:
    #: Connections admitted and not yet closed (TLS handshakes included).
    connections: int
    #: Of those, sessions past the greeting.
    active_sessions: int
    refused_busy: int
    refused_rate: int
    refused_per_ip: int
    #: Sessions ended by an unexpected exception (logged with their correlation id).
    session_faults: int


@attrs.frozen
class SmtpListeners:
    """What ``serve_smtp`` reports once listening: the ports really bound."""

    ports: tuple[int, ...]
    implicit_tls_ports: tuple[int, ...] = ()


class SmtpServer:
    """The listeners, admission and the sessions of one process's SMTP service.

    Takes only what it uses — the configuration and the storage — so it is built the
    same way by ``serve_smtp`` and by tests. ``prepare`` readies the authenticator,
    ``serve`` listens until shutdown, ``reload`` applies a re-read configuration and
    ``statistics`` reports the counters.
    """

    def __init__(
        self,
        config: Config,
        storage: Storage,
        ssl_context: ssl.SSLContext | None,
        *,
        reuse_port: bool = False,
    ) -> None:
        smtp = config.smtp
        self._config = config
        #: One of several processes sharing the port (``relay.supervisor``).
        self._reuse_port = reuse_port
        self._ssl_context = ssl_context
        self._hostname = smtp.hostname or socket.getfqdn()
        trusted = TrustedNetworks(smtp.trusted_networks)
        self._storage = storage
        #: What the deployment's other processes counted (smtp.shared_limits_interval).
        self.shared_counts = SharedCounts({
            "messages": 60.0, "recipients": 3600.0, "connections": 60.0,
            "auth_failures": smtp.auth_failure_window,
        })
        shared = self.shared_counts
        self._rate = ConnectionRateLimiter(smtp.ip_connection_rate, trusted, shared)
        self._per_ip = ConcurrencyPerIp(
            smtp.max_connections_per_ip, TrustedNetworks(smtp.per_ip_exempt_networks), shared
        )
        # A batch is encoded once more by the database driver while it commits: keep
        # that copy a small fraction of the memory budget, whatever the batch holds.
        self.committer = storage.messages.writer(
            max_batch_bytes=max(1, smtp.memory_budget // BATCH_SHARE)
        )
        def cache() -> ChangeBoundCache[K, V]:
            return ChangeBoundCache(
                storage.key_changes, ttl=smtp.account_cache_ttl,
                max_entries=ACCOUNT_CACHE_ENTRIES, clock=trio.current_time,
            )

        self._shared = Shared(
            authenticator=Authenticator(
                storage, ttl=smtp.credential_cache_ttl, accounts=cache()
            ),
            committer=self.committer,
            auth_failures=AuthFailureTracker(
                smtp.auth_failure_limit, smtp.auth_failure_window, smtp.auth_block_time, shared
            ),
            budget=MemoryBudget(smtp.memory_budget),
            account_limits=AccountLimits(shared),
            settings=_policy_settings(config),
            ip_credentials=IpCredentialLookup(storage, cache()),
            dkim=DkimSigner(
                storage,
                kek=dkim.KeyEncryption.from_setting(config.dkim.key_encryption_key),
                ttl=config.dkim.key_cache_ttl,
            ),
            suppressions=SuppressionCheck(storage, ttl=smtp.suppression_cache_ttl),
        )
        self._settings = _session_settings(config, self._hostname, ssl_context is not None)
        self._sessions: set[SubmissionSession] = set()
        #: Set whenever the last session ends; shutdown waits on it.
        self._no_sessions = trio.Event()
        self._connections = 0
        self._refused_busy = 0
        self._refused_rate = 0
        self._refused_per_ip = 0
        self._refusing = 0
        self._faults = 0
        self._refusals_logged = SlidingWindow(60.0, trio.current_time)
        #: Set once shutdown has begun: a session that starts later (its implicit-TLS
        #: handshake was in progress) is drained from its start.
        self._draining = False

    async def prepare(self) -> None:
        await self._shared.authenticator.prepare()
        if self._shared.dkim is not None:
            await self._shared.dkim.check_keys()

    def reload(self, config: Config) -> None:
        """Apply a re-read configuration (SIGHUP) to what comes next, dropping nothing.

        New connections, sessions and messages get the new limits, sizes, timeouts,
        trusted networks and policy; sessions already open finish under the settings
        they started with. The TLS key pair is loaded into the same context, so new
        handshakes present the new certificate and established sessions go on.
        Listen addresses and the host name need a restart (``relay.reload``).

        Raises:
            TlsConfigError, ssl.SSLError, OSError: the new key pair cannot be loaded;
                the old one stays in use (and nothing else was changed).
        """
        smtp = config.smtp
        if self._ssl_context is not None:
            pair = ensure_key_pair(config)
            self._ssl_context.load_cert_chain(str(pair.cert_file), str(pair.key_file))
            sample_certificate(pair.cert_file)
        self._config = config
        self._rate.reconfigure(smtp.ip_connection_rate, TrustedNetworks(smtp.trusted_networks))
        self._per_ip.reconfigure(
            smtp.max_connections_per_ip, TrustedNetworks(smtp.per_ip_exempt_networks)
        )
        self._shared.auth_failures.reconfigure(
            smtp.auth_failure_limit, smtp.auth_failure_window, smtp.auth_block_time
        )
        self._shared.budget.resize(smtp.memory_budget)
        self._shared = attrs.evolve(self._shared, settings=_policy_settings(config))
        self._settings = _session_settings(
            config, self._hostname, self._ssl_context is not None
        )
        metrics.SMTP_CONNECTION_LIMIT.set(smtp.max_connections)

    def statistics(self) -> ServerStatistics:
        return ServerStatistics(
            connections=self._connections,
            active_sessions=len(self._sessions),
            refused_busy=self._refused_busy,
            refused_rate=self._refused_rate,
            refused_per_ip=self._refused_per_ip,
            session_faults=self._faults,
        )

    async def serve(
        self,
        shutdown: trio.Event,
        *,
        task_status: trio.TaskStatus[SmtpListeners] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        smtp = self._config.smtp
        plain = await self._listen(smtp.listen)
        implicit: list[trio.SocketListener] = []
        if smtp.implicit_tls_listen:
            implicit = await self._listen(smtp.implicit_tls_listen)
        async with trio.open_nursery() as outer:
            await outer.start(self.committer.run)
            if smtp.shared_limits_interval > 0:
                await outer.start(
                    self.shared_counts.run, self._storage, smtp.shared_limits_interval
                )
            async with trio.open_nursery() as handlers:
                for listener in plain:
                    handlers.start_soon(self._accept_loop, listener, handlers, False)
                for listener in implicit:
                    handlers.start_soon(self._accept_loop, listener, handlers, True)
                bound = SmtpListeners(tuple(map(_port, plain)), tuple(map(_port, implicit)))
                task_status.started(bound)
                log.info("smtp listening", listen=smtp.listen, ports=list(bound.ports),
                         implicit_tls=smtp.implicit_tls_listen or None,
                         implicit_tls_ports=list(bound.implicit_tls_ports))
                await shutdown.wait()
                self._draining = True
                log.info("smtp draining", sessions=len(self._sessions))
                for listener in (*plain, *implicit):
                    await listener.aclose()
                for session in list(self._sessions):
                    session.drain()
                with trio.move_on_after(smtp.shutdown_timeout):
                    while self._sessions:
                        self._no_sessions = trio.Event()
                        await self._no_sessions.wait()
                handlers.cancel_scope.cancel()
            outer.cancel_scope.cancel()
        log.info("smtp stopped")

    async def _listen(self, address: str) -> list[trio.SocketListener]:
        host, port = parse_listen(address)
        backlog = self._config.smtp.listen_backlog
        if self._reuse_port:
            return [await _reuse_port_listener(host, port, backlog)]
        return await trio.open_tcp_listeners(port, host=host or None, backlog=backlog)

    async def _accept_loop(
        self, listener: trio.SocketListener, nursery: trio.Nursery, implicit_tls: bool
    ) -> None:
        while True:
            try:
                stream = await listener.accept()
            except trio.ClosedResourceError:
                return
            except OSError as exc:
                if exc.errno in _TRANSIENT_ACCEPT:
                    log.warning("accept failed, retrying", error=errno.errorcode.get(exc.errno or 0))
                    await trio.sleep(0.1)
                    continue
                raise
            nursery.start_soon(self._handle, stream, implicit_tls)

    async def _handle(self, stream: trio.SocketStream, implicit_tls: bool) -> None:
        try:
            ip = _peer_ip(stream)
            refusal = self._admit(ip)
            if refusal is not None:
                metrics.SMTP_CONNECTIONS.labels("rejected").inc()
                await self._refuse(stream, refusal, implicit_tls)
                return
            metrics.SMTP_CONNECTIONS.labels("accepted").inc()
            self._connections += 1
            self._per_ip.add(ip)
            metrics.SMTP_ACTIVE.inc()
            try:
                correlation_id = uuid.uuid4().hex[:16]
                # This task's own context (trio copies it per task): no context
                # manager to keep alive for the whole session.
                bind(correlation_id=correlation_id, client_ip=ip)
                await self.run_session(stream, ip, correlation_id, implicit_tls)
            finally:
                self._connections -= 1
                self._per_ip.remove(ip)
                metrics.SMTP_ACTIVE.dec()
        except Exception:
            # run_session contains the session's own faults; this is the last line for
            # anything around it (admission, TLS set-up): one connection, never the process.
            self._faults += 1
            log.exception("connection failed")
        finally:
            await trio.aclose_forcefully(stream)

    def _admit(self, ip: str) -> proto.Reply | None:
        """None to admit a new connection from ``ip``, else the 421 to refuse it with."""
        if self._connections >= self._config.smtp.max_connections:
            self._refused_busy += 1
            return TOO_MANY_CONNECTIONS
        if not self._per_ip.allow(ip):
            self._refused_per_ip += 1
            self._log_refusal("too many connections from one address", ip)
            return TOO_MANY_FROM_IP
        if not self._rate.allow(ip):
            self._refused_rate += 1
            self._log_refusal("connection rate limited", ip)
            return RATE_LIMITED
        return None

    def _log_refusal(self, event: str, ip: str) -> None:
        """One line per address and minute: a flood must not become a log flood
        (``statistics()`` counts every refusal)."""
        if self._refusals_logged.count(ip) == 0:
            self._refusals_logged.add(ip)
            log.info(event, client_ip=ip)

    async def _refuse(self, stream: trio.abc.Stream, reply: proto.Reply, implicit_tls: bool) -> None:
        """Say why and close, bounded in time and in how many run at once."""
        if self._refusing >= MAX_REFUSALS_IN_FLIGHT:
            return
        self._refusing += 1
        try:
            await _refuse(stream, reply, self._ssl_context if implicit_tls else None)
        finally:
            self._refusing -= 1

    async def run_session(
        self, stream: trio.abc.Stream, ip: str, correlation_id: str, implicit_tls: bool
    ) -> None:
        """One admitted connection, from greeting to close (also used by tests with
        in-memory streams). Faults inside the session are contained and counted here."""
        if implicit_tls:
            assert self._ssl_context is not None
            stream = trio.SSLStream(stream, self._ssl_context, server_side=True)
            with trio.move_on_after(self._settings.command_timeout) as handshake:
                try:
                    await stream.do_handshake()
                except trio.BrokenResourceError:
                    log.info("tls handshake failed")
                    return
            if handshake.cancelled_caught:
                log.info("tls handshake timed out")
                return
        conn = self._settings.connection(
            tls_active=implicit_tls, starttls=self._ssl_context is not None
        )
        policy = SubmissionPolicy(
            self._shared, SessionInfo(ip, correlation_id, self._hostname), conn
        )
        session = SubmissionSession(stream, conn, policy, self._settings, self._ssl_context)
        self._sessions.add(session)
        if self._draining:
            session.drain()
        log.info("session start")
        try:
            await session.run()
        finally:
            if session.faulted:
                self._faults += 1
            self._sessions.discard(session)
            if not self._sessions:
                self._no_sessions.set()
            log.info("session end")
            await trio.aclose_forcefully(session.stream)


def _peer_ip(stream: trio.SocketStream) -> str:
    try:
        return str(stream.socket.getpeername()[0])
    except OSError:
        return "unknown"


def _port(listener: trio.SocketListener) -> int:
    return int(listener.socket.getsockname()[1])


async def _refuse(stream: trio.abc.Stream, reply: proto.Reply, ssl_context: ssl.SSLContext | None) -> None:
    """Say why, without starting a session (bounded in time); the caller closes."""
    with trio.move_on_after(REFUSAL_TIMEOUT):
        try:
            if ssl_context:
                stream = trio.SSLStream(stream, ssl_context, server_side=True)
            line = f"{reply.code} {reply.enhanced} {reply.text[0]}\r\n".encode("ascii")
            await stream.send_all(line)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


def _policy_settings(config: Config) -> PolicySettings:
    smtp = config.smtp
    return PolicySettings(
        check_header_from=smtp.check_header_from,
        auth_failure_delay=smtp.auth_failure_delay,
        default_messages_per_minute=smtp.account_messages_per_minute,
        default_recipients_per_hour=smtp.account_recipients_per_hour,
        max_junk_commands=smtp.max_junk_commands,
    )


def _session_settings(config: Config, hostname: str, starttls: bool) -> SessionSettings:
    smtp, limits = config.smtp, config.limits
    return SessionSettings(
        hostname=hostname,
        command_timeout=smtp.command_timeout,
        data_timeout=smtp.data_timeout,
        min_data_rate=smtp.min_data_rate,
        limits=proto.Limits(
            max_command_line=limits.max_command_line,
            max_text_line=limits.max_text_line,
            max_recipients=smtp.max_recipients,
            max_message_size=smtp.max_message_size,
            max_errors=limits.max_errors,
        ),
        extensions=proto.Extensions(
            starttls=starttls,
            auth=("PLAIN", "LOGIN"),
            size=True,
            eightbitmime=True,
            smtputf8=True,
            pipelining=True,
            chunking=True,
            enhanced_status_codes=True,
        ),
        bare_line_ending_policy=smtp.bare_line_ending_policy,
        long_line_policy=smtp.long_line_policy,
        auth_requires_tls=smtp.auth_require_tls,
    )


async def _reuse_port_listener(host: str, port: int, backlog: int) -> trio.SocketListener:
    """A listener on ``host:port`` with ``SO_REUSEPORT``, so sibling processes share it
    (an empty host is every IPv4 address). Made with trio's own socket rather than
    ``relay.ports.bind_reuse_port`` + ``from_stdlib_socket``: with the latter a
    child replacing a killed sibling stalled now and then (2 of 10 runs of
    test_supervisor), cause not found."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        await sock.bind((host or "0.0.0.0", port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(sock)


async def serve_smtp(
    runtime: Runtime,
    shutdown: trio.Event,
    *,
    reuse_port: bool = False,
    reloader: Reloader | None = None,
    task_status: trio.TaskStatus[SmtpListeners] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the submission service until ``shutdown`` is set (then drain) or cancelled.

    ``reuse_port``: this is one of several processes sharing the listening ports.
    """
    pair = await trio.to_thread.run_sync(ensure_key_pair, runtime.config)
    sample_certificate(pair.cert_file)
    metrics.SMTP_CONNECTION_LIMIT.set(runtime.config.smtp.max_connections)
    context = server_context(pair)
    if pair.self_signed:
        log.warning("using a self-signed certificate; set tls.cert_file and tls.key_file",
                    cert_file=str(pair.cert_file))
    server = SmtpServer(runtime.config, runtime.storage, context, reuse_port=reuse_port)
    if reloader is not None:
        reloader.register("smtp", server.reload)
    await server.prepare()
    await server.serve(shutdown, task_status=task_status)
