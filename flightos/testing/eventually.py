"""``eventually()``: wait for a condition by polling it, so tests never hand-write a deadline loop."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

_SHOWN = 500
"""Characters of the last value a timeout message shows."""


@overload
async def eventually(
    check: Callable[[], Awaitable[T]],
    *,
    until: Callable[[T], object] | None = None,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "",
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T],
    *,
    until: Callable[[T], object] | None = None,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "",
) -> T: ...


async def eventually(
    check: Callable[[], Any],
    *,
    until: Callable[[Any], object] | None = None,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "",
) -> Any:
    """Call ``check()`` (plain or async) every ``interval`` s until it holds; return its last value.

    It holds when ``until(value)`` is truthy, or without ``until`` when the value itself is. After
    ``timeout`` s it raises TimeoutError naming ``what`` (default: the check's name) and the last value.
    Exceptions from ``check`` or ``until`` propagate at once: they are failures, not "not yet".
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if until(value) if until is not None else value:
            return value
        if loop.time() >= deadline:
            shown = repr(value)
            if len(shown) > _SHOWN:
                shown = shown[:_SHOWN] + f"… ({len(shown)} characters)"
            label = what or getattr(check, "__qualname__", repr(check))
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {label}; last value: {shown}")
        await asyncio.sleep(interval)
