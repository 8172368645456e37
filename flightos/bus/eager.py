"""Start a command's coroutine at once, inside the callback that received it, under its own task.

A handler that answers without waiting (``ping``, a parameter read) then runs and replies in the
very callback that received the command: the reply leaves one event-loop iteration earlier. The
coroutine runs as its task (``asyncio.current_task()``, ``asyncio.timeout()`` and cancellation
work as usual); Python 3.12 does this itself (``eager_start``), 3.10 and 3.11 do it here.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine, Generator
from typing import Any

_NATIVE = sys.version_info >= (3, 12)


def start_eagerly(coro: Coroutine[Any, Any, None], loop: asyncio.AbstractEventLoop) -> asyncio.Task[None]:
    """Run ``coro`` now up to its first wait, as the returned task, which goes on with the rest."""
    if _NATIVE:
        return asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg,unused-ignore]
    if asyncio.current_task(loop) is not None:  # inside another task: cannot run as a second one now
        return loop.create_task(coro)
    step = _FirstStep(coro)
    task = loop.create_task(step.rest())  # its first step continues where the eager part stopped
    asyncio.tasks._enter_task(loop, task)
    try:
        step.run()
    finally:
        asyncio.tasks._leave_task(loop, task)
    return task


class _FirstStep:
    """Runs a coroutine up to its first wait; ``rest()`` goes on from there (or re-raises what it raised)."""

    __slots__ = ("coro", "error", "finished", "pending")

    def __init__(self, coro: Coroutine[Any, Any, None]) -> None:
        self.coro = coro
        self.pending: Any = None
        self.finished = False
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.pending = self.coro.send(None)
        except StopIteration:
            self.finished = True
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # raised in the task (rest()), so it is reported like any task's failure
            self.finished = True
            self.error = exc

    async def rest(self) -> None:
        if self.error is not None:
            raise self.error
        if not self.finished:
            await self

    def __await__(self) -> Generator[Any, Any, None]:
        coro, pending = self.coro, self.pending
        while True:
            try:
                sent = yield pending  # the task waits on what the coroutine was waiting on
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # a cancellation (or thrown error) goes on into the coroutine
                try:
                    pending = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    pending = coro.send(sent)
                except StopIteration:
                    return
