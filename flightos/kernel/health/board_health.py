"""The board's health (hal.health) read every few seconds off the event loop: ``tm.hal.health``, events, status.

A read runs in a daemon thread: a stuck source (a hung file system under statvfs) stalls only this
loop, which then reports how stale its figures are, and never keeps the kernel from exiting.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from flightos.kernel.events import EventId
from flightos.sdk.severity import Severity
from hal.board import Board
from hal.health import Alert, BoardHealth, HealthWatch, sources_for

log = structlog.get_logger("flightos.kernel")

PERIOD_S = 5.0
"""How often board health is read (RAM, disks, kernel log, eMMC, clock change slowly)."""

#: Each alert kind of hal.health -> the kernel event that reports it.
ALERT_EVENTS = {
    "under_voltage": EventId.BOARD_UNDER_VOLTAGE,
    "read_only": EventId.FILESYSTEM_READ_ONLY,
    "emmc_wear": EventId.EMMC_WEAR,
    "kernel_error": EventId.KERNEL_LOG_ERROR,
    "disk_full": EventId.DISK_NEARLY_FULL,
}
SEVERITIES = {"low": Severity.LOW, "medium": Severity.MEDIUM, "high": Severity.HIGH}


class Emit(Protocol):
    """The kernel's ``emit``."""

    def __call__(self, event_id: EventId, severity: Severity, message: str, **data: Any) -> None: ...


class BoardHealthLoop:
    """Polls a HealthWatch every ``period_s``; ``latest`` is the last reading as a dict (for ``status``)."""

    def __init__(
        self,
        watch: HealthWatch,
        publish: Callable[[str, dict[str, Any]], object],
        emit: Emit,
        period_s: float = PERIOD_S,
    ) -> None:
        self.watch = watch
        self.publish = publish
        self.emit = emit
        self.period_s = period_s
        self.latest: dict[str, Any] | None = None

    @classmethod
    def for_board(
        cls, board: Board, state_dir: str, publish: Callable[[str, dict[str, Any]], object], emit: Emit
    ) -> BoardHealthLoop:
        """The loop for a kernel's board, measuring / and the state directory's file system."""
        return cls(HealthWatch(sources_for(board, state_dir)), publish, emit)

    async def run(self) -> None:
        """Read, publish and raise, until cancelled; the kernel log is closed on the way out."""
        try:
            while True:
                started = time.time()
                try:
                    self._publish(*await _in_thread(self.watch.poll))
                except Exception as exc:  # a HAL bug must never stop the kernel, nor this loop
                    log.warning("kernel.board_health_failed", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(max(0.0, self.period_s - (time.time() - started)))
        finally:
            self.watch.close()

    def _publish(self, health: BoardHealth, alerts: list[Alert]) -> None:
        self.latest = health.to_dict()
        self.publish("tm.hal.health", self.latest)
        for a in alerts:
            self.emit(ALERT_EVENTS[a.kind], SEVERITIES.get(a.severity, Severity.MEDIUM), a.message, **a.data)


async def _in_thread(fn: Callable[[], tuple[BoardHealth, list[Alert]]]) -> tuple[BoardHealth, list[Alert]]:
    """Run ``fn`` in a daemon thread (asyncio.to_thread's pool would hold the exit on a stuck read)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[tuple[BoardHealth, list[Alert]]] = loop.create_future()

    def settle(result: Any, exc: BaseException | None) -> None:
        if done.done():
            return
        if exc is not None:
            done.set_exception(exc)
        else:
            done.set_result(result)

    def work() -> None:
        try:
            result, exc = fn(), None
        except BaseException as e:  # handed to the awaiting task
            result, exc = None, e
        try:
            loop.call_soon_threadsafe(settle, result, exc)
        except RuntimeError:
            pass  # the loop closed while this read was stuck

    threading.Thread(target=work, name="board-health", daemon=True).start()
    return await done
