"""Circuit breakers: stop sending to a provider that keeps failing, for a while.

Strategy: one ``Breakers`` object per worker process holds a small state machine per
provider (the states are ``HealthState``: CLOSED → OPEN after ``threshold``
consecutive temporary failures; OPEN → HALF_OPEN when ``cooldown`` has passed;
HALF_OPEN lets exactly one probe through, whose success closes the circuit and whose
failure opens it for another ``cooldown``). Decisions are made in memory, with the
time passed in, so tests drive it without a clock. Every transition is queued for
``take_changes`` so the worker can persist them in one batch
(``storage.worker_state``), where other workers (``adopt``) and the API see them.

"Failure" means temporary or unreachable; a permanent refusal is an answer from a
working provider and counts as success.
"""

from __future__ import annotations

import datetime as dt
import uuid

import attrs

from ..storage.worker_state import HealthState, ProviderHealth


@attrs.define
class _Circuit:
    state: HealthState = HealthState.CLOSED
    failures: int = 0
    opened_until: dt.datetime | None = None
    last_error: str | None = None
    last_failure_at: dt.datetime | None = None
    last_success_at: dt.datetime | None = None
    probing: bool = False


@attrs.frozen
class BreakerStatistics:
    open: int
    half_open: int
    closed: int


class Breakers:
    def __init__(self, *, threshold: int, cooldown: float) -> None:
        self._threshold = threshold
        self._cooldown = dt.timedelta(seconds=cooldown)
        self._circuits: dict[uuid.UUID, _Circuit] = {}
        self._changed: set[uuid.UUID] = set()

    def _circuit(self, provider_id: uuid.UUID) -> _Circuit:
        return self._circuits.setdefault(provider_id, _Circuit())

    def state(self, provider_id: uuid.UUID) -> HealthState:
        return self._circuit(provider_id).state

    def allow(self, provider_id: uuid.UUID, now: dt.datetime) -> bool:
        """May a delivery go to this provider now? (HALF_OPEN admits one probe.)"""
        circuit = self._circuit(provider_id)
        if circuit.state is HealthState.OPEN:
            if circuit.opened_until is not None and now < circuit.opened_until:
                return False
            circuit.state = HealthState.HALF_OPEN
            circuit.probing = False
            self._changed.add(provider_id)
        if circuit.state is HealthState.HALF_OPEN:
            if circuit.probing:
                return False
            circuit.probing = True
        return True

    def reopens_at(self, provider_id: uuid.UUID) -> dt.datetime | None:
        circuit = self._circuit(provider_id)
        return circuit.opened_until if circuit.state is HealthState.OPEN else None

    def describe(self, provider_id: uuid.UUID) -> str:
        circuit = self._circuit(provider_id)
        if circuit.state is HealthState.CLOSED:
            return "circuit closed"
        until = circuit.opened_until.isoformat(timespec="seconds") if circuit.opened_until else "?"
        what = "open" if circuit.state is HealthState.OPEN else "half-open, probe in flight"
        return (
            f"circuit {what} after {circuit.failures} consecutive failures, until {until}"
            f" (last error: {circuit.last_error})"
        )

    def success(self, provider_id: uuid.UUID, now: dt.datetime) -> None:
        circuit = self._circuit(provider_id)
        if circuit.state is not HealthState.CLOSED:
            self._changed.add(provider_id)
        circuit.state = HealthState.CLOSED
        circuit.failures = 0
        circuit.opened_until = None
        circuit.probing = False
        circuit.last_success_at = now

    def failure(self, provider_id: uuid.UUID, now: dt.datetime, error: str) -> None:
        circuit = self._circuit(provider_id)
        circuit.failures += 1
        circuit.last_error = error
        circuit.last_failure_at = now
        reopen = circuit.state is HealthState.HALF_OPEN
        if reopen or (circuit.state is HealthState.CLOSED and circuit.failures >= self._threshold):
            circuit.state = HealthState.OPEN
            circuit.opened_until = now + self._cooldown
            circuit.probing = False
            self._changed.add(provider_id)

    def adopt(self, states: list[ProviderHealth], now: dt.datetime) -> None:
        """Take OPEN circuits that another worker recorded and we have not seen."""
        for health in states:
            circuit = self._circuit(health.provider_id)
            if (
                health.state is HealthState.OPEN
                and health.opened_until is not None
                and health.opened_until > now
                and circuit.state is HealthState.CLOSED
            ):
                circuit.state = HealthState.OPEN
                circuit.opened_until = health.opened_until
                circuit.failures = max(circuit.failures, health.consecutive_failures)
                circuit.last_error = health.last_error

    def take_changes(self) -> list[ProviderHealth]:
        """Circuits that changed state since the last call, ready to persist."""
        changed = [self.snapshot(provider_id) for provider_id in sorted(self._changed)]
        self._changed.clear()
        return changed

    def snapshot(self, provider_id: uuid.UUID) -> ProviderHealth:
        c = self._circuit(provider_id)
        return ProviderHealth(
            provider_id=provider_id,
            state=c.state,
            consecutive_failures=c.failures,
            opened_until=c.opened_until,
            last_error=c.last_error,
            last_failure_at=c.last_failure_at,
            last_success_at=c.last_success_at,
        )

    def statistics(self) -> BreakerStatistics:
        states = [c.state for c in self._circuits.values()]
        return BreakerStatistics(
            open=states.count(HealthState.OPEN),
            half_open=states.count(HealthState.HALF_OPEN),
            closed=states.count(HealthState.CLOSED),
        )
