"""Batched writes: many callers' rows in one transaction and one bridge crossing.

Strategy (group commit): callers hand an item to ``BatchWriter.write`` and wait. One
writer task takes whatever is waiting (up to ``max_batch`` items or ``max_batch_bytes``
octets), writes it with one asyncio-side function in one transaction, and wakes every
waiter. With one caller there is no added delay (the batch is just that item); under
load, batches grow by themselves while the previous commit is in flight, which is what
amortises the crossing to asyncio and the commit's fsync.

A waiter returns only after its transaction has committed, so the SMTP service may
answer 250 then and only then. The queue of waiting items is bounded
(``max_waiting``): past it, ``write`` waits for room, which slows the callers instead
of growing memory.

Failure is per waiter:

* every waiter gets its own exception object, of the cause's storage type, raised
  ``from`` the shared cause — never one instance raised in many tasks, whose
  tracebacks would pile up in each other;
* the database being unreachable fails the whole batch (retrying would only wait for
  the same outage);
* any other database error (one bad row refuses the whole transaction) retries each
  member alone, concurrently and in the background (at most ``retry_concurrency``
  at a time), so one bad item is refused alone and the batches behind it are not
  serialised behind the retries.

Any storage module can offer a writer for its own rows (``MessageRepository.writer``).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import attrs
import trio

from ..logging import get_logger
from ._bridge import Bridge, Connection
from .errors import DatabaseUnavailable, StorageError

log = get_logger("relay.storage.batches")

T = TypeVar("T")

#: Asyncio side: write these items on this connection (in a transaction the writer
#: opens, unless the writer was made with ``atomic=True``).
WriteMany = Callable[[Connection, Sequence[T]], Awaitable[None]]


@attrs.define
class _Pending(Generic[T]):
    item: T
    size: int
    done: trio.Event = attrs.field(factory=trio.Event)
    error: BaseException | None = None


@attrs.frozen
class BatchStatistics:
    """``BatchWriter.statistics()``: how group commit is going."""

    #: Transactions that committed (batches and single retries).
    batches: int
    #: Items committed.
    items: int
    largest_batch: int
    #: Items queued for the next batch right now.
    waiting: int
    #: Batches that failed for a reason other than an outage and were retried item by item.
    split_batches: int


def own_error(cause: BaseException) -> StorageError:
    """A new exception for one waiter: the cause's storage type and words, ``from`` it."""
    kind = type(cause) if isinstance(cause, StorageError) else StorageError
    words = str(cause) if isinstance(cause, StorageError) else f"unexpected error: {type(cause).__name__}"
    error = kind(words)
    error.__cause__ = cause
    return error


def _in_transaction(write_many: WriteMany[T]) -> WriteMany[T]:
    """``write_many`` in a transaction of its own (timed under ``write_many``'s name)."""

    @functools.wraps(write_many)
    async def in_transaction(conn: Connection, items: Sequence[T]) -> None:
        async with conn.transaction():
            await write_many(conn, items)

    return in_transaction


