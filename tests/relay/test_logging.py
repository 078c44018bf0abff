"""``logging.sample_rate``: high-volume info lines sampled, warnings and errors never."""

from __future__ import annotations

import itertools

import pytest
import structlog

from relay.logging import HIGH_VOLUME, sampler


def kept(rate: float, method: str, event: str, draws: list[float]) -> int:
    draw = itertools.cycle(draws).__next__
    sample = sampler(rate, draw)
    count = 0
    for _ in range(len(draws)):
        try:
            sample(None, method, {"event": event})
            count += 1
        except structlog.DropEvent:
            pass
    return count


def test_high_volume_info_lines_keep_their_share() -> None:
    draws = [i / 100 for i in range(100)]
    for event in HIGH_VOLUME:
        assert kept(0.25, "info", event, draws) == 25


@pytest.mark.parametrize("method", ["warning", "error", "exception", "critical"])
def test_warnings_and_errors_are_never_sampled(method: str) -> None:
    assert kept(0.01, method, "message accepted", [0.99] * 10) == 10


def test_other_lines_and_a_rate_of_one_keep_everything() -> None:
    assert kept(0.01, "info", "session start", [0.99] * 10) == 10
    assert kept(1.0, "info", "request", [0.999] * 10) == 10
