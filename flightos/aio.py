"""Small asyncio helpers: a task set that keeps references and logs failures instead of losing them."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog

log = structlog.get_logger("flightos")


class TaskSet:
    """Fire-and-forget tasks that are neither garbage-collected mid-flight nor fail silently."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Start ``coro`` as a task and keep it until it ends."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task_failed", owner=self.name, error=repr(task.exception()))

    def cancel_all(self) -> None:
        """Cancel every running task."""
        for t in list(self._tasks):
            t.cancel()

    def __len__(self) -> int:
        return len(self._tasks)
