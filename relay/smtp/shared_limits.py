"""Limits that hold across every ``relay smtp`` process of a deployment.

Strategy: each process's limiters (``relay.smtp.limits``) keep exact counts of
their own and add what every *other* process counted, as of the last sync.
``SharedCounts.run`` syncs every ``smtp.shared_limits_interval`` seconds: one
crossing that publishes this process's new events and changed levels and reads the
others' sums (``relay.storage.limit_counts``). The trade, stated in README: another
process's events count here up to one interval (plus a commit) late, so N processes
may together let through up to what N-1 of them accept within one interval beyond
a limit; windows are counted in buckets of 1/12 of the window on the database's
clock. Nothing on the hot path waits for the database: a limiter reads a dict.

While the database cannot be reached the last known counts stay in force and this
process's events wait (bounded: ``MAX_PENDING_KEYS``) for the next sync.

Kinds: ``messages`` and ``recipients`` per account, ``connections`` and
``auth_failures`` per address (events); ``open`` connections and ``auth_blocked``
per address (levels).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping

import trio

from ..logging import get_logger
from ..storage import Storage, StorageError
from ..storage.limit_counts import Level, OthersCounts

log = get_logger("relay.smtp.shared_limits")

#: Distinct (kind, key) pairs waiting to be published; past it new ones are dropped
#: (counted locally still) until the database answers again.
MAX_PENDING_KEYS = 100_000
#: Syncs between two prunes of rows past every window.
PRUNE_EVERY = 60


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class SharedCounts:
    """This process's side of the shared counts; limiters call ``others``, ``add``
    and ``set_level``. Until ``run`` starts (or with no sync configured) it shares
    nothing and ``others`` is always 0."""

    def __init__(self, windows: Mapping[str, float], *, level_ttl: float = 10.0) -> None:
        #: Event kind → its window in seconds.
        self._windows = dict(windows)
        self._level_ttl = level_ttl
        self.process = process_name()
        self._sharing = False
        self._events: dict[tuple[str, str], int] = {}
        self._levels: dict[tuple[str, str], Level] = {}
        self._others = OthersCounts()
        self.syncs = 0
        self.dropped = 0

    def start_sharing(self) -> None:
        """From now on, count for publishing (``run`` calls it; tests that call
        ``sync`` themselves too)."""
        self._sharing = True

    def others(self, kind: str, key: str) -> int:
        """What the other processes counted for ``key`` (events in the window, or levels)."""
        if kind in self._windows:
            return self._others.events.get((kind, key), 0)
        return self._others.levels.get((kind, key), 0)

    def add(self, kind: str, key: str, n: int = 1) -> None:
        """Count ``n`` events of ``kind`` for ``key`` (published at the next sync)."""
        if not self._sharing or n <= 0:
            return
        pair = (kind, key)
        if pair not in self._events and len(self._events) >= MAX_PENDING_KEYS:
            self.dropped += 1
            return
        self._events[pair] = self._events.get(pair, 0) + n

    def set_level(self, kind: str, key: str, value: int, ttl: float | None = None) -> None:
        """This process now holds ``value`` of ``kind`` for ``key`` (0: none), valid for
        ``ttl`` seconds (default: refreshed at every sync while the process lives)."""
        if not self._sharing:
            return
        self._levels[(kind, key)] = Level(kind, key, value, self._level_ttl if ttl is None else ttl)

    async def run(
        self, storage: Storage, interval: float,
        *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Sync every ``interval`` seconds until cancelled. This process's levels are
        not withdrawn on the way out (that would make stopping wait for the
        database): they expire ``level_ttl`` seconds after the last sync."""
        self.start_sharing()
        task_status.started()
        try:
            while True:
                await self.sync(storage)
                await trio.sleep(interval)
        finally:
            self._sharing = False

    async def sync(self, storage: Storage) -> None:
        """One exchange with the database; on failure the pending counts are kept."""
        events, self._events = self._events, {}
        levels, self._levels = self._levels, {}
        try:
            self._others = await storage.limit_counts.sync(
                self.process,
                events=events,
                levels=list(levels.values()),
                windows=self._windows,
                refresh={"open": self._level_ttl},
                prune=self.syncs % PRUNE_EVERY == 0,
            )
            self.syncs += 1
        except StorageError as exc:
            log.warning("limit counts not shared; keeping the last known", error=str(exc))
            for pair, n in events.items():
                self._events[pair] = self._events.get(pair, 0) + n
            for pair, level in levels.items():
                self._levels.setdefault(pair, level)
