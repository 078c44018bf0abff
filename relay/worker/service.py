"""The delivery worker: claim due messages, deliver them, write the verdicts in batches.

Strategy: four kinds of task share one ``Worker``:

* the claimer takes at most as many messages as there are free delivery slots
  (``worker.concurrency``), in batches of ``worker.batch_size``, each on a lease of
  ``worker.lock_timeout`` seconds (``FOR UPDATE SKIP LOCKED``: any number of worker
  processes share one queue without taking the same message). It also takes over
  messages whose lease lapsed: their worker died, so they go out again within one
  lease time instead of waiting for housekeeping;
* the heartbeat renews the lease of every message held, in one statement, every
  third of the lease, so a lease lapses only when its worker is dead or cut off.
  A message it finds taken by another worker is lost: its delivery is cancelled and
  its verdict never written over the new owner's;
* one delivery task per claimed message, limited per provider by a
  ``CapacityLimiter`` (``worker.per_provider_concurrency``) and in time by
  ``worker.connect_timeout + worker.send_timeout``;
* one writer that turns finished deliveries into one ``messages.finish`` call per
  batch (one bridge crossing for many messages), then persists breaker transitions.

A message stays counted as in flight (and its lease renewed) until its verdict is
committed, so a slow database slows claiming instead of piling up results in memory.

Fault boundary: one delivery is the unit of work. An exception inside it defers
that message with the error in its log; an exception in a claim round, a lease
renewal or a batch write is logged and that round retried (a batch the database
refuses is written message by message, and a verdict that cannot be stored is
replaced by a plain one), so no single message stops the queue.

Shutdown: setting ``stop`` ends claiming and lets in-flight deliveries finish
(graceful); cancellation abandons them. Either way ``close()`` then writes every
verdict already reached and releases every other claim, so nothing waits for its
lock to expire. Delivery is at-least-once: a delivery abandoned after the upstream
accepted it, or a crash before the verdict commits, sends that message again later.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import random
import socket
import time
import uuid
from collections.abc import Callable

import attrs
import httpx
import trio

from .. import events, metrics, models
from ..config import WorkerConfig
from ..logging import bound, get_logger
from ..models import DeliveryOutcome
from ..runtime import Runtime
from ..storage import AttemptLog, DatabaseUnavailable, Finish, Storage, StorageError
from . import providers
from .attempt import Attempt, Outcome, utc_now
from .breaker import Breakers, BreakerStatistics
from .housekeeping import housekeeping
from .providers import Driver, Envelope, ProviderConfigError, Result, Verdict
from .retry import Retry, RetryPolicy
from .router import AccountRouting, Router
from .webhooks import WebhookSender

log = get_logger("relay.worker")

#: Seconds a worker keeps an account's routing before reading it again.
ROUTING_TTL = 10.0
#: Seconds ``close()`` may spend writing verdicts and releasing claims.
CLOSE_TIMEOUT = 10.0


@attrs.frozen
class WorkerStatistics:
    worker_id: str
    #: Claimed and not yet committed (delivering, or verdict waiting to be written).
    in_flight: int
    pending_writes: int
    sent: int
    deferred: int
    failed: int
    #: Claims another worker (or housekeeping) took because our lease lapsed.
    leases_lost: int
    breakers: BreakerStatistics


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    def __init__(
        self,
        storage: Storage,
        config: WorkerConfig,
        context: providers.Context,
        *,
        worker_id: str | None = None,
        rng: random.Random | None = None,
        now: Callable[[], dt.datetime] = utc_now,
        routing_ttl: float = ROUTING_TTL,
    ) -> None:
        self.worker_id = worker_id or new_worker_id()
        self._storage = storage
        self._config = config
        self._context = context
        self._now = now
        self._rng = rng or random.Random()
        self._policy = RetryPolicy.from_config(config)
        self._router = Router(storage, ttl=routing_ttl)
        self._breakers = Breakers(threshold=config.breaker_threshold, cooldown=config.breaker_cooldown)
        self._attempt = Attempt(
            send=self._send, breakers=self._breakers, policy=self._policy, rng=self._rng, now=now
        )
        self._drivers: dict[uuid.UUID, tuple[dt.datetime, Driver]] = {}
        self._limiters: dict[uuid.UUID, trio.CapacityLimiter] = {}
        self._claimed: dict[uuid.UUID, models.Message] = {}
        #: The cancel scope of each delivery in progress (cancelled when its lease is lost).
        self._deliveries: dict[uuid.UUID, trio.CancelScope] = {}
        self._leases_lost = 0
        self._pending: list[Outcome] = []
        self._writing: list[Outcome] = []
        self._have_pending = trio.Event()
        self._progress = trio.Event()
        self._counts = {s: 0 for s in models.MessageStatus}
        self._breakers_read_at = -float("inf")
        #: Set by ``run_worker``: the process's webhook delivery.
        self.webhooks: WebhookSender | None = None

    # ------------------------------------------------------------ public

    def reload(self, config: WorkerConfig) -> None:
        """A re-read configuration for what comes next: concurrency, batch size, poll
        interval, retry policy, per-provider limits and the overall bound on one send.
        Deliveries in flight finish as they began; the providers' own connect and send
        timeouts (their HTTP client, their SMTP sessions) keep their start values."""
        self._config = config
        self._policy = RetryPolicy.from_config(config)
        self._attempt = Attempt(
            send=self._send, breakers=self._breakers, policy=self._policy, rng=self._rng,
            now=self._now,
        )
        for limiter in self._limiters.values():
            limiter.total_tokens = config.per_provider_concurrency
        self._notify_progress()  # a claim round waiting for room may have it now

    def statistics(self) -> WorkerStatistics:
        return WorkerStatistics(
            worker_id=self.worker_id,
            in_flight=len(self._claimed),
            pending_writes=len(self._pending) + len(self._writing),
            sent=self._counts[models.MessageStatus.SENT],
            deferred=self._counts[models.MessageStatus.DEFERRED],
            failed=self._counts[models.MessageStatus.FAILED],
            leases_lost=self._leases_lost,
            breakers=self._breakers.statistics(),
        )

    async def run(
        self,
        *,
        stop: trio.Event | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Deliver until cancelled, or until ``stop`` is set and in-flight work is written.

        Call ``close()`` afterwards (``run_worker`` does) to write or release what is left.
        """
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._writer)
            nursery.start_soon(self._heartbeat)
            nursery.start_soon(self._context.smtp_pool.run)
            await self._refresh_breakers(force=True)
            task_status.started()
            async with trio.open_nursery() as deliveries:
                await self._claim_loop(deliveries, stop)
            while self._claimed:
                await self._wait_progress(self._config.poll_interval)
            nursery.cancel_scope.cancel()

    async def close(self) -> None:
        """Write verdicts already reached, release the other claims, close connections.

        Shielded and bounded by ``CLOSE_TIMEOUT``; what it cannot write in time is left
        to lease expiry (and delivered again).
        """
        with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
            self._pending = self._writing + self._pending
            self._writing = []
            if self._pending:
                await self._write_pending(retry=False)
            unfinished = [m for m in self._claimed if m not in {o.finish.message_id for o in self._pending}]
            if unfinished:
                try:
                    released = await self._storage.messages.release(self.worker_id, unfinished)
                    log.info("released claims", worker_id=self.worker_id, released=released)
                except StorageError as exc:
                    log.warning("could not release claims; they return when their lease lapses",
                                error=str(exc), messages=len(unfinished))
                for message_id in unfinished:
                    self._claimed.pop(message_id, None)
            await self._save_breakers()
            for _, driver in self._drivers.values():
                with trio.move_on_after(2):
                    await driver.aclose()
            self._drivers.clear()

    # ------------------------------------------------------------ claiming

    async def _claim_loop(self, deliveries: trio.Nursery, stop: trio.Event | None) -> None:
        while stop is None or not stop.is_set():
            config = self._config  # read each round: a reload may change it
            free = config.concurrency - len(self._claimed)
            if free <= 0:
                await self._wait_progress(config.poll_interval)
                continue
            limit = min(config.batch_size, free)
            try:
                await self._refresh_breakers()
                batch = await self._storage.messages.claim(
                    worker_id=self.worker_id, limit=limit, lock_seconds=config.lock_timeout,
                    held=list(self._claimed),
                )
            except StorageError as exc:
                log.warning("claim failed; retrying", error=str(exc))
                await self._pause(stop, config.poll_interval)
                continue
            except Exception:  # a bug must not stop the queue: the next round retries
                log.exception("claim round crashed; retrying")
                await self._pause(stop, config.poll_interval)
                continue
            if batch:
                await self._dispatch(deliveries, batch)
            if len(batch) < limit:
                await self._pause(stop, config.poll_interval)

    async def _dispatch(self, deliveries: trio.Nursery, batch: list[models.Message]) -> None:
        for message in batch:
            self._claimed[message.id] = message
        # An account whose routing cannot be built (a bug, a row we cannot read) is
        # that account's messages' problem: each is deferred with the error.
        routings: dict[uuid.UUID, AccountRouting | Exception] = {}
        try:
            for account_id in dict.fromkeys(m.account_id for m in batch):
                try:
                    routings[account_id] = await self._router.routing(account_id)
                except StorageError:
                    raise
                except Exception as exc:
                    log.exception("cannot build routing", account_id=str(account_id))
                    routings[account_id] = exc
            # Suppressed since the message was queued (a bounce of an earlier message,
            # a complaint, an operator): read fresh for every batch, never cached.
            suppressed = await self._storage.suppressions.suppressed_pairs(
                [(m.account_id, r) for m in batch for r in m.rcpt_to]
            )
        except StorageError as exc:
            log.warning("cannot read routing or suppressions; releasing the batch", error=str(exc))
            ids = [m.id for m in batch]
            try:
                await self._storage.messages.release(self.worker_id, ids)
            except StorageError:
                pass  # not renewed, their leases lapse and a claim takes them again
            for message_id in ids:
                self._claimed.pop(message_id, None)
            return
        for message in batch:
            listed = frozenset(r for r in message.rcpt_to if (message.account_id, r) in suppressed)
            deliveries.start_soon(self._deliver, message, routings[message.account_id], listed)

    async def _pause(self, stop: trio.Event | None, seconds: float) -> None:
        with trio.move_on_after(seconds):
            if stop is None:
                await trio.sleep_forever()
            await stop.wait()

    async def _wait_progress(self, seconds: float) -> None:
        with trio.move_on_after(seconds):
            await self._progress.wait()

    def _notify_progress(self) -> None:
        self._progress.set()
        self._progress = trio.Event()

    # ------------------------------------------------------------ delivering

    async def _deliver(
        self, message: models.Message, routing: AccountRouting | Exception,
        suppressed: frozenset[str] = frozenset(),
    ) -> None:
        """One delivery: the fault boundary. Cancelled (and forgotten) when its lease is lost."""
        started = time.perf_counter()
        # Every line this delivery writes (providers' included) names the message, its
        # account and the SMTP session that accepted it.
        context = bound(
            correlation_id=message.correlation_id, message_id=str(message.id),
            account_id=str(message.account_id),
        )
        with context, trio.CancelScope() as scope:
            self._deliveries[message.id] = scope
            try:
                if isinstance(routing, Exception):
                    outcome = self._crashed(message, routing)  # logged once by _dispatch
                else:
                    outcome = await self._attempt.run(message, routing, suppressed)
            except Exception as exc:  # a bug must not stop the queue: defer and say so
                log.exception("delivery attempt crashed")
                outcome = self._crashed(message, exc)
            finally:
                del self._deliveries[message.id]
            if not scope.cancelled_caught:
                _log_verdict(message, outcome)
        if scope.cancelled_caught:
            # The lease was lost: the new owner delivers it; nothing of ours is written.
            self._claimed.pop(message.id, None)
            self._notify_progress()
            return
        metrics.QUEUE_PROCESSING_SECONDS.observe(time.perf_counter() - started)
        self._count_attempts(outcome)
        # Fence the verdict to this claim, so it can never land on a later one; its
        # webhook events are written with it, and only if it applies.
        finish = attrs.evolve(
            outcome.finish, attempt=message.attempts, account_id=message.account_id,
            events=functools.partial(verdict_events, message, outcome.finish, self._now()),
        )
        self._pending.append(attrs.evolve(outcome, finish=finish))
        self._have_pending.set()

    def _count_attempts(self, outcome: Outcome) -> None:
        """Each attempt row in the metrics, and the circuit state of each provider tried."""
        for attempt in outcome.finish.logs:
            metrics.DELIVERY_ATTEMPTS.labels(
                attempt.provider_type or "none", str(attempt.outcome)
            ).inc()
            if attempt.provider_id is not None:
                metrics.PROVIDER_CIRCUIT.labels(str(attempt.provider_id)).set(
                    metrics.CIRCUIT_VALUES[str(self._breakers.state(attempt.provider_id))]
                )

    def _crashed(self, message: models.Message, exc: Exception) -> Outcome:
        error = f"internal error in the worker ({type(exc).__name__}: {exc}); will retry"
        plan = self._policy.after_temporary_failure(
            attempts=message.attempts, created_at=message.created_at, now=self._now(), rng=self._rng
        )
        log_row = AttemptLog(DeliveryOutcome.DEFERRED, error, 0)
        if isinstance(plan, Retry):
            return Outcome(Finish(message.id, models.MessageStatus.DEFERRED, (log_row,), error, plan.at))
        return Outcome(Finish(message.id, models.MessageStatus.FAILED, (log_row,), f"{plan.reason}; {error}"))

    def _driver(self, provider: models.Provider) -> Driver:
        """A cached driver, rebuilt when the provider's settings change."""
        cached = self._drivers.get(provider.id)
        if cached is not None and cached[0] == provider.updated_at:
            return cached[1]
        driver = providers.build(provider, self._context)
        self._drivers[provider.id] = (provider.updated_at, driver)
        return driver

    async def _send(self, provider: models.Provider, envelope: Envelope) -> Result:
        """Deliver through one provider within the per-provider limit and the time limit."""
        try:
            driver = self._driver(provider)
        except ProviderConfigError as exc:
            return Result.whole(Verdict.TEMPORARY, f"provider not usable: {exc}", envelope.rcpt_to, unreachable=True)
        limiter = self._limiters.get(provider.id)
        if limiter is None:
            limiter = self._limiters[provider.id] = trio.CapacityLimiter(self._config.per_provider_concurrency)
        limit = self._config.connect_timeout + self._config.send_timeout
        async with limiter:
            with trio.move_on_after(limit):
                try:
                    return await driver.deliver(envelope)
                except Exception as exc:  # a driver bug: the provider is unusable, not the message
                    log.exception("provider driver crashed", provider=provider.name)
                    return Result.whole(
                        Verdict.TEMPORARY, f"internal error in the {provider.type} driver: "
                        f"{type(exc).__name__}: {exc}", envelope.rcpt_to, unreachable=True,
                    )
        return Result.whole(
            Verdict.TEMPORARY,
            f"no answer within {limit:g}s (worker.connect_timeout + worker.send_timeout)",
            envelope.rcpt_to, unreachable=True,
        )

    # ------------------------------------------------------------ leases

    async def _heartbeat(self) -> None:
        """Renew every lease held, every third of ``worker.lock_timeout``, until cancelled.

        A renewal that fails is logged and tried again next round: two in a row may
        fail before a lease lapses.
        """
        interval = self._config.lock_timeout / 3
        while True:
            await trio.sleep(interval)
            try:
                await self._renew()
            except StorageError as exc:
                log.warning("cannot renew leases; retrying", error=str(exc), messages=len(self._claimed))
            except Exception:  # a bug must not stop renewals: the next round retries
                log.exception("lease renewal crashed; retrying")

    async def _renew(self) -> None:
        held = {message_id: message.attempts for message_id, message in self._claimed.items()}
        if not held:
            return
        kept = await self._storage.messages.renew(self.worker_id, list(held), self._config.lock_timeout)
        # A verdict being written when the renewal ran may have committed first (the
        # row is no longer 'sending'): only a message still delivering is lost.
        for message_id, attempts in held.items():
            message = self._claimed.get(message_id)
            if message_id in kept or message is None or message.attempts != attempts:
                continue
            scope = self._deliveries.get(message_id)
            if scope is None:
                continue  # its verdict is queued; finish() will find the claim lost
            self._leases_lost += 1
            log.warning("lease lost: another worker or housekeeping took the message; "
                        "its delivery is abandoned and its result not written",
                        message_id=str(message_id), attempt=attempts)
            scope.cancel()

    # ------------------------------------------------------------ writing

    async def _writer(self) -> None:
        while True:
            await self._have_pending.wait()
            self._have_pending = trio.Event()
            await self._write_pending(retry=True)

    async def _write_pending(self, *, retry: bool) -> None:
        """Write every queued verdict; while the database is unreachable, retry (or return).

        A batch refused for any other reason is written one verdict at a time, so one
        verdict the database cannot take (or a bug) does not hold back the others.
        """
        while self._pending:
            batch, self._pending = self._pending, []
            self._writing = batch
            applied: list[bool | None]
            try:
                try:
                    applied = list(await self._write(batch))
                except DatabaseUnavailable:
                    raise
                except StorageError as exc:  # the database refused something in the batch
                    log.warning("cannot write delivery results together; writing them one by one",
                                error=str(exc), messages=len(batch))
                    applied = [await self._write_alone(outcome) for outcome in batch]
                except Exception:  # a bug: the same, with its traceback
                    log.exception("cannot write delivery results together; writing them one by one",
                                  messages=len(batch))
                    applied = [await self._write_alone(outcome) for outcome in batch]
            except DatabaseUnavailable as exc:
                self._pending = batch + self._pending
                self._writing = []
                log.warning("cannot write delivery results; retrying", error=str(exc), messages=len(batch))
                if not retry:
                    return
                await trio.sleep(self._config.poll_interval)
                continue
            self._writing = []
            for outcome, ok in zip(batch, applied, strict=True):
                self._claimed.pop(outcome.finish.message_id, None)
                if ok:
                    self._counts[outcome.finish.status] += 1
                elif ok is False:
                    self._leases_lost += 1
                    log.warning("lease lost before the result was written; another worker owns "
                                "the message now, so this result is not applied",
                                message_id=str(outcome.finish.message_id))
            await self._save_breakers()
            self._notify_progress()

    async def _write(self, batch: list[Outcome]) -> list[bool]:
        for outcome in batch:
            if outcome.narrow_to:
                await self._storage.worker_state.narrow_recipients(
                    self.worker_id, outcome.finish.message_id, outcome.narrow_to
                )
        return await self._storage.messages.finish(self.worker_id, [o.finish for o in batch])

    async def _write_alone(self, outcome: Outcome) -> bool | None:
        """Write one verdict; if refused, the same status with our own words instead.

        Returns whether it applied, or ``None`` when nothing could be written: the
        message's lease is then no longer renewed, so it lapses and the message is
        delivered again (at-least-once).

        Raises:
            DatabaseUnavailable: the caller keeps the whole batch for later.
        """
        message_id = str(outcome.finish.message_id)
        try:
            return (await self._write([outcome]))[0]
        except DatabaseUnavailable:
            raise
        except StorageError as exc:
            log.warning("cannot write a delivery result; writing a plain one", error=str(exc),
                        message_id=message_id)
            plain = self._plain(outcome.finish, exc)
        except Exception as exc:  # a bug: the same, with its traceback
            log.exception("cannot write a delivery result; writing a plain one", message_id=message_id)
            plain = self._plain(outcome.finish, exc)
        try:
            return (await self._write([Outcome(plain, narrow_to=outcome.narrow_to)]))[0]
        except DatabaseUnavailable:
            raise
        except Exception:
            log.exception("cannot write even a plain delivery result; the message will be "
                          "delivered again when its lease lapses", message_id=message_id)
            return None

    @staticmethod
    def _plain(finish: Finish, exc: Exception) -> Finish:
        """``finish`` with its texts replaced by ours (the status and schedule kept)."""
        error = f"the result could not be recorded ({type(exc).__name__}: {exc}); status kept"
        outcome = {
            models.MessageStatus.SENT: DeliveryOutcome.DELIVERED,
            models.MessageStatus.DEFERRED: DeliveryOutcome.DEFERRED,
        }.get(finish.status, DeliveryOutcome.FAILED)
        # Without its bounces too: one of them may be what the database refused.
        # Nothing of the original but the status: no events (their builder may be what
        # failed), no suppressions.
        return attrs.evolve(finish, logs=(AttemptLog(outcome, error, 0),), error=error, suppress=(), events=None)

    # ------------------------------------------------------------ breakers

    async def _refresh_breakers(self, *, force: bool = False) -> None:
        """Adopt circuits other workers opened, at most every quarter cool-off."""
        now = trio.current_time()
        if not force and now - self._breakers_read_at < self._config.breaker_cooldown / 4:
            return
        self._breakers_read_at = now
        try:
            self._breakers.adopt(await self._storage.worker_state.health(), self._now())
        except StorageError as exc:
            log.warning("cannot read provider health", error=str(exc))

    async def _save_breakers(self) -> None:
        changes = self._breakers.take_changes()
        if not changes:
            return
        for change in changes:
            metrics.PROVIDER_CIRCUIT.labels(str(change.provider_id)).set(
                metrics.CIRCUIT_VALUES[str(change.state)]
            )
            log.info("provider circuit", provider_id=str(change.provider_id), state=str(change.state),
                     failures=change.consecutive_failures, last_error=change.last_error)
        try:
            await self._storage.worker_state.save_health(changes)
        except StorageError as exc:
            log.warning("cannot record provider health", error=str(exc))


