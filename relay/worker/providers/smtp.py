"""SMTP upstream: ``proto.ClientConnection`` driven over trio streams.

Strategy: ``Smtp.deliver`` takes an idle session for this provider from the worker's
``SmtpPool`` or opens one, runs one mail transaction on it and parks it again when
the session is still usable. Opening a session is everything before the first MAIL:
TCP connect, TLS (implicit, or STARTTLS after EHLO), EHLO (HELO when EHLO is refused)
and AUTH, all within ``Context.connect_timeout``. A failure there means the upstream
is unusable right now, not that the message is bad: the result is TEMPORARY and
``unreachable`` (the breaker counts it and the route fails over), whatever the reply
code — a 535 to AUTH or a 554 greeting bounces no mail, it opens the circuit, as
``_http.py`` does for a refused API key.

The transaction: MAIL and one RCPT per envelope recipient (exactly those; headers are
never read), then the message as queued with BDAT when CHUNKING is offered (RFC
3030), else DATA (proto normalizes line ends and dot-stuffs). When the upstream
offers PIPELINING (RFC 2920) MAIL, the RCPTs and the DATA command go in one write
(DATA may end a group, RFC 2920 3.1), so a message costs two round trips, not
three; on a fresh session a BDAT of at most ``PIPELINED_BDAT_MAX`` octets joins the
group too (one round trip). Every reply waits at most
``Context.send_timeout``. Each recipient gets its own result: refused at RCPT (4xx
temporary, 5xx permanent; a hard bounce when the refusal is about the address, see
``address_refused``), or the verdict of the end of data. A reused session is
first sent RSET; if it turns out dead before its MAIL and RCPTs are answered, the
delivery is retried once on a fresh session (no message content was sent yet —
which is why a reused session never pipelines BDAT — so that retry can never
deliver twice). A 354 to a pipelined DATA when no recipient was accepted (an
upstream that ignores RFC 2920 3.1) gets a lone "." — what RFC 2920 3.1 asks of the
client then: no message content, and the session stays usable.

Security decisions:

* ``tls = "starttls"`` (the default) requires STARTTLS: an upstream that does not
  offer it is a failure, never a silent downgrade to plaintext (STARTTLS stripping).
* Certificates are verified (``ssl.create_default_context``: chain and host name)
  unless ``verify = false``; ``ca_file`` replaces the system's CAs.
* Credentials are sent only over TLS, or with ``tls = "none"``, which the operator
  must write out (the default is ``starttls``): a relay on the same host or a private
  network. The password is never logged nor shown by ``repr``.

Config: ``relay.provider_configs.SmtpProviderConfig`` (``host``; ``port`` 587, or 465
with ``tls = "implicit"``; ``tls``; ``verify``; ``ca_file``; ``username`` and
``password``, which go together: AUTH PLAIN, else LOGIN).

Cancellation (the worker's time limit, shutdown): the session is closed at once and
never parked; the worker treats the attempt as timed out.
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
from typing import TYPE_CHECKING

import attrs
import trio

import proto

from ... import models
from ...provider_configs import SmtpProviderConfig
from ._smtp_pool import SmtpPool
from .base import Envelope, ProviderConfigError, RecipientResult, Result, Verdict, clip, settings

if TYPE_CHECKING:
    from ._context import Context

#: Bytes asked of the stream per read.
MAX_RECV = 64 * 1024
#: The largest message a fresh session sends with BDAT in the same write as MAIL and
#: the RCPTs. Beyond it, content sent before MAIL and RCPT are known to be accepted
#: would cost more than the round trip it saves.
PIPELINED_BDAT_MAX = 64 * 1024


def _checked(provider: models.Provider) -> SmtpProviderConfig:
    """The provider's config, plus what only the worker can check (files on its disk).

    Raises: ProviderConfigError: naming the key to fix.
    """
    config = settings(provider, SmtpProviderConfig)
    where = f"smtp provider {provider.name!r}"
    if config.ca_file is not None and not os.path.isfile(config.ca_file):
        raise ProviderConfigError(f"{where}: config.ca_file {config.ca_file!r} is not a readable PEM file")
    if (config.username is None) != (config.password is None):
        raise ProviderConfigError(f"{where}: config.username and config.password go together (strings)")
    return config


def ssl_context(config: SmtpProviderConfig) -> ssl.SSLContext | None:
    """The TLS settings for an upstream; ``None`` with ``tls = "none"``.

    Raises: ProviderConfigError: ``ca_file`` cannot be loaded.
    """
    if config.tls == "none":
        return None
    try:
        context = ssl.create_default_context(cafile=config.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ProviderConfigError(f"smtp provider: cannot load config.ca_file {config.ca_file!r}: {exc}") from exc
    if not config.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _Failed(Exception):
    """The session cannot go on; ``words`` say why, for the delivery log."""

    def __init__(self, words: str, reply: proto.Reply | None = None) -> None:
        super().__init__(words)
        self.words = words
        self.reply = reply


class UpstreamSession:
    """One SMTP session to one upstream: a trio stream and the proto client driving it.

    Owned by one delivery at a time (or parked in the pool). Every method raises
    ``_Failed`` for I/O, protocol and time-limit problems, after which the session is
    unusable and must be closed.
    """

    def __init__(self, stream: trio.abc.Stream, conn: proto.ClientConnection, peer: str) -> None:
        self.stream = stream
        self.conn = conn
        self.peer = peer

    @property
    def usable(self) -> bool:
        return self.conn.state is proto.COMMAND

    async def send(self, *commands: proto.Event) -> None:
        """Write ``commands`` in one piece (a pipelined group, or DATA's content)."""
        data = b"".join(self.conn.send(c) for c in commands)
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise _Failed(f"connection to {self.peer} lost while sending: {_cause(exc)}") from exc

    async def reply(self) -> proto.Reply:
        """The next reply (to the oldest command still waiting for one)."""
        while True:
            try:
                event = self.conn.next_event()
            except proto.RemoteProtocolError as exc:
                raise _Failed(f"{self.peer} broke the SMTP protocol: {exc}") from exc
            if isinstance(event, proto.ServerReply):
                return event.reply
            if isinstance(event, proto.ConnectionClosed):
                raise _Failed(f"connection closed by {self.peer}")
            if event is not proto.NEED_DATA:  # PAUSED: no reply is due; a bug on our side
                raise _Failed(f"internal error: waiting for a reply from {self.peer} when none is due")
            try:
                data = await self.stream.receive_some(MAX_RECV)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise _Failed(f"connection to {self.peer} lost: {_cause(exc)}") from exc
            self.conn.receive_data(bytes(data))

    async def command(self, command: proto.Event) -> proto.Reply:
        await self.send(command)
        return await self.reply()

    async def aclose(self) -> None:
        """QUIT when the session allows it, then close; never raises for I/O."""
        try:
            if self.usable:
                with trio.move_on_after(1):
                    await self.command(proto.Quit())
        except (_Failed, proto.LocalProtocolError):
            pass
        finally:
            await trio.aclose_forcefully(self.stream)


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__ or exc
    return f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__


def words(reply: proto.Reply) -> str:
    """A reply as it appeared on the wire, on one line, for the delivery log."""
    text = " ".join(t for t in reply.text if t)
    return clip(" ".join(str(p) for p in (reply.code, reply.enhanced, text) if p))


def verdict(reply: proto.Reply) -> Verdict:
    """2xx delivered, 5xx permanent; 4xx (and anything odd) temporary."""
    if reply.is_positive:
        return Verdict.DELIVERED
    return Verdict.PERMANENT if reply.is_permanent else Verdict.TEMPORARY


#: Basic codes that, without an enhanced code, are about the mailbox (RFC 5321
#: §4.2.2: 550 mailbox unavailable, 551 user not local, 553 mailbox name not allowed).
_ADDRESS_CODES = frozenset({550, 551, 553})


def address_refused(reply: proto.Reply) -> bool:
    """Whether a reply to RCPT TO refuses the *address* for good (a hard bounce).

    RFC 3463: an enhanced 5.1.x is about the address (bad mailbox, unknown domain,
    ...), 5.2.1 a disabled mailbox. Without an enhanced code, 550, 551 and 553. Never
    a 5.7.x (policy: relaying, reputation, authentication), a 5.2.2 full mailbox, a
    4xx, nor any reply to MAIL or the data: those say nothing about the mailbox.
    """
    if not reply.is_permanent:
        return False
    if reply.enhanced is not None:
        return reply.enhanced.startswith("5.1.") or reply.enhanced == "5.2.1"
    return reply.code in _ADDRESS_CODES


class _DeadReused(Exception):
    """A reused session died before the end of the message was sent: retry on a fresh one."""


class Smtp:
    """The ``smtp`` provider; see the module docstring."""

    def __init__(self, provider: models.Provider, context: Context) -> None:
        self._settings = _checked(provider)
        self._ssl = ssl_context(self._settings)
        self._hostname = context.hostname
        self._connect_timeout = context.connect_timeout
        self._send_timeout = context.send_timeout
        self._pool: SmtpPool = context.smtp_pool
        digest = hashlib.sha256(json.dumps(provider.config, sort_keys=True, default=str).encode()).hexdigest()
        self._key = (provider.id, digest)

    def __repr__(self) -> str:
        s = self._settings
        return f"Smtp({s.peer}, tls={s.tls}, verify={s.verify}, user={s.username!r})"

    async def aclose(self) -> None:
        await self._pool.close_idle(self._key)

    # ------------------------------------------------------------ delivering

    async def deliver(self, envelope: Envelope) -> Result:
        session = self._pool.take(self._key)
        if session is not None:
            assert isinstance(session, UpstreamSession)
            try:
                return await self._deliver_on(session, envelope, reused=True)
            except _DeadReused:
                pass  # closed already; one fresh try below
        try:
            session = await self._open()
        except _Failed as exc:
            return Result.whole(Verdict.TEMPORARY, exc.words, envelope.rcpt_to, unreachable=True)
        return await self._deliver_on(session, envelope, reused=False)

    async def _deliver_on(self, session: UpstreamSession, envelope: Envelope, *, reused: bool) -> Result:
        """One transaction; parks the session if it is still usable, else closes it."""
        park = False
        progress = _Progress()
        try:
            result = await self._transaction(session, envelope, reused, progress)
            park = session.usable
            return result
        except _Failed as exc:
            if reused and not progress.session_ok:
                raise _DeadReused() from exc
            return self._failed_midway(exc, envelope, progress)
        except proto.LocalProtocolError as exc:  # the upstream led us somewhere proto forbids
            return self._failed_midway(_Failed(f"{self._settings.peer}: {exc}"), envelope, progress)
        finally:
            if not park:
                await trio.aclose_forcefully(session.stream)
            elif not self._pool.park(self._key, session):
                await session.aclose()  # the pool is full or closed: QUIT politely

    def _failed_midway(self, exc: _Failed, envelope: Envelope, progress: _Progress) -> Result:
        """The session broke after it was established: what is known stays known."""
        results = []
        for rcpt in envelope.rcpt_to:
            known = progress.refused.get(rcpt)
            if known is not None:
                results.append(known)
            else:
                why = exc.words + (" after the message was sent; it may have been delivered" if progress.end_sent else "")
                results.append(RecipientResult(rcpt, Verdict.TEMPORARY, clip(why)))
        return _combine(tuple(results), exc.words)

    async def _transaction(
        self, session: UpstreamSession, envelope: Envelope, reused: bool, progress: _Progress
    ) -> Result:
        caps = session.conn.capabilities or proto.Capabilities()
        parsed = _addresses(envelope)
        if isinstance(parsed, Result):
            return parsed
        reverse_path, forward_paths, invalid = parsed
        addresses = [a for _, a in forward_paths] + ([reverse_path] if reverse_path else [])
        needs_utf8 = not all(a.is_ascii for a in addresses)
        if needs_utf8 and not caps.smtputf8:
            return Result.whole(
                Verdict.PERMANENT,
                f"{self._settings.peer} does not offer SMTPUTF8, which these addresses need (RFC 6531)",
                envelope.rcpt_to,
            )
        mail = proto.MailFrom(reverse_path, _mail_params(envelope, caps, needs_utf8))
        rcpts = [proto.RcptTo(address) for _, address in forward_paths]
        end = _pipelined_end(envelope.raw, caps, reused)
        if isinstance(end, proto.Bdat):
            progress.end_sent = True  # from here on the upstream may have the message
        replies = await self._envelope_replies(session, mail, rcpts, caps, reused, end)
        progress.session_ok = True
        mail_reply = replies[0]
        if not mail_reply.is_positive:
            # A broken upstream may still have said 250 to a RCPT: then no "." may follow.
            await self._drain_end(session, end, lone_dot=not any(r.is_positive for r in replies[1:]))
            return Result.whole(verdict(mail_reply), words(mail_reply), envelope.rcpt_to)

        recipients: dict[str, RecipientResult] = dict(invalid)
        accepted: list[str] = []
        for (rcpt, _), reply in zip(forward_paths, replies[1:], strict=False):
            if reply.is_positive:
                accepted.append(rcpt)
            else:
                recipients[rcpt] = RecipientResult(
                    rcpt, verdict(reply), words(reply), hard_bounce=address_refused(reply)
                )
        progress.refused = dict(recipients)
        if not accepted:
            await self._drain_end(session, end, lone_dot=True)
            ordered = tuple(recipients[r] for r in envelope.rcpt_to)
            return _combine(ordered, "no recipient accepted: " + "; ".join(
                f"{r.recipient}: {r.response}" for r in ordered))

        final = await self._send_message(session, envelope.raw, caps, progress, end)
        for rcpt in accepted:
            recipients[rcpt] = RecipientResult(rcpt, verdict(final), words(final))
        return _combine(tuple(recipients[r] for r in envelope.rcpt_to), words(final))

    async def _envelope_replies(
        self,
        session: UpstreamSession,
        mail: proto.MailFrom,
        rcpts: list[proto.RcptTo],
        caps: proto.Capabilities,
        reused: bool,
        end: proto.DataStart | proto.Bdat | None,
    ) -> list[proto.Reply]:
        """The replies to MAIL and to each RCPT sent (none after a refused MAIL, or
        after the first refused RCPT without PIPELINING). ``end`` (only with
        PIPELINING) ends the group; its reply is left for ``_send_message`` or
        ``_drain_end``, so the RCPT verdicts are known before it is awaited."""
        # move_on_after and a raise after it, not fail_after: this runs per message, and
        # fail_after wraps the same cancel scope in a generator context manager.
        with trio.move_on_after(self._send_timeout):
            # A reused session first gets RSET: a clean slate, and the probe that
            # finds a parked session dead. With PIPELINING it rides in the same
            # group as MAIL and the RCPTs (RFC 2920), costing no round trip.
            lead = [proto.Rset()] if reused else []
            if caps.pipelining:
                tail = [end] if end is not None else []
                await session.send(*lead, mail, *rcpts, *tail)
                replies = [await session.reply() for _ in range(len(lead) + 1 + len(rcpts))]
            else:
                replies = [await session.command(lead[0])] if lead else []
                if not replies or replies[0].is_positive:
                    replies.append(await session.command(mail))
                    if replies[-1].is_positive:
                        replies += [await session.command(r) for r in rcpts]
            if lead:
                rset, replies = replies[0], replies[1:]
                if not rset.is_positive:  # a 421: the upstream is closing the session
                    raise _Failed(f"{self._settings.peer} refused RSET: {words(rset)}", rset)
            return replies
        raise _Failed(f"no reply from {self._settings.peer} within {self._send_timeout:g}s (MAIL/RCPT)")

    async def _send_message(
        self, session: UpstreamSession, raw: bytes, caps: proto.Capabilities, progress: _Progress,
        sent: proto.DataStart | proto.Bdat | None,
    ) -> proto.Reply:
        """DATA (or BDAT): the reply that decides for every accepted recipient.

        ``sent``: the DATA or BDAT already written with the envelope, whose reply is next.
        """
        with trio.move_on_after(self._send_timeout):  # see _envelope_replies
            if isinstance(sent, proto.Bdat):
                return await session.reply()
            if sent is None and caps.chunking:
                progress.end_sent = True  # from here on the upstream may have the message
                await session.send(proto.Bdat(raw, last=True))
                return await session.reply()
            go = await session.reply() if sent is not None else await session.command(proto.DataStart())
            if go.code != 354:
                return go
            progress.end_sent = True
            await session.send(proto.Data(raw), proto.EndOfData())
            return await session.reply()
        raise _Failed(f"no reply from {self._settings.peer} within {self._send_timeout:g}s (message data)")

    async def _drain_end(
        self, session: UpstreamSession, sent: proto.DataStart | proto.Bdat | None, *, lone_dot: bool
    ) -> None:
        """Read the reply to a pipelined DATA or BDAT whose transaction is over (MAIL or
        every RCPT refused), so the session can be parked. A 354 (an upstream that
        ignores RFC 2920 3.1 and accepts DATA without a recipient) is answered with a
        lone "." as that section asks — only when ``lone_dot`` (no RCPT was answered
        250), so the empty message has no recipient to go to; its refusal (or
        acceptance) is read and dropped. Never raises: if a reply does not come, or a
        354 may not be answered, the session is left unusable and is closed instead."""
        if sent is None:
            return
        with trio.move_on_after(self._send_timeout):
            try:
                reply = await session.reply()
                if reply.code == 354 and isinstance(sent, proto.DataStart) and lone_dot:
                    await session.send(proto.EndOfData())
                    await session.reply()
            except _Failed:
                pass

    # ------------------------------------------------------------ opening

    async def _open(self) -> UpstreamSession:
        """TCP, TLS, EHLO/HELO, STARTTLS, AUTH within ``connect_timeout``.

        Raises:
            _Failed: anything went wrong; nothing is left open.
        """
        s = self._settings
        try:
            with trio.fail_after(self._connect_timeout):
                stream: trio.abc.Stream = await trio.open_tcp_stream(s.host, s.port)
                try:
                    return await self._handshake(stream)
                except BaseException:
                    await trio.aclose_forcefully(stream)
                    raise
        except trio.TooSlowError:
            raise _Failed(
                f"no SMTP session with {s.peer} within {self._connect_timeout:g}s (worker.connect_timeout)"
            ) from None
        except OSError as exc:
            raise _Failed(f"cannot connect to {s.peer}: {exc.strerror or exc}") from exc

    async def _handshake(self, stream: trio.abc.Stream) -> UpstreamSession:
        s = self._settings
        implicit = s.tls == "implicit"
        if implicit:
            stream = await self._start_tls(stream)
        # RFC 5322 §2.1.1: no line over 998 octets on the wire; smtp.long_line_policy
        # "split" accepted such lines, so break them here as Postfix does.
        conn = proto.ClientConnection(tls_active=implicit, long_line_policy="split")
        session = UpstreamSession(stream, conn, s.peer)
        try:
            greeting = await session.reply()
            if greeting.code != 220:
                raise _Failed(f"{s.peer} refused the session: {words(greeting)}", greeting)
            await self._hello(session)
            if s.tls == "starttls":
                caps = session.conn.capabilities
                if caps is None or not caps.starttls:
                    raise _Failed(
                        f"{s.peer} does not offer STARTTLS; refusing to continue in plaintext "
                        "(set config.tls to \"implicit\" for port 465, or \"none\" to allow plaintext)"
                    )
                reply = await session.command(proto.StartTLS())
                if reply.code != 220:
                    raise _Failed(f"{s.peer} refused STARTTLS: {words(reply)}", reply)
                session.stream = await self._start_tls(session.stream)
                session.conn.tls_established()
                await self._hello(session, allow_helo=False)
            if s.username is not None:
                await self._auth(session)
        except proto.LocalProtocolError as exc:
            raise _Failed(f"{s.peer}: {exc}") from exc
        return session

    async def _start_tls(self, stream: trio.abc.Stream) -> trio.SSLStream[trio.abc.Stream]:
        assert self._ssl is not None
        tls = trio.SSLStream(stream, self._ssl, server_hostname=self._settings.host)
        try:
            await tls.do_handshake()
        except trio.BrokenResourceError as exc:
            cause = exc.__cause__
            if isinstance(cause, ssl.SSLCertVerificationError):
                raise _Failed(
                    f"TLS with {self._settings.peer}: certificate verification failed ({cause.verify_message}); "
                    "set config.ca_file to the CA that issued it, or config.verify = false"
                ) from exc
            raise _Failed(f"TLS handshake with {self._settings.peer} failed: {_cause(exc)}") from exc
        return tls

    async def _hello(self, session: UpstreamSession, *, allow_helo: bool = True) -> None:
        reply = await session.command(proto.Ehlo(self._hostname))
        if reply.is_permanent and reply.code != 421 and allow_helo and self._settings.tls != "starttls":
            reply = await session.command(proto.Helo(self._hostname))  # RFC 5321 3.2
        if not reply.is_positive:
            raise _Failed(f"{self._settings.peer} refused EHLO: {words(reply)}", reply)

    async def _auth(self, session: UpstreamSession) -> None:
        s = self._settings
        assert s.username is not None and s.password is not None
        offered = (session.conn.capabilities or proto.Capabilities()).auth
        mechanism = next((m for m in ("PLAIN", "LOGIN") if m in offered), None)
        if mechanism is None:
            raise _Failed(
                f"{s.peer} offers no AUTH mechanism we use (PLAIN, LOGIN); it offers: {' '.join(offered) or 'none'}"
            )
        reply = await session.command(proto.AuthCredentials(mechanism, "", s.username, s.password))
        while reply.code == 334:
            reply = await session.command(proto.AuthResponse())
        if reply.code != 235:
            raise _Failed(f"{s.peer} refused AUTH {mechanism} for {s.username!r}: {words(reply)}", reply)


def _pipelined_end(raw: bytes, caps: proto.Capabilities, reused: bool) -> proto.DataStart | proto.Bdat | None:
    """What may end the envelope's pipelined group: DATA, or a small BDAT on a fresh
    session (see the module docstring); nothing without PIPELINING."""
    if not caps.pipelining:
        return None
    if not caps.chunking:
        return proto.DataStart()
    if not reused and len(raw) <= PIPELINED_BDAT_MAX:
        return proto.Bdat(raw, last=True)
    return None


@attrs.define
class _Progress:
    """How far a transaction got, for what to report when the session breaks."""

    #: The session answered RSET, MAIL and RCPT: a reused one was not dead.
    session_ok: bool = False
    #: The end of the message was written: the upstream may have it.
    end_sent: bool = False
    #: Recipients already refused at RCPT (their result stands).
    refused: dict[str, RecipientResult] = attrs.field(factory=dict)


def _combine(recipients: tuple[RecipientResult, ...], response: str) -> Result:
    found = {r.verdict for r in recipients}
    overall = next(v for v in Verdict if v in found)  # DELIVERED, TEMPORARY, PERMANENT
    return Result(verdict=overall, response=clip(response), recipients=recipients)


def _mail_params(envelope: Envelope, caps: proto.Capabilities, needs_utf8: bool) -> dict[str, str | None]:
    """MAIL's parameters: SIZE, BODY and SMTPUTF8 where the upstream offers them."""
    params: dict[str, str | None] = {}
    if caps.size is not None:
        params["SIZE"] = str(len(envelope.raw))
    if caps.eightbitmime and not envelope.raw.isascii():
        params["BODY"] = "8BITMIME"
    if needs_utf8:
        params["SMTPUTF8"] = None
    return params


def _addresses(
    envelope: Envelope,
) -> Result | tuple[proto.Address | None, list[tuple[str, proto.Address]], dict[str, RecipientResult]]:
    """Parse the envelope for proto; an address SMTP cannot carry is refused for good."""
    try:
        reverse_path = proto.parse_path(f"<{envelope.mail_from}>", smtputf8=True, allow_null=True)
    except ValueError as exc:
        return Result.whole(
            Verdict.PERMANENT, f"the sender {envelope.mail_from!r} cannot be sent on: {exc}", envelope.rcpt_to
        )
    forward: list[tuple[str, proto.Address]] = []
    invalid: dict[str, RecipientResult] = {}
    for rcpt in envelope.rcpt_to:
        try:
            address = proto.parse_path(f"<{rcpt}>", smtputf8=True, allow_postmaster=True)
        except ValueError as exc:
            invalid[rcpt] = RecipientResult(rcpt, Verdict.PERMANENT, f"not an address SMTP can carry: {exc}")
            continue
        assert address is not None
        forward.append((rcpt, address))
    if not forward:
        return _combine(tuple(invalid[r] for r in envelope.rcpt_to), "no valid recipient")
    return reverse_path, forward, invalid


__all__ = ["Smtp", "UpstreamSession", "address_refused", "ssl_context", "verdict", "words"]
