"""Structured logs: JSON lines for machines, readable lines on a terminal.

Context such as a session's correlation id is bound with ``bind(...)`` and lives in a
contextvar, so every line a trio task writes carries it (each task gets a copy of its
parent's context). Never bind or log a secret: passwords, AUTH blobs and keys stay
out of every event by construction (models mark them ``repr=False``).
"""

from __future__ import annotations

import logging
import random
import sys
from collections.abc import Callable
from typing import TextIO

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

from .config import LoggingConfig

bind = structlog.contextvars.bind_contextvars
unbind = structlog.contextvars.unbind_contextvars
bound = structlog.contextvars.bound_contextvars


def get_logger(name: str) -> FilteringBoundLogger:
    # configure() makes every logger a filtering bound logger; structlog's lazy proxy
    # is declared Any.
    logger: FilteringBoundLogger = structlog.get_logger(name)
    return logger


#: One line per unit of work at a busy relay: ``logging.sample_rate`` keeps that share
#: of them. Everything else — and every warning and error — is always written.
HIGH_VOLUME = frozenset({"message accepted", "request", "message delivered"})


def sampler(
    rate: float, draw: Callable[[], float] = random.random
) -> Callable[[WrappedLogger, str, EventDict], EventDict]:
    """A structlog processor keeping ``rate`` of the high-volume info lines."""

    def sample(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
        high_volume = method in ("info", "debug") and event.get("event") in HIGH_VOLUME
        if rate < 1.0 and high_volume and draw() >= rate:
            raise structlog.DropEvent
        return event

    return sample


_stream: TextIO | None = None


def reconfigure(config: LoggingConfig) -> None:
    """Apply a new level and sampling rate (live reload), same destination."""
    configure(config, _stream)


def configure(config: LoggingConfig, stream: TextIO | None = None) -> None:
    global _stream
    stream = sys.stdout if stream is None else stream
    _stream = stream
    as_json = config.format == "json" or (
        config.format == "auto" and not getattr(stream, "isatty", lambda: False)()
    )
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            sampler(config.sample_rate),
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, config.level.upper())
        ),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
