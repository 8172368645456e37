"""What a board's faults mean for the kernel: its timeline raised as events, hung cores freezing their processes.

The board's side (injecting faults, its timeline and core states) is the HAL's ``hal.FaultInjection``
capability, which the simulator has; real boards get its null behaviour, so nothing here asks which board
it is. On a sim target a SEFI really stops the services placed on that core (SIGSTOP), so the kernel's own
hang detection and placement must cope — the same path a real hung core takes.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

import hal
from flightos.bus.errors import BadArguments, ServiceUnavailable
from flightos.kernel.events import EventId
from flightos.kernel.records import ServiceRecord
from flightos.sdk.severity import Severity
from hal.devices.sim.faults import DEVICE_FAULTS
from hal.injection import FAULTS, FaultArgumentError, fault_injection

__all__ = ["DEVICE_FAULTS", "FAULTS", "FULL_READ_S", "HAL_EVENT_SEVERITY", "BoardEffects"]

log = structlog.get_logger("flightos.kernel")

HAL_EVENT_SEVERITY = {
    "sefi": Severity.MEDIUM,
    "sel": Severity.MEDIUM,
    "limiter_trip": Severity.HIGH,
    "core_failed": Severity.HIGH,
    "watchdog_reset": Severity.HIGH,
    "power_cycle": Severity.MEDIUM,
    "core_reset": Severity.INFO,
    "core_online": Severity.INFO,
    "saa_override": Severity.INFO,
    "sun_override": Severity.INFO,
    "thermal_step": Severity.LOW,
}
"""Board timeline entries raised as kernel events; single SEUs go to telemetry only, the scrub that finds them
is an event (edac_scrub: LOW when it corrected every word, HIGH when some were uncorrectable)."""


def _message(ev: hal.TimelineEvent) -> str:
    """The event's one-line text: an EDAC scrub says what it found."""
    if ev.kind == "edac_scrub":
        return (
            f"EDAC scrub: {ev.detail.get('corrected', 0)} word(s) corrected, "
            f"{ev.detail.get('uncorrected', 0)} uncorrectable"
        )
    return f"board: {ev.kind}"


FULL_READ_S = 1.0
"""On a board with its own timeline (the simulator renders a sysfs tree per read), a full reading at most this
often; its core states are still checked every tick."""

MAX_TIMELINE_QUEUE = 10_000
"""Timeline entries kept for telemetry between two telemetry ticks (the oldest go first past it)."""

Emit = Callable[..., None]


