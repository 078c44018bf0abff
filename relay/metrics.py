"""Prometheus metrics: every series relay exports, defined here and nowhere else.

Strategy: prometheus-client's module-level metrics, updated where the event happens
(a connection accepted, a reply sent, a crossing to the database); what is a level
rather than an event — pool sizes, queue depth, certificate expiry — is sampled by
``sample`` on a timer, never per scrape, so a scrape costs no database round trip.

Several processes (``smtp.processes``/``api.processes`` > 1) share one scrape
through prometheus-client's multiprocess mode: the supervisor points every process
at one directory (``PROMETHEUS_MULTIPROC_DIR``) before any metric is created, each
process writes its values there, and whichever process answers ``/metrics`` sums
them (gauges per their ``multiprocess_mode``). A single process uses the default
registry and no files.

Label values are bounded by construction: route templates, never raw paths; reply
codes; database operation names taken from the code.
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

#: Set (by ``relay.supervisor``) for every process of one node: multiprocess mode.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# ---------------------------------------------------------------- SMTP
SMTP_CONNECTIONS = Counter(
    "smtp_connections_total", "SMTP connections, accepted or refused at once.", ["status"]
)
SMTP_ACTIVE = Gauge(
    "smtp_active_sessions", "SMTP sessions open now.", multiprocess_mode="livesum"
)
SMTP_CONNECTION_LIMIT = Gauge(
    "smtp_max_connections", "smtp.max_connections of each SMTP process.", multiprocess_mode="livesum"
)
SMTP_ENQUEUED = Counter("smtp_message_enqueued_total", "Messages accepted and committed (250).")
SMTP_AUTH = Counter("smtp_auth_attempts_total", "SMTP AUTH attempts.", ["result"])
SMTP_REPLIES = Counter("smtp_replies_total", "SMTP replies sent, by code.", ["code"])
SMTP_ENQUEUE_SECONDS = Histogram(
    "smtp_enqueue_duration_seconds", "End of data to commit of the queue row.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

# ---------------------------------------------------------------- API
API_REQUESTS = Counter(
    "api_requests_total", "API requests, by route template.", ["method", "path", "status"]
)
API_DURATION = Histogram(
    "api_request_duration_seconds", "API request duration, by route template.",
    ["method", "path"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5),
)
API_AUTH_FAILURES = Counter("api_auth_failures_total", "API requests refused 401/403.")

# ---------------------------------------------------------------- database
DB_ACTIVE = Gauge("db_connections_active", "Pooled connections in use.", multiprocess_mode="livesum")
DB_IDLE = Gauge("db_connections_idle", "Pooled connections idle.", multiprocess_mode="livesum")
DB_MAX = Gauge("db_connections_max", "Pool size limit.", multiprocess_mode="livesum")
DB_WAITING = Gauge(
    "db_operations_waiting", "Operations waiting for a pooled connection.",
    multiprocess_mode="livesum",
)
DB_QUERY_SECONDS = Histogram(
    "db_query_duration_seconds", "One crossing to the database, by operation.", ["query"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
)
DB_ERRORS = Counter("db_errors_total", "Failed database operations.", ["query"])

# ---------------------------------------------------------------- queue and worker
QUEUE_DEPTH = Gauge(
    "queue_depth", "Messages by status (sampled by the worker).", ["status"],
    multiprocess_mode="livemostrecent",
)
QUEUE_OLDEST_AGE = Gauge(
    "queue_oldest_message_age_seconds", "Age of the oldest queued or deferred message.",
    multiprocess_mode="livemostrecent",
)
QUEUE_PROCESSING_SECONDS = Histogram(
    "queue_processing_duration_seconds", "A worker's time on one message, claim to verdict.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
DELIVERY_ATTEMPTS = Counter(
    "delivery_attempts_total", "Attempts at a provider, by outcome.", ["provider_type", "outcome"]
)
WEBHOOK_ATTEMPTS = Counter(
    "webhook_attempts_total",
    "Webhook requests, by result: delivered, retry (will be tried again) or failed (given up).",
    ["result"],
)
PROVIDER_CIRCUIT = Gauge(
    "provider_circuit_state", "Circuit breaker per provider: 0 closed, 1 half open, 2 open.",
    ["provider"], multiprocess_mode="livemax",
)

# ---------------------------------------------------------------- TLS
TLS_EXPIRY_DAYS = Gauge(
    "tls_cert_expiry_days", "Days until the SMTP certificate expires.",
    multiprocess_mode="livemin",
)

CIRCUIT_VALUES = {"closed": 0, "half_open": 1, "open": 2}


def scrape_registry() -> CollectorRegistry:
    """What a scrape reads: this process's registry, or with several processes one
    that sums every process of this node."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return REGISTRY
    registry = CollectorRegistry()
    # prometheus_client's multiprocess module has no annotations.
    _multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry


def exposition() -> tuple[bytes, str]:
    """The current values in Prometheus's text format, and its content type."""
    return generate_latest(scrape_registry()), CONTENT_TYPE_LATEST


def process_gone(pid: int) -> None:
    """A child process ended: its live gauges stop counting."""
    if os.environ.get(MULTIPROC_ENV):
        _multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


_LOCALS = re.compile(r"\.<locals>")


_series: dict[tuple[Any, tuple[str, ...]], Any] = {}


def series(metric: Any, *values: str) -> Any:
    """``metric.labels(*values)``, looked up once per combination and then kept, for
    the per-reply, per-request and per-crossing paths: ``labels`` takes a lock and
    validates its arguments on every call. The values must come from a bounded set
    (our own reply codes, route templates, operation names), never from a client."""
    key = (metric, values)
    found = _series.get(key)
    if found is None:
        found = _series[key] = metric.labels(*values)
    return found


def operation_name(fn: Callable[..., Any]) -> str:
    """A bounded label for a database operation: the code's own name for it
    (``MessageRepository.claim.take``). Called per crossing, so the name is cached."""
    return _label(getattr(fn, "__qualname__", type(fn).__name__))


@functools.lru_cache(maxsize=1024)
def _label(qualname: str) -> str:
    return _LOCALS.sub("", qualname)


@contextmanager
def timed(histogram: Histogram) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        histogram.observe(time.perf_counter() - started)
