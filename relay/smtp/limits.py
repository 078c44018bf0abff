"""The SMTP server's counters and budgets, each one object with one job.

All of them read ``trio.current_time()``, so tests drive them with trio's
``MockClock`` instead of sleeping; the counting windows are ``relay.limiting``'s,
bounded like every limiter's. Each counts its own process exactly and, given a
``SharedCounts``, adds what the deployment's other processes counted
(``relay.smtp.shared_limits``), so a limit holds across processes; the memory budget
stays per process (it bounds this process's memory).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

import attrs
import trio

from ..limiting import SlidingWindow
from .shared_limits import SharedCounts


def _now() -> float:
    return trio.current_time()


class TrustedNetworks:
    def __init__(self, networks: Iterable[str]) -> None:
        self._networks = [ipaddress.ip_network(n, strict=False) for n in networks]

    def __contains__(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in network for network in self._networks)


class ConnectionRateLimiter:
    """``smtp.ip_connection_rate`` new connections per minute per IP."""

    def __init__(
        self, per_minute: int, trusted: TrustedNetworks, shared: SharedCounts | None = None
    ) -> None:
        self._limit = per_minute
        self._trusted = trusted
        self._window = SlidingWindow(60.0, _now)
        self._shared = shared or SharedCounts({})

    def reconfigure(self, per_minute: int, trusted: TrustedNetworks) -> None:
        self._limit, self._trusted = per_minute, trusted

    def allow(self, ip: str) -> bool:
        """Count a new connection; False when this IP is over its rate."""
        if ip in self._trusted:
            return True
        if self._window.count(ip) + self._shared.others("connections", ip) >= self._limit:
            return False
        self._window.add(ip)
        self._shared.add("connections", ip)
        return True


class ConcurrencyPerIp:
    """At most ``limit`` connections open at once from one IP (``smtp.max_connections_per_ip``).

    Postfix's ``smtpd_client_connection_count_limit`` (default 50) is the model: without
    it one address can hold every slot of ``smtp.max_connections`` and refuse service
    to everyone else. Addresses in ``exempt`` networks are counted but never refused.
    Memory is bounded by the open connections: an address with none left is forgotten.
    """

    def __init__(
        self, limit: int, exempt: TrustedNetworks, shared: SharedCounts | None = None
    ) -> None:
        self._limit = limit
        self._exempt = exempt
        self._open: dict[str, int] = {}
        self._shared = shared or SharedCounts({})

    def reconfigure(self, limit: int, exempt: TrustedNetworks) -> None:
        """New limits for new connections; open ones stay open."""
        self._limit, self._exempt = limit, exempt

    def allow(self, ip: str) -> bool:
        """Whether one more connection from ``ip`` may open (``add`` it if so)."""
        if ip in self._exempt:
            return True
        return self._open.get(ip, 0) + self._shared.others("open", ip) < self._limit

    def add(self, ip: str) -> None:
        self._open[ip] = self._open.get(ip, 0) + 1
        self._shared.set_level("open", ip, self._open[ip])

    def remove(self, ip: str) -> None:
        left = self._open.get(ip, 0) - 1
        if left > 0:
            self._open[ip] = left
        else:
            self._open.pop(ip, None)
        self._shared.set_level("open", ip, max(left, 0))

    def open_from(self, ip: str) -> int:
        return self._open.get(ip, 0)

    def __len__(self) -> int:
        """Addresses with a connection open."""
        return len(self._open)


class AuthFailureTracker:
    """More than ``limit`` failed AUTHs from one IP within ``window`` blocks it."""

    def __init__(
        self, limit: int, window: float, block_time: float, shared: SharedCounts | None = None
    ) -> None:
        self._limit = limit
        self._window = SlidingWindow(window, _now)
        self._block_time = block_time
        self._blocked_until: dict[str, float] = {}
        self._shared = shared or SharedCounts({})

    def reconfigure(self, limit: int, window: float, block_time: float) -> None:
        """New thresholds; failures counted so far and blocks in force stay."""
        self._limit, self._block_time = limit, block_time
        self._window.window = window

    def is_blocked(self, ip: str) -> bool:
        """Blocked here, or by another process (its block lasts ``block_time`` there)."""
        if self._shared.others("auth_blocked", ip) > 0:
            return True
        until = self._blocked_until.get(ip)
        if until is None:
            return False
        if _now() >= until:
            del self._blocked_until[ip]
            return False
        return True

    def record_failure(self, ip: str) -> bool:
        """Count a failure; True when this one got the IP blocked."""
        self._window.add(ip)
        self._shared.add("auth_failures", ip)
        if self._window.count(ip) + self._shared.others("auth_failures", ip) > self._limit:
            self._blocked_until[ip] = _now() + self._block_time
            self._shared.set_level("auth_blocked", ip, 1, ttl=self._block_time)
            return True
        return False


@attrs.frozen
class BudgetStatistics:
    capacity: int
    in_use: int


class MemoryBudget:
    """Bytes of message content held in memory at once, process-wide.

    Sessions reserve before buffering and release when the message is stored or
    dropped; a reservation that does not fit is refused at once (452 4.3.1) instead
    of waiting, so memory stays bounded whatever the clients do.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._in_use = 0

    def resize(self, capacity: int) -> None:
        """A new capacity for new reservations; what is held stays held."""
        self._capacity = capacity

    def try_reserve(self, n: int) -> bool:
        if self._in_use + n > self._capacity:
            return False
        self._in_use += n
        return True

    def release(self, n: int) -> None:
        self._in_use = max(0, self._in_use - n)

    def statistics(self) -> BudgetStatistics:
        return BudgetStatistics(capacity=self._capacity, in_use=self._in_use)


class AccountLimits:
    """Messages per minute and recipients per hour per account (0 = unlimited)."""

    def __init__(self, shared: SharedCounts | None = None) -> None:
        self._messages = SlidingWindow(60.0, _now)
        self._recipients = SlidingWindow(3600.0, _now)
        self._shared = shared or SharedCounts({})

    def may_send_message(self, account_id: object, per_minute: int) -> bool:
        if per_minute == 0:
            return True
        others = self._shared.others("messages", str(account_id))
        return self._messages.count(account_id) + others < per_minute

    def may_add_recipient(self, account_id: object, per_hour: int, pending: int) -> bool:
        """``pending``: recipients already accepted in the open transaction."""
        if per_hour == 0:
            return True
        others = self._shared.others("recipients", str(account_id))
        return self._recipients.count(account_id) + others + pending < per_hour

    def record_message(self, account_id: object, recipients: int) -> None:
        self._messages.add(account_id)
        self._recipients.add(account_id, recipients)
        self._shared.add("messages", str(account_id))
        self._shared.add("recipients", str(account_id), recipients)
