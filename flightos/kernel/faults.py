"""Simulated faults made real: injection commands, and hung or failed virtual cores freezing their processes.

On a sim target a SEFI really stops the services placed on that core (SIGSTOP), so the kernel's
own hang detection and placement must cope — the same path a real hung core takes.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
from collections.abc import Callable
from typing import Any

import structlog

from flightos.bus.errors import BadArguments, ServiceUnavailable
from flightos.kernel.events import EventId
from flightos.kernel.records import ServiceRecord
from flightos.sdk.severity import Severity

log = structlog.get_logger("flightos.kernel")

FAULTS = {
    "seu": "flip bits in memory: count=N [address=WORD]",
    "sefi": "hang a core until reset: core=N (random if omitted)",
    "reset": "reset a hung core: core=N",
    "sel": "latch-up current step until power cycle: delta_ma=MA (default 200)",
    "power-cycle": "cut and restore power: clears hangs, latch-ups and unscrubbed upsets",
    "core-fail": "a permanent core failure: core=N",
    "thermal-step": "extra heat: delta_w=W and/or an instant junction step delta_c=C",
    "saa": "force the South Atlantic Anomaly: on=true|false|none (none follows the orbit)",
    "sun": "force sun or eclipse: on=true|false|none",
}

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
"""Sim timeline entries raised as kernel events; SEUs and scrubs go to telemetry only, unless uncorrectable."""

Emit = Callable[..., None]
MAX_SEU_BURST = 10_000
"""Upsets one `inject seu` may ask for: enough for any drill, small enough not to stall the kernel."""


def _opt_bool(v: Any) -> bool | None:
    if v is None or v in ("none", "auto"):
        return None
    if isinstance(v, bool):
        return v
    raise BadArguments(f"on: expected true, false or none, got {v!r}")


def _int(args: dict[str, Any], key: str, default: int | None = None) -> int | None:
    v = args.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise BadArguments(f"{key}: expected an integer, got {v!r}")
    return v


def _num(args: dict[str, Any], key: str) -> float | None:
    v = args.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise BadArguments(f"{key}: expected a finite number, got {v!r}")
    return float(v)


class SimEffects:
    """Bridges the simulated board and the real service processes placed on its cores."""

    def __init__(self, board: Any, records: dict[str, ServiceRecord], emit: Emit) -> None:
        self.board = board
        self.records = records
        self.emit = emit
        self.is_sim = callable(getattr(board, "core_state", None)) and callable(
            getattr(board, "inject_sefi", None))
        self.states: dict[int, str] = {c: "ok" for c in board.core_ids()}
        self.frozen: dict[int, int] = {}  # pid -> core it was frozen for
        self._events_from = 0.0
        self.on_watchdog_reset: Callable[[], None] | None = None

    # ---- injection ---------------------------------------------------------------------------
    def inject(self, fault: str, args: dict[str, Any]) -> str:
        """Inject one fault into the simulated board; return what was done."""
        if not self.is_sim:
            raise ServiceUnavailable(
                f"fault injection needs a simulated board; this target's backend is "
                f"{self.board.identity.backend!r} (use kill/stop drills on real boards)")
        b = self.board
        if fault == "seu":
            count = _int(args, "count", 1) or 1
            if not 1 <= count <= MAX_SEU_BURST:
                raise BadArguments(f"count: expected 1..{MAX_SEU_BURST} upsets in one injection, got {count}")
            b.inject_seu(count=count, address=_int(args, "address"))
            what = f"{count} bit flip(s)"
        elif fault == "sefi":
            b.inject_sefi(_int(args, "core"))
            what = "SEFI" + (f" on core {args['core']}" if "core" in args else " on a random core")
        elif fault == "reset":
            core = _int(args, "core")
            if core is None:
                raise BadArguments("reset needs core=N")
            b.reset_core(core)
            what = f"core {core} reset"
        elif fault == "sel":
            delta = _num(args, "delta_ma") or 200.0
            b.inject_sel(delta_ma=delta)
            what = f"latch-up of {delta:g} mA"
        elif fault == "power-cycle":
            b.power_cycle(reason="commanded")
            what = "power cycle"
        elif fault == "core-fail":
            core = _int(args, "core")
            if core is None:
                raise BadArguments("core-fail needs core=N")
            b.fail_core(core)
            what = f"core {core} failed permanently"
        elif fault == "thermal-step":
            dw, dc = _num(args, "delta_w"), _num(args, "delta_c")
            if dw is None and dc is None:
                raise BadArguments("thermal-step needs delta_w=W and/or delta_c=C")
            b.thermal_step(delta_w=dw, delta_c=dc)
            what = f"thermal step (delta_w={dw}, delta_c={dc})"
        elif fault in ("saa", "sun"):
            on = _opt_bool(args.get("on"))
            (b.set_saa if fault == "saa" else b.set_sun)(on)
            what = f"{fault} forced {'on' if on else 'off' if on is False else 'back to the orbit'}"
        else:
            raise BadArguments(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        self.emit(EventId.HAL_FAULT_INJECTED, Severity.LOW, f"injected: {what}", fault=fault, args=args)
        self.update()
        return what

    # ---- effects on processes ----------------------------------------------------------------
    def update(self) -> list[dict[str, Any]]:
        """Raise new sim timeline events, make core states real for their processes; return the new entries."""
        if not self.is_sim:
            return []
        new = self.board.events_since(self._events_from)
        for ev in new:
            self._events_from = max(self._events_from, ev.t_s + 1e-9)
            sev = HAL_EVENT_SEVERITY.get(ev.kind)
            if ev.kind == "edac_scrub" and ev.detail.get("uncorrected"):
                sev = Severity.HIGH
            if sev is not None:
                self.emit(EventId.HAL_EVENT, sev, f"board: {ev.kind}", kind=ev.kind, sim_t_s=round(ev.t_s, 3),
                          **{k: v for k, v in ev.detail.items() if k not in ("kind",)})
        for ev in new:
            if ev.kind == "watchdog_reset" and self.on_watchdog_reset is not None:
                self.on_watchdog_reset()
        for core in self.states:
            self.states[core] = self.board.core_state(core)
        self.enforce()
        return [e.to_dict() for e in new]

    def core_state(self, core: int) -> str:
        """The simulated core's own state ('ok', 'hung', 'failed', 'offline'); 'ok' on real boards."""
        return str(self.board.core_state(core)) if self.is_sim else "ok"

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