def _log_verdict(message: models.Message, outcome: Outcome) -> None:
    log.info(
        "message delivered" if outcome.finish.status is models.MessageStatus.SENT
        else f"message {outcome.finish.status}",
        attempt=message.attempts, error=outcome.finish.error,
        providers=[a.provider_type for a in outcome.finish.logs if a.provider_type],
    )


def verdict_events(message: models.Message, finish: Finish, at: dt.datetime) -> tuple[models.Event, ...]:
    """The webhook events a verdict reports: ``message.sent`` for each provider attempt
    that delivered, then ``message.deferred`` or ``message.failed`` for the verdict."""
    def event(kind: models.EventKind, log: AttemptLog | None, response: str | None,
              next_attempt_at: dt.datetime | None = None) -> models.Event:
        return events.message_event(
            kind, message_id=message.id, account_id=message.account_id,
            mail_from=message.mail_from, rcpt_to=message.rcpt_to, at=at,
            queued_at=message.created_at, message_id_header=message.message_id,
            correlation_id=message.correlation_id,
            provider_id=log.provider_id if log else None,
            provider_type=log.provider_type if log else None,
            response=response, attempt=message.attempts, next_attempt_at=next_attempt_at,
        )

    found = [
        event(models.EventKind.MESSAGE_SENT, log, log.response)
        for log in finish.logs if log.outcome is DeliveryOutcome.DELIVERED
    ]
    last = finish.logs[-1] if finish.logs else None
    if finish.status is models.MessageStatus.DEFERRED:
        found.append(event(models.EventKind.MESSAGE_DEFERRED, last, finish.error, finish.next_attempt_at))
    elif finish.status is models.MessageStatus.FAILED:
        found.append(event(models.EventKind.MESSAGE_FAILED, last, finish.error))
    return tuple(found)


