"""When to try a temporarily refused message again, and when to give up.

Strategy: exponential backoff with "equal jitter": the n-th retry waits between half
and all of ``min(backoff_max, backoff_base * 2**(n-1))``, so retries after a shared
outage spread out instead of arriving together, yet never come sooner than half the
backoff. Two bounds end the retries: ``max_attempts`` (each claim is an attempt)
and ``max_age`` (seconds since the message was queued). The last retry is moved
earlier, never later, than ``max_age`` so a message is given up on time.

Which failures are temporary is decided by the providers (``providers/_http.py`` for
HTTP status codes, the SMTP reply class for SMTP); this module only schedules.
"""

from __future__ import annotations

import datetime as dt
import random

import attrs

from ..config import WorkerConfig


@attrs.frozen
class Retry:
    at: dt.datetime


@attrs.frozen
class GiveUp:
    #: Says why, for the message's ``last_error`` and its log.
    reason: str


@attrs.frozen
class RetryPolicy:
    max_attempts: int
    max_age: float
    backoff_base: float
    backoff_max: float

    @classmethod
    def from_config(cls, config: WorkerConfig) -> RetryPolicy:
        return cls(config.max_attempts, config.max_age, config.backoff_base, config.backoff_max)

    def backoff(self, attempts: int, rng: random.Random) -> float:
        """Seconds to wait after the ``attempts``-th attempt failed (attempts >= 1)."""
        exponent = max(attempts - 1, 0)
        # Cap the exponent before computing, so a huge attempt count cannot overflow.
        ceiling = self.backoff_max if exponent > 62 else min(
            self.backoff_max, self.backoff_base * 2.0**exponent
        )
        return ceiling / 2 + rng.random() * ceiling / 2

    def deadline(self, created_at: dt.datetime) -> dt.datetime:
        return created_at + dt.timedelta(seconds=self.max_age)

    def after_temporary_failure(
        self, *, attempts: int, created_at: dt.datetime, now: dt.datetime, rng: random.Random
    ) -> Retry | GiveUp:
        """Schedule the next attempt of a message that failed temporarily ``attempts`` times."""
        if attempts >= self.max_attempts:
            return GiveUp(f"gave up after {attempts} attempts (worker.max_attempts)")
        return self.not_before(now + dt.timedelta(seconds=self.backoff(attempts, rng)), created_at=created_at, now=now)

    def not_before(self, at: dt.datetime, *, created_at: dt.datetime, now: dt.datetime) -> Retry | GiveUp:
        """Retry at ``at`` unless that is past ``max_age`` (then at the deadline, or never)."""
        deadline = self.deadline(created_at)
        if now >= deadline:
            age = (now - created_at).total_seconds()
            return GiveUp(f"gave up: queued {age:.0f}s ago, past worker.max_age ({self.max_age:.0f}s)")
        return Retry(min(at, deadline))
