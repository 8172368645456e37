"""``flightos.testing.eventually``: returns the first value that holds, or fails naming what it waited for."""

from __future__ import annotations

import pytest

from flightos.testing import eventually


async def test_returns_the_first_truthy_value_of_a_plain_check() -> None:
    """A plain function is polled until its value is truthy; that value is returned."""
    calls = iter([0, None, 3, 4])
    assert await eventually(lambda: next(calls), interval=0.001) == 3


async def test_awaits_an_async_check_and_applies_until() -> None:
    """An async check is awaited; with ``until`` the value must satisfy it, falsy values included."""
    values = iter([5, 2, 0, 7])

    async def read() -> int:
        return next(values)

    assert await eventually(read, until=lambda v: v == 0, interval=0.001) == 0


async def test_timeout_names_what_and_the_last_value() -> None:
    """After the timeout: TimeoutError with ``what`` and the last value seen."""
    with pytest.raises(TimeoutError, match=r"waiting for the job to end; last value: \{'state': 'running'\}"):
        await eventually(
            lambda: {"state": "running"},
            until=lambda r: r["state"] == "done",
            timeout=0.05,
            interval=0.01,
            what="the job to end",
        )


async def test_timeout_defaults_to_the_check_name_and_shortens_long_values() -> None:
    """Without ``what`` the check's name is used; a long last value is cut."""

    def never() -> list[int]:
        return []

    with pytest.raises(TimeoutError, match=r"waiting for .*never; last value: \[\]"):
        await eventually(never, timeout=0.02, interval=0.01)
    with pytest.raises(TimeoutError, match=r"characters\)$"):
        await eventually(lambda: "x" * 2000, until=lambda v: False, timeout=0.02, interval=0.01)


async def test_errors_from_the_check_propagate() -> None:
    """A check that raises is a failure at once, not a condition still pending."""

    def broken() -> bool:
        raise KeyError("state")

    with pytest.raises(KeyError):
        await eventually(broken, timeout=5)
