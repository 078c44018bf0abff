"""Cross-process news that a credential changed, by LISTEN/NOTIFY.

Strategy: every write that can change who may act as which account — an account
updated (its key, password, allowed domains, limits, disabled flag) or deleted, an
operator key revoked, an IP credential created or deleted — sends
``pg_notify(CHANNEL, …)`` in the same transaction (``notify``), so PostgreSQL
delivers it to every listener when, and only if, the write commits. Each process
that caches such answers (``relay.change_cache``: the API's keys, SMTP's logins and
IP credentials) holds one dedicated connection (outside the pool) that LISTENs on
``CHANNEL``; ``KeyChanges`` turns what it hears into an ``epoch`` number that a
cache compares against, so a cache entry made before a change is never served after
it. The writing process also moves its own ``epoch`` as soon as the write returns
(``changed``), so there the change acts without waiting for its notification.

``epoch`` also moves when the listener connects and when it is lost, and
``listening`` is ``False`` while it is lost: a cache must then not serve anything,
because a change could commit unheard. The connection is re-made with a capped
backoff, and pinged every ``PING_INTERVAL`` seconds so a silently dead connection is
noticed within ``PING_INTERVAL + PING_TIMEOUT`` seconds (a closed one at once).

Everything here runs on the asyncio host loop, which is also the thread trio's guest
runs on, so trio code reads ``epoch`` and ``listening`` as plain attributes.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from ..logging import get_logger
from ._bridge import Connection

log = get_logger("relay.storage.key_changes")

#: The NOTIFY channel; the payload (``account:<id>``, ``admin_key:<id>``,
#: ``ip_credential:<id>``) is for humans and logs only: a listener treats every
#: notification as "forget everything cached".
CHANNEL = "relay_api_keys"
#: ``pg_stat_activity.application_name`` of the listening connection.
APPLICATION_NAME = "relay key changes"
#: Seconds between liveness checks of the listening connection.
PING_INTERVAL = 5.0
#: Seconds a liveness check may take before the connection counts as lost.
PING_TIMEOUT = 5.0
#: Backoff between reconnection attempts, first and largest, in seconds.
RETRY_FIRST = 0.05
RETRY_MAX = 5.0


async def notify(conn: Connection, what: str) -> None:
    """Announce a key change on ``conn``; call it inside the transaction of the write."""
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, what)


class KeyChanges:
    """One LISTEN connection per process, started on first use, closed with storage."""

    def __init__(self, loop: asyncio.AbstractEventLoop, url: str, connect_timeout: float) -> None:
        self._loop = loop
        self._url = url
        self._connect_timeout = connect_timeout
        self._task: asyncio.Task[None] | None = None
        #: Moves on every notification, every connect and every loss of the listener.
        self.epoch = 0
        #: ``True`` only while LISTEN is in effect on a live connection.
        self.listening = False
        #: Notifications received (for tests and metrics).
        self.received = 0

    def start(self) -> None:
        """Start listening in the background (idempotent; returns at once).

        Must be called on the host loop's thread, i.e. from trio code in a relay process.
        """
        if self._task is None:
            self._task = self._loop.create_task(self._run())

    async def aclose(self) -> None:
        """The asyncio side of closing: stop the listener and drop its connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def changed(self) -> None:
        """A write of this process that notified has committed: act on it now, not when
        our own notification comes back."""
        self.epoch += 1

    def _lost(self) -> None:
        if self.listening and self._task is not None:  # not a shutdown
            log.warning("key change listener lost; credential caches bypassed until it is back")
        self.listening = False
        self.epoch += 1

    def _heard(self, *_: object) -> None:
        self.received += 1
        self.epoch += 1

    async def _run(self) -> None:
        delay = RETRY_FIRST
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(
                    self._url, timeout=self._connect_timeout,
                    server_settings={"application_name": APPLICATION_NAME},
                )
                gone = asyncio.Event()
                conn.add_termination_listener(lambda _conn, gone=gone: gone.set())
                await conn.add_listener(CHANNEL, self._heard)
                self.epoch += 1
                self.listening = True
                delay = RETRY_FIRST
                log.info("key change listener ready", channel=CHANNEL)
                while not gone.is_set():
                    try:
                        await asyncio.wait_for(gone.wait(), PING_INTERVAL)
                    except TimeoutError:
                        await asyncio.wait_for(conn.fetchval("SELECT 1"), PING_TIMEOUT)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 — any failure means "not listening"
                log.warning("key change listener failed", error=type(exc).__name__)
            finally:
                self._lost()
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)