class BatchWriter(Generic[T]):
    """Group commit for one kind of row; run ``run`` in a nursery, then ``write``."""

    def __init__(
        self,
        bridge: Bridge,
        write_many: WriteMany[T],
        *,
        size: Callable[[T], int] = lambda _: 1,
        max_batch: int = 256,
        max_batch_bytes: int = 64 << 20,
        max_waiting: int = 4096,
        retry_concurrency: int = 4,
        atomic: bool = False,
    ) -> None:
        """``atomic``: ``write_many`` is all-or-nothing by itself (it opens its own
        transaction when it needs one), so the writer does not wrap it in one — a
        BEGIN and a COMMIT round trip fewer per batch when one statement does."""
        self._bridge = bridge
        self._write_many = write_many if atomic else _in_transaction(write_many)
        self._size = size
        self._max_batch = max_batch
        self._max_batch_bytes = max_batch_bytes
        self._send, self._receive = trio.open_memory_channel[_Pending[T]](max_waiting)
        self._retry_limit = trio.CapacityLimiter(retry_concurrency)
        self._batches = 0
        self._items = 0
        self._largest = 0
        self._split = 0

    async def write(self, item: T) -> None:
        """Return once ``item`` is committed.

        Raises:
            DatabaseUnavailable: nothing was stored (the database is unreachable, or
                the writer stopped before committing this item).
            StorageError: the database refused this item (a constraint, say).
            trio.Cancelled: the caller was cancelled; the item may or may not be
                stored, and the caller must not report success.
        """
        pending = _Pending(item, self._size(item))
        try:
            await self._send.send(pending)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise DatabaseUnavailable("the writer has stopped; try again later") from None
        await pending.done.wait()
        if pending.error is not None:
            raise pending.error

    def statistics(self) -> BatchStatistics:
        return BatchStatistics(
            batches=self._batches,
            items=self._items,
            largest_batch=self._largest,
            waiting=self._receive.statistics().current_buffer_used,
            split_batches=self._split,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The writer task; cancel it to stop. Items not yet committed are then refused
        with DatabaseUnavailable (their callers were not told they are stored)."""
        try:
            async with trio.open_nursery() as retries:
                task_status.started()
                while True:
                    batch = await self._next_batch()
                    await self._commit(batch, retries)
        finally:
            self._refuse_waiting()

    async def _next_batch(self) -> list[_Pending[T]]:
        batch = [await self._receive.receive()]
        size = batch[0].size
        while len(batch) < self._max_batch and size < self._max_batch_bytes:
            try:
                item = self._receive.receive_nowait()
            except trio.WouldBlock:
                break
            batch.append(item)
            size += item.size
        return batch

    async def _commit(self, batch: list[_Pending[T]], retries: trio.Nursery) -> None:
        settled = True
        try:
            await self._bridge.run(self._write_many, [p.item for p in batch])
        except DatabaseUnavailable as exc:
            self._fail(batch, exc)
        except StorageError as exc:
            if len(batch) == 1:
                self._fail(batch, exc)
            else:
                log.warning("batch write failed; retrying its items one by one", error=str(exc))
                self._split += 1
                settled = False
                for pending in batch:
                    retries.start_soon(self._retry_alone, pending)
        except Exception as exc:  # never let the writer die: every caller depends on it
            log.exception("batch write failed unexpectedly")
            self._fail(batch, exc)
        except BaseException:
            # Cancelled mid-commit (shutdown): the outcome is unknown to us, so no
            # waiter may report success.
            self._fail(batch, DatabaseUnavailable("shutting down; outcome unknown"))
            raise
        else:
            self._committed(len(batch))
        finally:
            if settled:
                for pending in batch:
                    pending.done.set()

    async def _retry_alone(self, pending: _Pending[T]) -> None:
        try:
            async with self._retry_limit:
                await self._bridge.run(self._write_many, [pending.item])
            self._committed(1)
        except StorageError as exc:
            self._fail([pending], exc)
        except Exception as exc:
            log.exception("single write failed unexpectedly")
            self._fail([pending], exc)
        except BaseException:
            self._fail([pending], DatabaseUnavailable("shutting down; outcome unknown"))
            raise
        finally:
            pending.done.set()

    def _committed(self, count: int) -> None:
        self._batches += 1
        self._items += count
        self._largest = max(self._largest, count)

    @staticmethod
    def _fail(batch: Sequence[_Pending[T]], cause: BaseException) -> None:
        for pending in batch:
            if pending.error is None:
                pending.error = own_error(cause)

    def _refuse_waiting(self) -> None:
        stopped = DatabaseUnavailable("the writer is shutting down; try again later")
        while True:
            try:
                pending = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.ClosedResourceError, trio.EndOfChannel):
                break
            self._fail([pending], stopped)
            pending.done.set()
        # Callers still waiting for room in the queue get BrokenResourceError → refused.
        self._receive.close()


__all__ = ["BatchStatistics", "BatchWriter", "own_error"]
