"""Commands start inside the callback that received them: a handler that does not wait replies at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flightos.bus.eager import start_eagerly


def run_in_callback(start: Any, timeout: float = 2.0) -> dict[str, Any]:
    """Call ``start(loop, seen)`` from a plain loop callback (as a socket's FD callback is), then run the loop."""
    loop = asyncio.new_event_loop()
    seen: dict[str, Any] = {}
    try:
        loop.call_soon(start, loop, seen)
        loop.run_until_complete(asyncio.wait_for(seen.setdefault("done", loop.create_future()), timeout))
    finally:
        loop.close()
    return seen


def test_a_handler_that_does_not_wait_finishes_before_the_callback_returns() -> None:
    async def ping(seen: dict[str, Any]) -> None:
        seen["task"] = asyncio.current_task()

    def start(loop: asyncio.AbstractEventLoop, seen: dict[str, Any]) -> None:
        task = start_eagerly(ping(seen), loop)
        seen["finished_in_callback"] = "task" in seen
        seen["same_task"] = seen.get("task") is task
        task.add_done_callback(lambda t: seen["done"].set_result(None))

    seen = run_in_callback(start)
    assert seen["finished_in_callback"]
    assert seen["same_task"], "the handler runs as its own task (current_task works before any await)"


def test_a_handler_that_waits_goes_on_as_its_task_and_can_be_cancelled() -> None:
    async def slow(seen: dict[str, Any], gate: asyncio.Future[int]) -> None:
        seen["got"] = await gate
        seen["still_own_task"] = asyncio.current_task() is seen["task"]
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            seen["cancelled"] = True
            raise

    def start(loop: asyncio.AbstractEventLoop, seen: dict[str, Any]) -> None:
        gate: asyncio.Future[int] = loop.create_future()
        task = seen["task"] = start_eagerly(slow(seen, gate), loop)
        seen["waiting_after_callback"] = not task.done() and "got" not in seen
        loop.call_later(0.01, gate.set_result, 7)
        loop.call_later(0.05, task.cancel)
        task.add_done_callback(lambda t: seen["done"].set_result(t.cancelled()))

    seen = run_in_callback(start)
    assert seen["waiting_after_callback"]
    assert seen["got"] == 7 and seen["still_own_task"]
    assert seen["cancelled"] and seen["done"].result() is True


def test_a_failure_before_the_first_wait_is_the_task_exception() -> None:
    async def boom() -> None:
        raise ValueError("bad input")

    def start(loop: asyncio.AbstractEventLoop, seen: dict[str, Any]) -> None:
        task = start_eagerly(boom(), loop)
        task.add_done_callback(lambda t: seen["done"].set_result(t.exception()))

    seen = run_in_callback(start)
    with pytest.raises(ValueError, match="bad input"):
        raise seen["done"].result()


def test_inside_another_task_it_falls_back_to_an_ordinary_task() -> None:
    async def handler(seen: dict[str, Any]) -> None:
        seen["ran"] = True

    async def main() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        task = start_eagerly(handler(seen), asyncio.get_running_loop())
        await task
        return seen

    assert asyncio.run(main()) == {"ran": True}
