"""Submission policy: one session's answers to proto's events.

Strategy: ``proto.ServerConnection`` owns the protocol (sequence, syntax, limits);
this module owns the decisions only a relay can make — is this login right, may
this account use this sender, is it over its sending limits, was the message
stored — and turns each into a ``proto.Reply``. It never touches a socket: the
session driver feeds it events and writes what it returns.

No relay is open: MAIL before AUTH gets 530 5.7.0 — unless the client's address is
inside one of an enabled account's IP credential networks (``ip_credentials``); then
the transaction is that account's, with every check an authenticated one gets
(sender domains, the From: header, sending limits). An AUTH in the session wins over
the address. A 250 after the data is sent only once the queue row has committed
(``BatchWriter.write``). A recipient on the account's suppression list is refused at
RCPT (550 5.1.1, ``suppressions``), never accepted and dropped.

DKIM: when the message's ``From:`` names one domain and the account has enabled keys
for it, the message is signed with each (``relay.smtp.dkim``) before it is stored. If
that fails the client gets ``451 4.3.0`` and may retry: a message is never stored
unsigned when its account asked for signatures.

What proto knows, proto owns: the EHLO name, TLS, the authenticated identity, the
reverse path and the accepted recipients are read from the connection's ``session``
and ``transaction`` views (``Connection``) at the moment an event is answered, never
copied. proto records a (command, reply) pair when the reply is sent, so while the
policy answers a RCPT the transaction holds the recipients accepted *before* it. What
proto cannot know stays here: which account logged in or owns the transaction, the
message's bytes and its memory reservation.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Protocol

import attrs
import trio

import proto

from .. import dkim, metrics, models
from ..logging import get_logger
from ..storage import BatchWriter, StorageError
from .compose import HeaderTooLarge, Prepared, domain_allowed, prepare
from .credentials import Authenticator
from .dkim import SIGNING_COPIES, DkimSigner, KeysUnavailable
from .ip_credentials import IpCredentialLookup
from .limits import AccountLimits, AuthFailureTracker, MemoryBudget
from .suppressions import SuppressionCheck

log = get_logger("relay.smtp")


def _reply(code: int, enhanced: str | None, text: str) -> proto.Reply:
    return proto.Reply(code, text, enhanced)


#: RFC 4954 §6 / RFC 3463: the replies this policy gives, in one place.
AUTH_OK = _reply(235, "2.7.0", "Authentication successful")
AUTH_FAILED = _reply(535, "5.7.8", "Authentication credentials invalid")
AUTH_TEMPFAIL = _reply(454, "4.7.0", "Temporary authentication failure, try again later")
AUTH_BLOCKED = _reply(421, "4.7.0", "Too many failed logins from your address, try again later")
AUTH_REQUIRED = _reply(530, "5.7.0", "Authentication required")
SENDER_REFUSED = _reply(553, "5.7.1", "Sender address not allowed for this account")
RATE_LIMITED_MESSAGES = _reply(450, "4.7.1", "Message rate limit exceeded, try again later")
RATE_LIMITED_RECIPIENTS = _reply(450, "4.7.1", "Recipient rate limit exceeded, try again later")
FROM_REFUSED = _reply(550, "5.7.1", "From: header domain not allowed for this account")
NO_MEMORY = _reply(452, "4.3.1", "Insufficient system storage, try again later")
HEADER_TOO_LARGE = _reply(552, "5.3.4", "Message header too large")
TOO_MANY_JUNK = _reply(421, "4.7.0", "Too many commands without mail, closing connection")
STORE_FAILED = _reply(451, "4.3.0", "Local error storing the message, try again later")
#: The IP credential lookup failed: temporary, so a client that has one retries rather
#: than bouncing its mail; one that has none learns it (530) once the database is back.
LOOKUP_FAILED = _reply(451, "4.3.0", "Local error checking your address, try again later")
#: DKIM keys unreadable or a signature failed: temporary, so nothing unsigned leaves
#: for an account that asked for signatures, and the client keeps the message.
SIGN_FAILED = _reply(451, "4.3.0", "Local error DKIM-signing the message, try again later")
#: RFC 3463 5.6.0: a header block dkimpy cannot parse (e.g. "Subject : x", obsolete
#: syntax) will not sign on a retry either.
UNSIGNABLE = _reply(550, "5.6.0", "Message header cannot be DKIM-signed; check its header fields")
#: The suppression lookup failed: temporary, never a 250 for a recipient we could not check.
RECIPIENT_CHECK_FAILED = _reply(451, "4.3.0", "Local error checking the recipient, try again later")

#: Copies of a message the budget accounts for while it is held: the received body
#: and the prepared message, then the prepared message and the driver's encoding.
COPIES = 2
#: Octets reserved at DATA when the client declared no SIZE, and the step by which
#: a reservation grows.
MIN_RESERVATION = 64 * 1024


class Connection(Protocol):
    """The read-only views of ``proto.ServerConnection`` the policy decides by."""

    @property
    def session(self) -> proto.SessionFacts: ...

    @property
    def transaction(self) -> proto.Transaction | None: ...


@attrs.frozen
class SessionInfo:
    """Facts about the connection the policy needs."""

    client_ip: str
    correlation_id: str
    hostname: str


@attrs.frozen
class PolicySettings:
    check_header_from: bool
    auth_failure_delay: float
    default_messages_per_minute: int
    default_recipients_per_hour: int
    #: ``smtp.max_junk_commands``: EHLO/HELO, NOOP, RSET, VRFY, HELP since the last
    #: accepted message (Postfix's smtpd_junk_command_limit), so a client cannot keep
    #: a slot for ever by sending one every command_timeout.
    max_junk_commands: int = 100


@attrs.frozen
class Shared:
    """Process-wide objects every session uses (one owner: the server)."""

    authenticator: Authenticator
    #: Group commit of accepted messages (``storage.messages.writer``).
    committer: BatchWriter[models.NewMessage]
    auth_failures: AuthFailureTracker
    budget: MemoryBudget
    account_limits: AccountLimits
    settings: PolicySettings
    ip_credentials: IpCredentialLookup
    suppressions: SuppressionCheck
    #: DKIM keys per account (None: no signing at all, e.g. in unit tests).
    dkim: DkimSigner | None = None


class SubmissionPolicy:
    """Answers for one session. Mutable state here belongs to that session alone."""

    def __init__(self, shared: Shared, info: SessionInfo, conn: Connection) -> None:
        self._shared = shared
        self._info = info
        self._conn = conn
        #: The login proto recorded at our 235 and the account it maps to; it holds
        #: only while ``conn.session.authenticated`` still names that login (proto
        #: forgets it at STARTTLS, RFC 3207 4.2).
        self._login: tuple[str, models.Account] | None = None
        #: The client address's IP credential and its account, looked up at the first
        #: MAIL without AUTH (``_ip_looked_up``); None: the address has none.
        self._ip_credential: tuple[models.IpCredential, models.Account] | None = None
        self._ip_looked_up = False
        #: Set when the policy decided the session must end after the reply.
        self.close_after_reply = False
        self._junk = 0
        self._reset_transaction()

    @property
    def account(self) -> models.Account | None:
        """The account that AUTHenticated in this session, if proto still says so."""
        if self._login is None:
            return None
        authcid, account = self._login
        return account if self._conn.session.authenticated == authcid else None

    # ------------------------------------------------------------ transaction

    def _reset_transaction(self) -> None:
        #: Whose transaction this is, decided at MAIL (AUTH, else the IP credential).
        self._sender: models.Account | None = None
        #: Set when ``_sender`` came from an IP credential rather than AUTH.
        self._via_network: models.IpCredential | None = None
        #: The message as received: one growing buffer rather than a list of reads,
        #: so a 5 MB message is one allocation, not eighty to join later.
        self._body = bytearray()
        self._received = 0
        self._reserved = 0
        self._over_budget = False

    def release(self) -> None:
        """Drop the transaction's buffered content (also on disconnect)."""
        self._shared.budget.release(self._reserved)
        self._reset_transaction()

    # ------------------------------------------------------------ dispatch

    async def respond(self, event: proto.Event) -> proto.Reply | None:
        """The reply to send for ``event``, or None when none is owed (Data)."""
        if isinstance(event, proto.Data):
            self._buffer(event.data)
            return None
        if _is_junk(event) and self._too_much_junk():
            return TOO_MANY_JUNK
        if isinstance(event, proto.AuthRequest):
            if self._shared.auth_failures.is_blocked(self._info.client_ip):
                self.close_after_reply = True
                return AUTH_BLOCKED
            return event.reply
        if isinstance(event, proto.AutoReply):  # ProtocolViolation included
            return event.reply
        if isinstance(event, proto.AuthCredentials):
            return await self._auth(event)
        if isinstance(event, proto.MailFrom):
            return await self._mail(event)
        if isinstance(event, proto.RcptTo):
            return await self._rcpt(event)
        if isinstance(event, proto.DataStart):
            return self._data_start()
        if isinstance(event, proto.BdatChunk):
            return self._bdat_chunk(event)
        if isinstance(event, proto.EndOfData):
            return await self._end_of_data(event)
        return self._session_command(event)

    def _too_much_junk(self) -> bool:
        """Count a command that moves no mail; past ``max_junk_commands`` the session ends."""
        self._junk += 1
        if self._junk > self._shared.settings.max_junk_commands:
            log.info("too many junk commands", client_ip=self._info.client_ip)
            self.close_after_reply = True
            return True
        return False

    def _session_command(self, event: proto.Event) -> proto.Reply:
        """EHLO/HELO, STARTTLS, RSET, NOOP and QUIT: none needs the storage."""
        if isinstance(event, (proto.Ehlo, proto.Helo)):
            self.release()
            return _reply(250, None, f"{self._info.hostname} at your service")
        if isinstance(event, proto.StartTLS):
            # RFC 3207 4.2: nothing learnt before TLS survives it; proto resets its
            # session (and with it ``account``) once the handshake is done.
            self.release()
            return _reply(220, "2.0.0", "Ready to start TLS")
        if isinstance(event, proto.Rset):
            self.release()
            return _reply(250, "2.0.0", "Ok")
        if isinstance(event, proto.Noop):
            return _reply(250, "2.0.0", "Ok")
        if isinstance(event, proto.Quit):
            self.close_after_reply = True
            return _reply(221, "2.0.0", "Bye")
        raise AssertionError(f"unhandled event {event!r}")

    def _data_start(self) -> proto.Reply:
        # Reserve before the client sends a byte: a refusal now costs it nothing
        # and costs us no memory (RFC 1870 SIZE tells how much is coming).
        declared_size = self._declared_size()
        if not self._reserve(COPIES * max(declared_size, MIN_RESERVATION)):
            log.info("message refused", reason="memory budget exhausted",
                     declared_size=declared_size)
            return NO_MEMORY
        return _reply(354, None, "End data with <CR><LF>.<CR><LF>")

    def _bdat_chunk(self, event: proto.BdatChunk) -> proto.Reply:
        if event.refusal is not None:
            self.release()
            return event.refusal
        if self._over_budget:
            self.release()
            return NO_MEMORY
        return _reply(250, "2.0.0", f"{event.size} octets received")

    # ------------------------------------------------------------ AUTH

    async def _auth(self, event: proto.AuthCredentials) -> proto.Reply:
        ip = self._info.client_ip
        if self._shared.auth_failures.is_blocked(ip):
            self.close_after_reply = True
            return AUTH_BLOCKED
        try:
            account = await self._shared.authenticator.verify(event.authcid, event.password)
        except StorageError:
            return AUTH_TEMPFAIL
        # RFC 4616 §2: an authorization identity other than the login is a request to
        # act as someone else, which we never grant.
        if account is not None and event.authzid and event.authzid.lower() != event.authcid.lower():
            account = None
        if account is None:
            metrics.SMTP_AUTH.labels("failure").inc()
            blocked = self._shared.auth_failures.record_failure(ip)
            log.info("auth failed", client_ip=ip, mechanism=event.mechanism, blocked=blocked)
            await trio.sleep(self._shared.settings.auth_failure_delay)
            if blocked:
                self.close_after_reply = True
                return AUTH_BLOCKED
            return AUTH_FAILED
        metrics.SMTP_AUTH.labels("success").inc()
        # proto records event.authcid as session.authenticated when the 235 is sent.
        self._login = (event.authcid, account)
        log.info("auth ok", client_ip=ip, account_id=str(account.id), mechanism=event.mechanism)
        return AUTH_OK

    # ------------------------------------------------------------ envelope

    def _limit(self, own: int | None, default: int) -> int:
        return default if own is None else own

    async def _ip_credential_account(
        self,
    ) -> tuple[models.IpCredential, models.Account] | None:
        """The client address's IP credential and account (looked up once per session).

        Raises:
            StorageError: the lookup failed; nothing is remembered, the next MAIL asks again.
        """
        if not self._ip_looked_up:
            self._ip_credential = await self._shared.ip_credentials.find(self._info.client_ip)
            self._ip_looked_up = True
            if self._ip_credential is not None:
                credential, account = self._ip_credential
                log.info("ip credential", client_ip=self._info.client_ip,
                         account_id=str(account.id), network=str(credential.network),
                         credential_id=str(credential.id))
        return self._ip_credential

    async def _mail(self, event: proto.MailFrom) -> proto.Reply:
        account = self.account
        via_network = None
        if account is None:
            try:
                found = await self._ip_credential_account()
            except StorageError as exc:
                log.warning("ip credential lookup failed", client_ip=self._info.client_ip,
                            error=str(exc))
                return LOOKUP_FAILED
            if found is None:
                return AUTH_REQUIRED
            via_network, account = found
        self.release()
        if event.reverse_path is None or not domain_allowed(
            event.reverse_path.domain, account.allowed_domains
        ):
            log.info("sender refused", account_id=str(account.id),
                     sender=str(event.reverse_path or "<>"))
            return SENDER_REFUSED
        per_minute = self._limit(
            account.messages_per_minute, self._shared.settings.default_messages_per_minute
        )
        if not self._shared.account_limits.may_send_message(account.id, per_minute):
            return RATE_LIMITED_MESSAGES
        self._sender, self._via_network = account, via_network
        return _reply(250, "2.1.0", "Sender ok")

    async def _rcpt(self, event: proto.RcptTo) -> proto.Reply:
        account = self._sender
        if account is None:  # proto refuses RCPT before MAIL; MAIL needs an account
            return AUTH_REQUIRED
        per_hour = self._limit(
            account.recipients_per_hour, self._shared.settings.default_recipients_per_hour
        )
        if not self._shared.account_limits.may_add_recipient(
            account.id, per_hour, pending=len(self._accepted_recipients())
        ):
            return RATE_LIMITED_RECIPIENTS
        address = str(event.forward_path)
        try:
            entry = await self._shared.suppressions.find(account.id, address)
        except StorageError as exc:
            log.warning("suppression lookup failed", account_id=str(account.id), error=str(exc))
            return RECIPIENT_CHECK_FAILED
        if entry is not None:
            log.info("recipient suppressed", account_id=str(account.id), entry_id=str(entry.id))
            return suppressed_reply(address, entry)
        return _reply(250, "2.1.5", "Recipient ok")  # proto adds it to the transaction

    # ------------------------------------------------------------ proto's views

    def _accepted_recipients(self) -> tuple[str, ...]:
        """Recipients that got a 250 in this transaction so far (as proto recorded
        them: the RCPT being answered is not among them yet)."""
        transaction = self._conn.transaction
        if transaction is None:
            return ()
        return tuple(str(path) for path in transaction.forward_paths)

    def _declared_size(self) -> int:
        """The accepted MAIL's ``SIZE=`` (RFC 1870), 0 if none (proto checked its syntax)."""
        transaction = self._conn.transaction
        if transaction is None:
            return 0
        return transaction.mail.size or 0

    # ------------------------------------------------------------ content

    def _reserve(self, total: int) -> bool:
        """Hold at least ``total`` octets of the budget for this transaction."""
        if total <= self._reserved:
            return True
        if not self._shared.budget.try_reserve(total - self._reserved):
            return False
        self._reserved = total
        return True

    def _buffer(self, data: bytes) -> None:
        if self._over_budget:
            return
        self._received += len(data)
        # Grow in steps of at least MIN_RESERVATION so a client without SIZE does not
        # cost a budget call per read.
        need = COPIES * self._received
        if need > self._reserved and not (
            self._reserve(max(need, self._reserved + COPIES * MIN_RESERVATION))
            or self._reserve(need)
        ):
            # Keep reading to the end of data (proto consumes it); answer 452 then.
            self._over_budget = True
            self._shared.budget.release(self._reserved)
            self._reserved = 0
            self._body = bytearray()
            return
        self._body += data

    async def _end_of_data(self, event: proto.EndOfData) -> proto.Reply:
        account = self._sender
        try:
            if event.refusal is not None:
                log.info("message refused", account_id=str(account.id) if account else None,
                         reason=event.refusal.text[0], code=event.refusal.code)
                return event.refusal
            if self._over_budget:
                log.warning("message refused", reason="memory budget exhausted")
                return NO_MEMORY
            transaction = self._conn.transaction
            assert account is not None and transaction is not None
            assert transaction.reverse_path is not None  # _mail refuses <>
            session = self._conn.session
            recipients = self._accepted_recipients()
            queue_id = uuid.uuid4()
            prepared = self._prepare(account, session, queue_id)
            if isinstance(prepared, proto.Reply):
                return prepared
            signed = await self._dkim_sign(account, prepared)
            if isinstance(signed, proto.Reply):
                return signed
            # The unsigned bytes go with the old value: one copy held, not two.
            prepared = attrs.evolve(prepared, raw=signed)
            message = models.NewMessage(
                id=queue_id,
                account_id=account.id,
                mail_from=str(transaction.reverse_path),
                rcpt_to=recipients,
                raw=prepared.raw,
                message_id=prepared.message_id,
                client_ip=self._info.client_ip,
                tls=session.tls,
                correlation_id=self._info.correlation_id,
            )
            return await self._enqueue(account, message)
        finally:
            self.release()

    def _prepare(
        self, account: models.Account, session: proto.SessionFacts, queue_id: uuid.UUID
    ) -> Prepared | proto.Reply:
        """The received body with our trace fields, or the refusal of its header."""
        # The reservation (COPIES x size) covers the received body and the
        # prepared copy, and after that the prepared copy and the database
        # driver's encoding of it; it is released only once the commit returned.
        body, self._body = self._body, bytearray()
        try:
            prepared = prepare(
                body,
                ehlo_name=session.ehlo_name or "",
                client_ip=self._info.client_ip,
                hostname=self._info.hostname,
                queue_id=str(queue_id),
                tls=session.tls,
                # RFC 3848: "A" only for SMTP AUTH; an IP credential is ESMTP(S).
                authenticated=self._via_network is None,
                now=dt.datetime.now(dt.UTC),
            )
        except HeaderTooLarge as exc:
            log.info("message refused", account_id=str(account.id), reason=str(exc))
            return HEADER_TOO_LARGE
        del body
        if self._shared.settings.check_header_from and not all(
            domain_allowed(d, account.allowed_domains) for d in prepared.from_domains
        ):
            log.info("message refused", account_id=str(account.id), reason="From: domain")
            return FROM_REFUSED
        return prepared

    async def _enqueue(self, account: models.Account, message: models.NewMessage) -> proto.Reply:
        """Commit the message (group commit); 250 only once it is stored."""
        try:
            with metrics.timed(metrics.SMTP_ENQUEUE_SECONDS):
                await self._shared.committer.write(message)
        except StorageError as exc:
            log.warning("message not stored", account_id=str(account.id), error=str(exc))
            return STORE_FAILED
        metrics.SMTP_ENQUEUED.inc()
        self._shared.account_limits.record_message(account.id, len(message.rcpt_to))
        self._junk = 0
        via_network = self._via_network
        log.info("message accepted", account_id=str(account.id), queue_id=str(message.id),
                 size=message.size, recipients=len(message.rcpt_to),
                 auth="ip_credential" if via_network is not None else "smtp_auth",
                 ip_credential=str(via_network.network) if via_network is not None else None)
        return _reply(250, "2.0.0", f"Ok: queued as {message.id}")

    async def _dkim_sign(
        self, account: models.Account, prepared: Prepared
    ) -> bytes | proto.Reply:
        """The message with its ``DKIM-Signature:`` fields in front (and its lines over
        998 octets cut, as the SMTP provider would cut them after signing); unchanged
        when its ``From:`` has no single domain with enabled keys; or the reply refusing it.

        Signing needs ``SIGNING_COPIES`` times the message for a moment (dkimpy's
        copies); that is reserved from the budget first, 452 4.3.1 when it cannot be.
        """
        signer = self._shared.dkim
        domains = {d.rstrip(".") for d in prepared.from_domains}
        if signer is None or len(domains) != 1:
            return prepared.raw
        [domain] = domains
        try:
            keys = await signer.keys_for(account.id, domain)
        except KeysUnavailable as exc:
            log.warning("message not signed", account_id=str(account.id), error=str(exc))
            return SIGN_FAILED
        if not keys:
            return prepared.raw
        if not self._reserve(max(self._reserved, SIGNING_COPIES * len(prepared.raw))):
            log.warning("message refused", reason="memory budget exhausted (DKIM signing)")
            return NO_MEMORY
        try:
            return await signer.sign(prepared.raw, keys)
        except dkim.UnsignableMessage as exc:
            log.info("message refused", account_id=str(account.id), reason=str(exc))
            return UNSIGNABLE
        except dkim.SigningFailed as exc:
            log.error("message not signed", account_id=str(account.id), error=str(exc))
            return SIGN_FAILED


_JUNK_REASONS = frozenset({"VRFY", "HELP"})


def suppressed_reply(address: str, entry: models.Suppression) -> proto.Reply:
    """550 5.1.1 for a recipient on the account's suppression list: the entry is the
    sending account's own, so naming its id and source reveals nothing of others'."""
    return _reply(
        550, "5.1.1",
        f"<{address}>: recipient is on this account's suppression list ({entry.source});"
        f" remove it with DELETE /api/v1/accounts/{entry.account_id}/suppressions/{entry.id}"
        " to send again",
    )


def _is_junk(event: object) -> bool:
    """Commands that move no mail (Postfix counts NOOP, VRFY, ETRN and RSET; a
    repeated EHLO can hold a slot just as well)."""
    if isinstance(event, (proto.Noop, proto.Rset, proto.Ehlo, proto.Helo)):
        return True
    return (
        isinstance(event, proto.AutoReply)
        and not isinstance(event, proto.ProtocolViolation)
        and event.reason in _JUNK_REASONS
    )
