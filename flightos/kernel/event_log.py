"""Raising the kernel's events: on ``ev.kernel``, in the run record and the log; the recent decisions kept."""

from __future__ import annotations

import time
from typing import Any

import structlog

from flightos.bus.envelope import FrameError, Kind
from flightos.bus.pubsub import Publisher
from flightos.kernel.events import EventId
from flightos.kernel.recorder import RunRecorder
from flightos.sdk.severity import Severity

log = structlog.get_logger("flightos.kernel")

DECISIONS = {
    EventId.SERVICE_HUNG,
    EventId.SERVICE_FAILED,
    EventId.SERVICE_RESTART_SCHEDULED,
    EventId.CORE_STATE_CHANGED,
    EventId.MODE_CHANGED,
    EventId.SERVICE_MIGRATED,
    EventId.SERVICE_SHED,
    EventId.SERVICE_RESTORED,
    EventId.THERMAL_LEVEL,
    EventId.POWER_OVER_BUDGET,
    EventId.WATCHDOG_RESET,
    EventId.SERVICE_PLACED,
}
"""Events that record a decision of the kernel, listed by `flightos status` with their reasons."""


class EventLog:
    """Every part of the kernel raises its events through one ``emit``, handed to it as a callable."""

    def __init__(self, publisher: Publisher, recorder: RunRecorder) -> None:
        self.publisher = publisher
        self.recorder = recorder
        self.decisions: list[dict[str, Any]] = []
        """The last 50 decisions (see ``DECISIONS``), oldest first; the list is kept, only trimmed."""
        self._denied_topics: set[tuple[str, str]] = set()

    def emit(self, event_id: EventId, severity: Severity, message: str, **data: Any) -> None:
        """Raise a kernel event: on ``ev.kernel`` and in the log, with its reason in ``message``."""
        payload = {
            "id": int(event_id),
            "name": event_id.name,
            "severity": int(severity),
            "severity_name": severity.name,
            "message": message,
            "data": data,
        }
        self.publisher.publish("ev.kernel", payload, Kind.EVENT)
        if event_id in DECISIONS:
            self.decisions.append({"t": time.time(), "event": event_id.name, "message": message})
            del self.decisions[:-50]
        self.recorder.event("ev.kernel", "kernel", time.time_ns(), payload)
        level = "info" if severity == Severity.INFO else "warning" if severity < Severity.HIGH else "error"
        getattr(log, level)(event_id.name.lower(), event_id=int(event_id), msg=message, **data)

    def rejected(self, where: str, err: FrameError, count: int) -> None:
        """A receiver rejected a frame (reported while its count is small, then every 1000th)."""
        self.emit(
            EventId.BUS_FRAME_REJECTED,
            Severity.LOW,
            f"rejected a frame on {where}: {err}",
            where=where,
            reason=err.reason,
            count=count,
        )

    def publish_denied(self, publisher: str, topic: str, board: str, how: str) -> None:
        """Raise PUBLISH_DENIED once per publisher and topic (a flood of refusals is one event each)."""
        if (publisher, topic) in self._denied_topics or len(self._denied_topics) >= 1000:
            return
        self._denied_topics.add((publisher, topic))
        self.emit(
            EventId.PUBLISH_DENIED,
            Severity.HIGH,
            f"{publisher} on board {board} may not publish {topic} (target [acl]); {how}",
            publisher=publisher,
            topic=topic,
            board=board,
        )
