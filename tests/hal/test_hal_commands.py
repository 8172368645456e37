"""The background command cache: one run per refresh period, last answer with its age, failures as failures."""

from __future__ import annotations

from collections.abc import Sequence

from hal.backends.linux.commands import CommandCache


class Clock:
    """A clock the test moves by hand (the cache's refresh and age arithmetic)."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_one_run_per_refresh_period_and_the_age_of_the_answer() -> None:
    """Reads within refresh_s reuse the answer; after it, a new run starts and the age restarts."""
    calls: list[tuple[str, ...]] = []

    def runner(argv: Sequence[str]) -> tuple[int, str, str]:
        calls.append(tuple(argv))
        return 0, f"answer {len(calls)}", ""

    clock = Clock()
    cache = CommandCache(runner, refresh_s=1.0, first_wait_s=2.0, clock=clock)
    first = cache.get(["vcgencmd", "get_throttled"])
    assert (first.stdout, first.age_s) == ("answer 1", 0.0)
    clock.t += 0.5
    again = cache.get(["vcgencmd", "get_throttled"])
    assert (again.stdout, again.age_s, len(calls)) == ("answer 1", 0.5, 1)
    clock.t += 0.5
    cache.get(["vcgencmd", "get_throttled"])  # due: starts a run, returns the old answer or the new one
    assert cache.wait_idle(5.0)
    fresh = cache.get(["vcgencmd", "get_throttled"])
    assert (fresh.stdout, fresh.age_s, len(calls)) == ("answer 2", 0.0, 2)


def test_failures_are_answers_without_stdout() -> None:
    """A non-zero exit and a runner that raises both give stdout None with the reason, never an exception."""

    def runner(argv: Sequence[str]) -> tuple[int, str, str]:
        if argv[0] == "boom":
            raise RuntimeError("runner bug")
        return 1, "", "VCHI initialization failed"

    cache = CommandCache(runner, first_wait_s=2.0)
    failed = cache.get(["vcgencmd", "measure_temp"])
    assert failed.stdout is None and not failed.pending and failed.error == "VCHI initialization failed"
    crashed = cache.get(["boom"])
    assert crashed.stdout is None and "runner bug" in crashed.error
