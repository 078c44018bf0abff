"""Repository reads as values, so several can share one crossing.

Strategy: a repository read returns a ``Query`` instead of running at once. Awaiting
it runs it alone (one crossing, as before: ``await storage.messages.get(id)``);
passing several to ``Storage.run`` runs them on one pooled connection in one crossing,
optionally in one transaction:

    message, attempts = await storage.run(
        storage.messages.get(message_id), storage.delivery_logs.list_for_message(message_id)
    )

Each query is the asyncio-side function that does its SQL on a connection and maps
the rows to models there; trio code never sees a connection or a row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, TypeVar

from ._bridge import Bridge, Connection

T = TypeVar("T")


class Query(Generic[T]):
    """One repository read not yet run; ``await`` it, or hand it to ``Storage.run``."""

    __slots__ = ("_bridge", "on_connection")

    def __init__(self, bridge: Bridge, on_connection: Callable[[Connection], Awaitable[T]]) -> None:
        self._bridge = bridge
        #: Asyncio side: ``await query.on_connection(conn)`` does the SQL and returns the result.
        self.on_connection = on_connection

    def __await__(self) -> Generator[Any, None, T]:
        return self._bridge.run(self.on_connection).__await__()
