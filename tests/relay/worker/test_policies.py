"""Retry scheduling and circuit breakers, driven with explicit times (no clock)."""

from __future__ import annotations

import datetime as dt
import random
import uuid

from relay.storage.worker_state import HealthState, ProviderHealth
from relay.worker.breaker import Breakers
from relay.worker.retry import GiveUp, Retry, RetryPolicy

from .helpers import NOW

POLICY = RetryPolicy(max_attempts=5, max_age=3600, backoff_base=60, backoff_max=600)
S = dt.timedelta(seconds=1)


def test_backoff_doubles_with_jitter_between_half_and_all() -> None:
    rng = random.Random(7)
    for attempts, ceiling in [(1, 60), (2, 120), (3, 240), (4, 480), (5, 600), (9, 600), (500, 600)]:
        delays = [POLICY.backoff(attempts, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 4  # actually jittered


def test_retry_is_scheduled_after_the_backoff() -> None:
    plan = POLICY.after_temporary_failure(attempts=2, created_at=NOW, now=NOW + 10 * S, rng=random.Random(1))
    assert isinstance(plan, Retry)
    assert NOW + 70 * S <= plan.at <= NOW + 130 * S


def test_max_attempts_gives_up() -> None:
    plan = POLICY.after_temporary_failure(attempts=5, created_at=NOW, now=NOW, rng=random.Random(1))
    assert isinstance(plan, GiveUp) and "5 attempts" in plan.reason and "max_attempts" in plan.reason


def test_max_age_moves_the_last_retry_to_the_deadline_then_gives_up() -> None:
    late = NOW + 3500 * S
    plan = POLICY.after_temporary_failure(attempts=4, created_at=NOW, now=late, rng=random.Random(1))
    assert plan == Retry(NOW + 3600 * S)
    plan = POLICY.after_temporary_failure(attempts=4, created_at=NOW, now=NOW + 3600 * S, rng=random.Random(1))
    assert isinstance(plan, GiveUp) and "max_age" in plan.reason


def test_breaker_opens_after_threshold_skips_then_probes_once_and_closes() -> None:
    breakers = Breakers(threshold=3, cooldown=60)
    pid = uuid.uuid4()
    for i in range(2):
        breakers.failure(pid, NOW, "503")
        assert breakers.allow(pid, NOW)
    assert breakers.take_changes() == []
    breakers.failure(pid, NOW, "503 Service Unavailable")
    assert breakers.state(pid) is HealthState.OPEN
    assert not breakers.allow(pid, NOW + 59 * S)
    assert breakers.reopens_at(pid) == NOW + 60 * S
    assert "3 consecutive failures" in breakers.describe(pid)
    [change] = breakers.take_changes()
    assert change.state is HealthState.OPEN and change.last_error == "503 Service Unavailable"
    # Cool-off over: exactly one probe goes through.
    assert breakers.allow(pid, NOW + 60 * S)
    assert breakers.state(pid) is HealthState.HALF_OPEN
    assert not breakers.allow(pid, NOW + 61 * S)
    breakers.success(pid, NOW + 62 * S)
    assert breakers.state(pid) is HealthState.CLOSED and breakers.allow(pid, NOW + 62 * S)
    assert [c.state for c in breakers.take_changes()] == [HealthState.CLOSED]


def test_failed_probe_reopens_for_another_cooldown() -> None:
    breakers = Breakers(threshold=1, cooldown=60)
    pid = uuid.uuid4()
    breakers.failure(pid, NOW, "timeout")
    assert breakers.allow(pid, NOW + 60 * S)
    breakers.failure(pid, NOW + 61 * S, "timeout")
    assert breakers.state(pid) is HealthState.OPEN
    assert breakers.reopens_at(pid) == NOW + 121 * S


def test_success_resets_the_count() -> None:
    breakers = Breakers(threshold=2, cooldown=60)
    pid = uuid.uuid4()
    breakers.failure(pid, NOW, "x")
    breakers.success(pid, NOW)
    breakers.failure(pid, NOW, "x")
    assert breakers.state(pid) is HealthState.CLOSED


def test_adopts_circuits_other_workers_opened() -> None:
    breakers = Breakers(threshold=5, cooldown=60)
    pid, stale = uuid.uuid4(), uuid.uuid4()
    breakers.adopt([
        ProviderHealth(pid, HealthState.OPEN, 5, NOW + 30 * S, "503"),
        ProviderHealth(stale, HealthState.OPEN, 5, NOW - S, "503"),
    ], NOW)
    assert not breakers.allow(pid, NOW)
    assert breakers.allow(stale, NOW)


def test_mailgun_region_picks_the_endpoint() -> None:
    import datetime as dt
    import uuid

    import httpx

    from relay import models
    from relay.worker.providers.mailgun import Mailgun

    def provider(config: dict[str, str]) -> models.Provider:
        now = dt.datetime.now(dt.UTC)
        return models.Provider(id=uuid.uuid4(), account_id=uuid.uuid4(), name="mg", type=models.ProviderType.MAILGUN,
                               config={"api_key": "k", "domain": "mg.example", **config}, enabled=True,
                               created_at=now, updated_at=now)

    client = httpx.AsyncClient()
    assert "https://api.eu.mailgun.net/v3/mg.example/" in repr(Mailgun(provider({"region": "eu"}), client))
    assert "https://api.mailgun.net/v3/mg.example/" in repr(Mailgun(provider({}), client))
