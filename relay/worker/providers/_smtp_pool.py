"""Idle SMTP connections kept for the next message to the same upstream.

Strategy: one ``SmtpPool`` per worker (it lives in ``providers.Context``), keyed by
provider id and a digest of the provider's config, so a provider whose settings change
never reuses a connection opened under the old ones. A delivery ``take``s an idle
connection (the most recently parked one: the likeliest to be alive) or opens its own;
when it is done it ``park``s the connection if the session is still usable. The pool
never hands one connection to two deliveries: a connection is either parked here or
owned by exactly one task.

Bounds: at most ``max_idle_per_key`` idle connections per upstream (the worker sets it
to ``worker.per_provider_concurrency``: one per delivery that can be in flight) and
``max_idle`` overall; a connection idle for ``idle_timeout`` seconds is closed by ``run`` (the
worker runs it), or at the latest by the next ``take`` for that key. ``aclose`` and
``close_idle`` close what is parked (politely: QUIT, then the stream) and are what
shutdown calls. A parked connection can still die under us (the upstream's own idle
timeout, a restart): the driver detects that on its first command and retries once on
a fresh connection (see ``smtp.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from typing import Protocol

import attrs
import trio

#: Seconds a parked connection may wait for the next message before it is closed.
#: Short on purpose: upstreams time idle sessions out too (RFC 5321 4.5.3.2.7 asks a
#: server to wait 5 minutes for a command, many wait far less), and a worker that has
#: nothing to send should not hold sockets open.
IDLE_TIMEOUT = 10.0
#: Seconds a polite close (QUIT) of an idle connection may take.
CLOSE_TIMEOUT = 2.0


class Pooled(Protocol):
    async def aclose(self) -> None:
        """Close politely; must not raise for I/O problems; on cancellation close at once."""
        ...


@attrs.frozen
class PoolStatistics:
    #: Idle connections parked now.
    idle: int
    #: Connections handed out again instead of opening a new one.
    reused: int
    #: Idle connections closed because nobody used them in time.
    expired: int


class SmtpPool:
    """Idle connections by key. Not thread-safe; one per worker (``providers.Context``)."""

    def __init__(
        self,
        *,
        max_idle_per_key: int = 4,
        max_idle: int = 64,
        idle_timeout: float = IDLE_TIMEOUT,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.max_idle_per_key = max_idle_per_key
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self._clock = clock
        #: key -> [(parked at, connection)], oldest first.
        self._idle: dict[Hashable, list[tuple[float, Pooled]]] = {}
        self._parked = trio.Event()
        self._closed = False
        self._reused = 0
        self._expired = 0

    def statistics(self) -> PoolStatistics:
        return PoolStatistics(
            idle=sum(len(v) for v in self._idle.values()), reused=self._reused, expired=self._expired
        )

    def take(self, key: Hashable) -> Pooled | None:
        """The most recently parked live connection for ``key``, or ``None``.

        Expired connections met on the way are left for ``run`` to close.
        """
        parked = self._idle.get(key)
        deadline = self._clock() - self.idle_timeout
        while parked:
            at, connection = parked.pop()
            if at > deadline:
                if not parked:
                    del self._idle[key]
                self._reused += 1
                return connection
            parked.append((at, connection))  # the newest is expired: so are the rest
            break
        return None

    def park(self, key: Hashable, connection: Pooled) -> bool:
        """Keep ``connection`` for the next ``take``; ``False`` means the caller closes it."""
        total = sum(len(v) for v in self._idle.values())
        parked = self._idle.setdefault(key, [])
        if self._closed or len(parked) >= self.max_idle_per_key or total >= self.max_idle:
            if not parked:
                del self._idle[key]
            return False
        parked.append((self._clock(), connection))
        self._parked.set()
        return True

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Close connections idle for ``idle_timeout``, until cancelled."""
        task_status.started()
        while True:
            oldest = min((v[0][0] for v in self._idle.values() if v), default=math.inf)
            with trio.move_on_at(oldest + self.idle_timeout):
                await self._parked.wait()
                self._parked = trio.Event()
                continue
            expired = self._pop(lambda at: at <= self._clock() - self.idle_timeout)
            self._expired += len(expired)
            await _close_all(expired)

    async def close_idle(self, key: Hashable) -> None:
        """Close what is parked for ``key`` (its driver is being closed)."""
        await _close_all([c for _, c in self._idle.pop(key, [])])

    async def aclose(self) -> None:
        """Close every parked connection and park no more (worker shutdown)."""
        self._closed = True
        await _close_all(self._pop(lambda at: True))

    def _pop(self, due: Callable[[float], bool]) -> list[Pooled]:
        taken: list[Pooled] = []
        for key in list(self._idle):
            keep = [(at, c) for at, c in self._idle[key] if not due(at)]
            taken += [c for at, c in self._idle[key] if due(at)]
            if keep:
                self._idle[key] = keep
            else:
                del self._idle[key]
        return taken


async def _close_all(connections: list[Pooled]) -> None:
    """Close concurrently, each within ``CLOSE_TIMEOUT`` (a dead peer must not stall shutdown)."""
    if not connections:
        return
    async with trio.open_nursery() as nursery:
        for connection in connections:
            nursery.start_soon(_close_one, connection)


async def _close_one(connection: Pooled) -> None:
    with trio.move_on_after(CLOSE_TIMEOUT):
        await connection.aclose()
