"""Acting on services for the health monitor and the link: move them between cores, shed, restore, throttle.

It joins supervision (restarts) and health (board effects), so it lives at the kernel level, and the monitor
sees it only as its ``ServiceMoves`` port.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
import zmq

import hal
from flightos.bus import envelope as wire
from flightos.bus.aiozmq import AsyncSocket
from flightos.bus.envelope import Kind
from flightos.kernel.events import EventId
from flightos.kernel.health.faults import BoardEffects
from flightos.kernel.records import ServiceRecord, State
from flightos.kernel.supervision.ports import Emit
from flightos.kernel.supervision.supervisor import Supervisor
from flightos.sdk.severity import Severity

log = structlog.get_logger("flightos.kernel")


class Mover:
    """Places, moves, sheds and restores services, and sends them control messages."""

    def __init__(
        self,
        board: hal.Board,
        supervisor: Supervisor,
        effects: BoardEffects,
        control: AsyncSocket,
        emit: Emit,
        shutdown_grace_s: float,
    ) -> None:
        self.board = board
        self.supervisor = supervisor
        self.effects = effects
        self.control = control
        self.emit = emit
        self.shutdown_grace_s = shutdown_grace_s

    def set_cores(self, rec: ServiceRecord, cores: list[int]) -> None:
        """Give a service its cores (and the host CPUs they map to); its process is not touched."""
        rec.cores = cores
        rec.host_cpus = sorted({c for core in cores for c in self.board.host_cpus(core)})

    def move_service(self, rec: ServiceRecord, cores: list[int], *, restart: bool, reason: str) -> None:
        """Move a service to other cores: its threads' affinity where it can run, else a restart there."""
        old = list(rec.cores)
        t0 = time.monotonic()
        self.set_cores(rec, cores)
        restarted = False
        if rec.pid is not None and restart:
            self.supervisor.relocate(rec)
            restarted = True
        elif rec.pid is not None:
            try:
                hal.affinity.set_process_affinity(rec.pid, rec.host_cpus)
            except (hal.HalError, OSError) as exc:
                log.warning("kernel.affinity_failed", service=rec.name, error=str(exc))
                self.supervisor.relocate(rec)
                restarted = True
            self.effects.enforce()  # a frozen process that moved to a live core runs again
        ms = round((time.monotonic() - t0) * 1000, 2)
        self.emit(
            EventId.SERVICE_MIGRATED,
            Severity.MEDIUM if restarted else Severity.INFO,
            f"{rec.name} moved from core(s) {old} to {cores}"
            + (" by a restart" if restarted else " without a restart")
            + f": {reason}",
            service=rec.name,
            from_cores=old,
            to_cores=cores,
            host_cpus=rec.host_cpus,
            restarted=restarted,
            reason=reason,
            ms=ms,
        )

    async def shed_service(self, rec: ServiceRecord, why: str) -> None:
        """Stop a service to fit the mode, capacity or power budget (not a failure: no restart)."""
        rec.reason = f"shed: {why}"
        if rec.pid is not None or rec.state in (State.STARTING, State.BACKOFF, State.RESTARTING):
            await self.supervisor.stop_service(rec, self.shutdown_grace_s, rec.reason)

    async def restore_service(self, rec: ServiceRecord) -> None:
        """Start a shed service again, on a usable core."""
        if rec.pid is None and rec.state in (State.STOPPED, State.STOPPING):
            rec.tracker.consecutive = 0
            await self.supervisor.spawn(rec)

    def send_control(self, rec: ServiceRecord, payload: dict[str, Any]) -> bool:
        """Send a control message (e.g. a throttle level) to a service's current incarnation."""
        try:
            self.control.send_multipart_nowait(
                [rec.identity.encode(), wire.encode(wire.make(Kind.CONTROL, rec.name, "kernel", payload))]
            )
            return True
        except zmq.ZMQError:
            return False
