"""Restart backoff and intensity, with the defaults docs/targets.md lists for `[restart]`."""

from __future__ import annotations

import random

from flightos.kernel.restart_policy import RestartSettings, RestartTracker


def test_first_restart_is_immediate_then_doubles_to_the_cap() -> None:
    """0, 1, 2, 4 … 60 s without jitter, while the intensity limit allows."""
    t = RestartTracker(RestartSettings(backoff_jitter=0.0, max_restarts=100, window_s=1.0))
    delays = [t.next_delay(now=i * 10.0, healthy_for=0.0) for i in range(9)]
    assert delays == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


def test_jitter_stays_within_bounds() -> None:
    """Each delay is within ±20 % of its base."""
    t = RestartTracker(RestartSettings(max_restarts=1000, window_s=1.0), rng=random.Random(1))
    t.next_delay(0.0, 0.0)
    for i in range(1, 200):
        t.consecutive = 3
        d = t.next_delay(float(i) * 100, 0.0)
        assert d is not None and 4 * 0.8 <= d <= 4 * 1.2


def test_healthy_spell_resets_backoff() -> None:
    """After reset_after_s of health, the next restart is immediate again."""
    t = RestartTracker(RestartSettings(backoff_jitter=0.0, window_s=1.0))
    assert [t.next_delay(float(i), 0.0) for i in range(3)] == [0.0, 1.0, 2.0]
    assert t.next_delay(10.0, healthy_for=600.0) == 0.0


def test_more_than_max_restarts_in_window_fails() -> None:
    """Five restarts in ten minutes are allowed; the sixth crash makes it FAILED."""
    t = RestartTracker(RestartSettings(backoff_jitter=0.0))
    assert all(t.next_delay(float(i), 0.0) is not None for i in range(5))
    assert t.next_delay(5.0, 0.0) is None
    assert t.next_delay(700.0, 0.0) is not None  # the window slides
