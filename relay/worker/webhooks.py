"""Webhook delivery: claim due deliveries from the outbox, POST them signed, record.

Strategy: one ``WebhookSender`` per worker process runs beside mail delivery, with
its own HTTP client, its own tasks and its own limits (``webhooks.concurrency``
overall, ``webhooks.per_endpoint_concurrency`` per endpoint, ``webhooks.timeout``
per request), so an endpoint that is slow, down or disabled never holds up a
message: at worst its own deliveries wait. A claim asks only for deliveries of
endpoints that have room, so one slow endpoint cannot fill every slot either.

Each attempt resolves the URL's host, checks every address against the URL policy
(``relay.webhooks.UrlPolicy``: no loopback, private or link-local address unless
allowed) and connects to the address it checked, sending the name as ``Host`` and
as the TLS server name, so the certificate is still verified for the name.

A 2xx answer delivers. Any other answer, a timeout or a refused connection is
retried with exponential backoff (``webhooks.backoff_base`` doubled per failure up
to ``webhooks.backoff_max``, with jitter) until ``webhooks.max_age`` after the event,
then given up; a 410 Gone is given up at once. Only ``webhooks.max_response_bytes``
of an answer are read. Every attempt is one ``webhook_attempts`` row, written in
batches (``settle``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import random
import ssl
import time
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import attrs
import httpx
import trio

from .. import metrics, webhooks
from ..config import WebhooksConfig
from ..logging import get_logger
from ..models import WebhookDeliveryStatus
from ..storage import DueDelivery, Settlement, Storage, StorageError
from .attempt import utc_now

log = get_logger("relay.worker.webhooks")

USER_AGENT = "relay-webhooks/1"
_RESULT = {
    WebhookDeliveryStatus.DELIVERED: "delivered",
    WebhookDeliveryStatus.PENDING: "retry",
    WebhookDeliveryStatus.FAILED: "failed",
}


@attrs.frozen
class WebhookStatistics:
    in_flight: int
    delivered: int
    retrying: int
    failed: int


@attrs.frozen
class _Answer:
    status_code: int | None
    error: str | None


class WebhookSender:
    def __init__(
        self,
        storage: Storage,
        config: WebhooksConfig,
        *,
        verify: ssl.SSLContext | str | bool = True,
        rng: random.Random | None = None,
        now: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self._storage = storage
        self._config = config
        self._policy = webhooks.UrlPolicy(config.allow_http, config.allow_private_networks)
        self._verify = verify
        self._rng = rng or random.Random()
        self._now = now
        self._in_flight: dict[uuid.UUID, int] = {}  # endpoint id -> requests
        self._pending: list[Settlement] = []
        self._have_pending = trio.Event()
        self._room = trio.Event()
        self._counts = {s: 0 for s in WebhookDeliveryStatus}

    def statistics(self) -> WebhookStatistics:
        return WebhookStatistics(
            in_flight=sum(self._in_flight.values()),
            delivered=self._counts[WebhookDeliveryStatus.DELIVERED],
            retrying=self._counts[WebhookDeliveryStatus.PENDING],
            failed=self._counts[WebhookDeliveryStatus.FAILED],
        )

    def reload(self, config: WebhooksConfig) -> None:
        """Limits, URL policy and retry schedule for the next claims; requests in
        flight keep their timeout."""
        self._config = config
        self._policy = webhooks.UrlPolicy(config.allow_http, config.allow_private_networks)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver until cancelled; settlements already reached are written on the way out."""
        limits = httpx.Limits(max_connections=self._config.concurrency * 2)
        async with httpx.AsyncClient(
            verify=self._verify, follow_redirects=False, limits=limits, trust_env=False,
            headers={"User-Agent": USER_AGENT},
        ) as client:
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer)
                    task_status.started()
                    await self._claim_loop(nursery, client)
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await self._write_pending()

    # ------------------------------------------------------------ claiming

    def _busy(self) -> list[uuid.UUID]:
        cap = self._config.per_endpoint_concurrency
        return [endpoint for endpoint, n in self._in_flight.items() if n >= cap]

    async def _claim_loop(self, nursery: trio.Nursery, client: httpx.AsyncClient) -> None:
        while True:
            config = self._config
            free = config.concurrency - sum(self._in_flight.values())
            if free <= 0:
                await self._wait_room(config.poll_interval)
                continue
            try:
                batch = await self._storage.webhooks.claim(
                    limit=free, lease_seconds=self._lease(config), busy=self._busy(),
                    per_endpoint=config.per_endpoint_concurrency,
                )
            except StorageError as exc:
                log.warning("webhook claim failed; retrying", error=str(exc))
                await trio.sleep(config.poll_interval)
                continue
            except Exception:  # a bug must not stop webhooks: the next round retries
                log.exception("webhook claim round crashed; retrying")
                await trio.sleep(config.poll_interval)
                continue
            for delivery in batch:
                self._in_flight[delivery.endpoint_id] = self._in_flight.get(delivery.endpoint_id, 0) + 1
                nursery.start_soon(self._deliver, client, delivery)
            if len(batch) < free:
                await self._wait_room(config.poll_interval)

    @staticmethod
    def _lease(config: WebhooksConfig) -> float:
        """Long enough for a request and the batch write after it; a delivery whose
        worker died is due again after this."""
        return 2 * config.timeout + 5

    async def _wait_room(self, seconds: float) -> None:
        with trio.move_on_after(seconds):
            await self._room.wait()

    # ------------------------------------------------------------ delivering

    async def _deliver(self, client: httpx.AsyncClient, delivery: DueDelivery) -> None:
        started = time.perf_counter()
        try:
            answer = await self._post(client, delivery)
        except Exception as exc:  # a bug in one delivery stays in that delivery
            log.exception("webhook delivery crashed", delivery_id=str(delivery.id))
            answer = _Answer(None, f"internal error ({type(exc).__name__}); will retry")
        finally:
            self._in_flight[delivery.endpoint_id] -= 1
            if not self._in_flight[delivery.endpoint_id]:
                del self._in_flight[delivery.endpoint_id]
            self._room.set()
            self._room = trio.Event()
        settlement = self._settle(delivery, answer, int((time.perf_counter() - started) * 1000))
        self._counts[settlement.status] += 1
        metrics.WEBHOOK_ATTEMPTS.labels(_RESULT[settlement.status]).inc()
        log.info("webhook attempt", delivery_id=str(delivery.id), event_id=str(delivery.event_id),
                 endpoint_id=str(delivery.endpoint_id), attempt=delivery.attempt,
                 status_code=answer.status_code, error=answer.error, result=str(settlement.status))
        self._pending.append(settlement)
        self._have_pending.set()

    def _settle(self, delivery: DueDelivery, answer: _Answer, duration_ms: int) -> Settlement:
        code = answer.status_code
        if code is not None and 200 <= code < 300:
            status, at = WebhookDeliveryStatus.DELIVERED, None
        elif code == 410:
            status, at = WebhookDeliveryStatus.FAILED, None
        else:
            config = self._config
            delay = min(config.backoff_max, config.backoff_base * 2 ** (delivery.attempt - 1))
            at = self._now() + dt.timedelta(seconds=delay * self._rng.uniform(0.8, 1.2))
            give_up = delivery.created_at + dt.timedelta(seconds=config.max_age)
            status = WebhookDeliveryStatus.FAILED if at > give_up else WebhookDeliveryStatus.PENDING
            if status is WebhookDeliveryStatus.FAILED:
                at = None
        return Settlement(
            delivery_id=delivery.id, attempt=delivery.attempt, status=status, status_code=code,
            error=answer.error, duration_ms=duration_ms, next_attempt_at=at,
        )

    async def _post(self, client: httpx.AsyncClient, delivery: DueDelivery) -> _Answer:
        config = self._config
        with trio.move_on_after(config.timeout) as scope:
            try:
                target, host, sni = await self._pin(delivery.url)
            except webhooks.InvalidUrl as exc:
                return _Answer(None, f"not delivered: the URL {exc}")
            except OSError as exc:
                return _Answer(None, f"cannot resolve the host: {exc}")
            body = delivery.body.encode()
            timestamp = int(time.time())
            headers = {
                "Host": host,
                "Content-Type": "application/json",
                webhooks.ID_HEADER: str(delivery.event_id),
                webhooks.TIMESTAMP_HEADER: str(timestamp),
                webhooks.SIGNATURE_HEADER: webhooks.sign(delivery.secret, timestamp, body),
            }
            extensions = {"sni_hostname": sni} if sni else {}
            request = client.build_request("POST", target, content=body, headers=headers,
                                           extensions=extensions)
            try:
                response = await client.send(request, stream=True)
            except httpx.HTTPError as exc:
                return _Answer(None, _describe(exc))
            try:
                text = await _read_some(response, config.max_response_bytes)
            except httpx.HTTPError:
                text = ""
            finally:
                await response.aclose()
            if 200 <= response.status_code < 300:
                return _Answer(response.status_code, None)
            return _Answer(response.status_code, f"HTTP {response.status_code}: {text}".strip())
        assert scope.cancelled_caught
        return _Answer(None, f"no answer within {config.timeout:g}s (webhooks.timeout)")

    async def _pin(self, url: str) -> tuple[str, str, str | None]:
        """The URL with its host replaced by a checked address, the Host header, and
        the TLS server name (None for http).

        Raises:
            InvalidUrl: the URL, or an address its host resolves to, is not allowed.
            OSError: the host does not resolve.
        """
        self._policy.check_url(url)
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        if not addresses:
            raise OSError(f"{host} has no address")
        for address in addresses:
            self._policy.check_address(address)
        chosen = addresses[0]
        literal = f"[{chosen}]" if chosen.version == 6 else str(chosen)
        netloc = f"{literal}:{parts.port}" if parts.port else literal
        host_header = f"{host}:{parts.port}" if parts.port else host
        if ":" in host and parts.port:  # an IPv6 literal host keeps its brackets
            host_header = f"[{host}]:{parts.port}"
        elif ":" in host:
            host_header = f"[{host}]"
        pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        return pinned, host_header, host if parts.scheme == "https" else None

    # ------------------------------------------------------------ recording

    async def _writer(self) -> None:
        while True:
            await self._have_pending.wait()
            self._have_pending = trio.Event()
            await self._write_pending()

    async def _write_pending(self) -> None:
        """Write settlements in batches; while the database is unreachable, keep them
        (the deliveries' leases end meanwhile, so at worst an event is sent twice)."""
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._storage.webhooks.settle(batch)
            except StorageError as exc:
                log.warning("cannot record webhook attempts; retrying", error=str(exc),
                            attempts=len(batch))
                self._pending = batch + self._pending
                await trio.sleep(self._config.poll_interval)


def _describe(exc: BaseException) -> str:
    """The error and, when it says nothing, what caused it (a TLS verification
    failure reaches us as a bare ``ConnectError`` caused by an ``SSLError``)."""
    words = [type(exc).__name__]
    seen: BaseException | None = exc
    while seen is not None:
        if str(seen):
            words.append(str(seen))
            break
        seen = seen.__cause__ or seen.__context__
    return ": ".join(words)


async def _read_some(response: httpx.Response, limit: int) -> str:
    """At most ``limit`` octets of the body, decoded leniently; the rest is not read."""
    data = bytearray()
    async for chunk in response.aiter_raw():
        data += chunk
        if len(data) >= limit:
            break
    return bytes(data[:limit]).decode("utf-8", "replace")