async def run_worker(
    runtime: Runtime,
    *,
    stop: trio.Event | None = None,
    run_housekeeping: bool = True,
    worker_id: str | None = None,
    task_status: trio.TaskStatus[Worker] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The ``relay worker`` service (also run by ``relay serve``).

    Args:
        runtime: the process's config and storage (``relay.runtime``).
        stop: when set, stop claiming, finish in-flight deliveries and return.
        run_housekeeping: also run lapsed-lease reclaim and retention purging here (the
            ``housekeeping`` task that ``relay.composition`` started before the worker existed).

    Reports the ``Worker`` (for ``statistics()``) through ``task_status`` once the
    first claim can happen. On cancellation in-flight deliveries are abandoned, and
    their claims released, before this returns.
    """
    # Over 40 lines only by its docstring: the body is the service's lifecycle, start to cleanup.
    config: WorkerConfig = runtime.config.worker
    timeout = httpx.Timeout(config.send_timeout, connect=config.connect_timeout)
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
        context = _provider_context(runtime, http)
        worker = Worker(runtime.storage, config, context, worker_id=worker_id)
        #: Webhook events go out beside mail, with their own client and limits.
        worker.webhooks = WebhookSender(runtime.storage, runtime.config.webhooks)
        log.info("worker starting", worker_id=worker.worker_id)
        try:
            async with trio.open_nursery() as nursery:
                if run_housekeeping:
                    await nursery.start(functools.partial(
                        housekeeping, runtime.storage, retention_days=config.retention_days,
                        interval=config.housekeeping_interval,
                    ))

                async def deliver_then_stop(task_status: trio.TaskStatus[None]) -> None:
                    await worker.run(stop=stop, task_status=task_status)
                    nursery.cancel_scope.cancel()

                nursery.start_soon(worker.webhooks.run)
                await nursery.start(deliver_then_stop)
                task_status.started(worker)
        finally:
            await worker.close()
            with trio.CancelScope(shield=True):
                await context.smtp_pool.aclose()
            log.info("worker stopped", **attrs.asdict(worker.statistics(), recurse=False))


def _provider_context(runtime: Runtime, http: httpx.AsyncClient) -> providers.Context:
    """What every provider shares: the HTTP client, time limits, our name, the SMTP pool."""
    config = runtime.config.worker
    return providers.Context(
        http=http, connect_timeout=config.connect_timeout,
        send_timeout=config.send_timeout, hostname=runtime.config.smtp.hostname or socket.getfqdn(),
        # An idle session for each delivery a provider may have in flight.
        smtp_pool=providers.SmtpPool(max_idle_per_key=config.per_provider_concurrency,
                                     max_idle=max(64, config.concurrency)),
    )