class BoardEffects:
    """Bridges the board's fault-injection capability (or its null behaviour) and the service processes."""

    def __init__(
        self,
        board: hal.Board,
        records: Mapping[str, ServiceRecord],
        emit: Emit,
        on_watchdog_reset: Callable[[], None] | None = None,
        runtime_dir: Path | None = None,
    ) -> None:
        self.board = board
        self.runtime_dir = runtime_dir
        """Where the simulated payload devices keep their state (``devices-<kernel pid>``), for device faults."""
        self.injection: hal.FaultInjection = fault_injection(board)
        self.injects_faults = isinstance(board, hal.FaultInjection)
        """Whether the board has the capability (the kernel's ``block`` drill runs only there)."""
        self.records = records
        self.emit = emit
        self.states: dict[int, str] = {c: "ok" for c in board.core_ids()}
        self.frozen: dict[int, int] = {}  # pid -> core it was frozen for
        self.full_read_s = FULL_READ_S if self.injects_faults else 0.0
        """How often the monitor takes a full board reading (0: every tick)."""
        self._events_from = 0.0  # board time of the newest entry taken, and how many were taken at that time
        self._taken_at_from = 0
        self._unpublished: deque[dict[str, Any]] = deque(maxlen=MAX_TIMELINE_QUEUE)
        self.on_watchdog_reset = on_watchdog_reset
        """Told when the board's watchdog reset it (the simulator's), so services start again as after a reboot."""

    # ---- injection ---------------------------------------------------------------------------
    def inject(self, fault: str, args: dict[str, Any]) -> str:
        """Inject one fault into the board (ServiceUnavailable where it cannot); return what was done."""
        if fault not in FAULTS and fault not in DEVICE_FAULTS:  # name every fault the kernel takes, devices' too
            raise BadArguments(f"unknown fault {fault!r}; known: {', '.join([*FAULTS, *DEVICE_FAULTS])}")
        try:
            what = self._inject_device(fault, args) if fault in DEVICE_FAULTS else self.injection.inject(fault, args)
        except FaultArgumentError as exc:
            raise BadArguments(str(exc)) from None
        except hal.HalUnsupported as exc:
            raise ServiceUnavailable(str(exc)) from None
        self.emit(EventId.HAL_FAULT_INJECTED, Severity.LOW, f"injected: {what}", fault=fault, args=args)
        self.update()
        return what

    def _inject_device(self, fault: str, args: dict[str, Any]) -> str:
        """A payload-device fault, written where the simulated devices of this run read it (docs/devices.md)."""
        if not self.injects_faults or self.runtime_dir is None:
            raise hal.HalUnsupported(
                f"device faults need simulated devices; this target's backend is {self.board.identity.backend!r}"
            )
        from hal.devices.sim import SimBench, inject  # the device layer loads only when a device fault comes

        return inject(SimBench(self.runtime_dir, os.getpid()), fault, args)

    # ---- effects on processes ----------------------------------------------------------------
    def update(self) -> list[dict[str, Any]]:
        """Raise new timeline entries as events, make core states real for their processes; return the entries.

        The entries are also queued for ``take_timeline`` (telemetry), whoever called this first.
        """
        new = self._new_entries()
        for ev in new:
            sev = HAL_EVENT_SEVERITY.get(ev.kind)
            if ev.kind == "edac_scrub":  # the scrub that found upsets: LOW if it corrected all, HIGH if not
                sev = Severity.HIGH if ev.detail.get("uncorrected") else Severity.LOW
            if sev is not None:
                self.emit(
                    EventId.HAL_EVENT,
                    sev,
                    _message(ev),
                    kind=ev.kind,
                    sim_t_s=round(ev.t_s, 3),
                    **{k: v for k, v in ev.detail.items() if k not in ("kind",)},
                )
        for ev in new:
            if ev.kind == "watchdog_reset" and self.on_watchdog_reset is not None:
                self.on_watchdog_reset()
        for core in self.states:
            self.states[core] = self.injection.core_state(core)
        self.enforce()
        entries = [e.to_dict() for e in new]
        self._unpublished.extend(entries)
        return entries

    def _new_entries(self) -> list[hal.TimelineEvent]:
        """Entries not seen before, by board time and by count at the newest time (several may share one)."""
        already = self._taken_at_from  # the first entries at exactly _events_from were taken before
        new: list[hal.TimelineEvent] = []
        for ev in self.injection.events_since(self._events_from):
            if ev.t_s == self._events_from and already > 0:
                already -= 1
            else:
                new.append(ev)
        for ev in new:
            if ev.t_s > self._events_from:
                self._events_from, self._taken_at_from = ev.t_s, 0
            if ev.t_s == self._events_from:
                self._taken_at_from += 1
        return new

    def take_timeline(self) -> list[dict[str, Any]]:
        """Timeline entries not yet handed out for telemetry, oldest first: each is handed out once."""
        out = list(self._unpublished)
        self._unpublished.clear()
        return out

    def core_state(self, core: int) -> str:
        """The board's own state of a core ('ok', 'hung', 'failed', 'offline'); 'ok' on boards without one."""
        return str(self.injection.core_state(core))

    def hw_state(self, core: int, reading: hal.BoardReading | None) -> str:
        """A core's hardware state: the board's own where it keeps one, else offline/ok from the reading."""
        if self.injects_faults:
            return self.core_state(core)
        r = reading.core(core) if reading is not None else None
        return "offline" if r is not None and not r.online else "ok"

    def feed_load(self, loads: Callable[[int], float]) -> None:
        """On a board whose core loads are its services' CPU, set each core's load from ``loads(core)``."""
        if self.injection.load_from_services:
            for core in self.states:
                self.injection.set_load(core, min(100.0, loads(core)))

    def hung_cores(self) -> set[int]:
        """Cores that stopped executing (a SEFI): work placed only there is frozen."""
        return {c for c, s in self.states.items() if s == "hung"}

    def services_on(self, core: int) -> list[str]:
        """Names of running services placed on a core."""
        return [r.name for r in self.records.values() if r.pid is not None and core in r.cores]

    def enforce(self) -> None:
        """Freeze every process whose cores all hung; thaw those whose core came back or that moved.

        A failed or offline core is different: Linux moves its tasks elsewhere, so they keep running.
        """
        bad = self.hung_cores()
        for rec in self.records.values():
            pid = rec.pid
            if pid is None or not rec.cores:
                continue
            stuck = all(c in bad for c in rec.cores)
            if stuck and pid not in self.frozen:
                self._signal(pid, signal.SIGSTOP)
                self.frozen[pid] = rec.cores[0]
                log.warning("kernel.process_frozen_by_core", service=rec.name, pid=pid, cores=rec.cores)
            elif not stuck and pid in self.frozen:
                self._signal(pid, signal.SIGCONT)
                del self.frozen[pid]
        live = {r.pid for r in self.records.values() if r.pid is not None}
        for pid in list(self.frozen):
            if pid not in live:
                del self.frozen[pid]

    @staticmethod
    def _signal(pid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
