"""Group commit: many sessions' messages stored in one transaction, one bridge crossing.

Strategy: sessions hand their message to ``GroupCommitter.store`` and wait. One
committer task takes whatever is waiting (up to ``max_batch`` messages or
``max_batch_bytes``), stores it with one ``enqueue_many`` and wakes every waiter.
With one client there is no added delay (the batch is just that message); under
load, batches grow by themselves while the previous commit is in flight, which is
what amortises the expensive trio→asyncio crossing and the commit's fsync.

A waiter learns its fate only after the transaction has committed: the SMTP session
sends 250 only then. If a batch fails for a reason other than the database being
unreachable, each message is retried alone so one bad row cannot refuse others.
"""

from __future__ import annotations

import math
import uuid

import attrs
import trio

from .. import models
from ..logging import get_logger
from ..storage import DatabaseUnavailable, Storage, StorageError

log = get_logger("relay.smtp.enqueue")


@attrs.define
class _Pending:
    message: models.NewMessage
    done: trio.Event = attrs.field(factory=trio.Event)
    error: BaseException | None = None


@attrs.frozen
class CommitStatistics:
    batches: int
    messages: int
    largest_batch: int
    waiting: int


class GroupCommitter:
    def __init__(self, storage: Storage, *, max_batch: int = 256, max_batch_bytes: int = 64 << 20) -> None:
        self._storage = storage
        self._max_batch = max_batch
        self._max_batch_bytes = max_batch_bytes
        self._send, self._receive = trio.open_memory_channel[_Pending](math.inf)
        self._batches = 0
        self._messages = 0
        self._largest = 0

    async def store(self, message: models.NewMessage) -> uuid.UUID:
        """Return once ``message`` is committed.

        Raises:
            DatabaseUnavailable, StorageError: nothing was stored (answer 451).
            trio.Cancelled: the caller was cancelled; the message may or may not be
                stored, and the client was not told 250 — it will retry.
        """
        pending = _Pending(message)
        self._send.send_nowait(pending)
        await pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return message.id

    def statistics(self) -> CommitStatistics:
        return CommitStatistics(
            batches=self._batches,
            messages=self._messages,
            largest_batch=self._largest,
            waiting=self._receive.statistics().current_buffer_used,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The committer task; cancel it to stop (waiters then get DatabaseUnavailable)."""
        task_status.started()
        try:
            while True:
                batch = [await self._receive.receive()]
                size = batch[0].message.size
                while len(batch) < self._max_batch and size < self._max_batch_bytes:
                    try:
                        item = self._receive.receive_nowait()
                    except trio.WouldBlock:
                        break
                    batch.append(item)
                    size += item.message.size
                await self._commit(batch)
        finally:
            self._fail_waiting()

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            await self._store(batch)
            self._batches += 1
            self._messages += len(batch)
            self._largest = max(self._largest, len(batch))
        except BaseException:
            # Cancelled mid-commit (shutdown): the outcome is unknown to us, so the
            # waiters must not answer 250.
            for p in batch:
                if p.error is None:
                    p.error = DatabaseUnavailable("shutting down; outcome unknown")
            raise
        finally:
            for p in batch:
                p.done.set()

    async def _store(self, batch: list[_Pending]) -> None:
        try:
            await self._storage.messages.enqueue_many([p.message for p in batch])
        except DatabaseUnavailable as exc:
            for p in batch:
                p.error = exc
        except StorageError as exc:
            if len(batch) == 1:
                batch[0].error = exc
                return
            log.warning("batch enqueue failed; storing one by one", error=str(exc))
            for p in batch:
                try:
                    await self._storage.messages.enqueue(p.message)
                except StorageError as single:
                    p.error = single
        except Exception as exc:
            # Never let the committer die: every session's DATA depends on it.
            log.exception("enqueue failed unexpectedly")
            for p in batch:
                p.error = StorageError(f"unexpected error: {type(exc).__name__}")

    def _fail_waiting(self) -> None:
        while True:
            try:
                item = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.ClosedResourceError, trio.EndOfChannel):
                return
            item.error = DatabaseUnavailable("the message store is shutting down")
            item.done.set()
