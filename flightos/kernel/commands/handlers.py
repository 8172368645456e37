"""The kernel's commands, one typed handler each; the first docstring line is what ``describe`` shows.

Each takes the narrow ``KernelPort`` first (left out of the signature, as ``self`` is for a service) and
its arguments as keywords, already checked against the type hints by ``table.dispatch``.
"""

from __future__ import annotations

import asyncio
import os
import signal as signals
import time
from typing import Any

from flightos.bus.errors import BadArguments, ServiceUnavailable, UnknownService
from flightos.kernel.commands import table
from flightos.kernel.commands.port import KernelPort
from flightos.kernel.commands.table import kernel_command
from flightos.kernel.health.modes import Mode
from flightos.kernel.records import ServiceRecord, State


@kernel_command
async def ping(k: KernelPort) -> dict[str, Any]:
    """answer at once (liveness of the kernel)"""
    return {"pong": True, "pid": os.getpid(), "max_frame_bytes": k.router.max_frame_bytes}


@kernel_command
async def status(k: KernelPort) -> dict[str, Any]:
    """the service table, the cores and the bus counters"""
    return k.status()


@kernel_command
async def describe(k: KernelPort) -> dict[str, Any]:
    """the kernel's commands"""
    return table.describe()


def _record(k: KernelPort, service: str) -> ServiceRecord:
    rec = k.records.get(service)
    if rec is None:
        raise UnknownService(f"no service {service!r} in this runtime", available=sorted(k.records))
    return rec


async def _lifecycle(k: KernelPort, command: str, service: str) -> dict[str, Any]:
    """restart, stop or start a local service (a remote one is commanded on its own board)."""
    rec = _record(k, service)
    if rec.state == State.REMOTE:
        raise ServiceUnavailable(f"service {rec.name!r} {rec.reason}; command that board's kernel (kernel@<board>)")
    if command in ("restart", "stop") and rec.pid is not None:
        await k.supervisor.stop_service(rec, k.target.runtime.shutdown_grace_s)
    if command in ("restart", "start"):
        if rec.pid is not None:
            return {"service": rec.name, "state": rec.state.value, "note": "already running"}
        if rec.restart_handle is not None:
            rec.restart_handle.cancel()
        rec.tracker.history.clear()
        rec.tracker.consecutive = 0
        await k.supervisor.spawn(rec)
    return {"service": rec.name, "state": rec.state.value, "pid": rec.pid}


@kernel_command
async def restart(k: KernelPort, service: str) -> dict[str, Any]:
    """stop a service gracefully and start it again (service=NAME)"""
    return await _lifecycle(k, "restart", service)


@kernel_command
async def stop(k: KernelPort, service: str) -> dict[str, Any]:
    """stop a service gracefully; it stays stopped (service=NAME)"""
    return await _lifecycle(k, "stop", service)


@kernel_command
async def start(k: KernelPort, service: str) -> dict[str, Any]:
    """start a stopped, disabled or FAILED service (service=NAME)"""
    return await _lifecycle(k, "start", service)


@kernel_command
async def kill(k: KernelPort, service: str, signal: str = "KILL") -> dict[str, Any]:
    """send a signal to a service process, for fault drills (service=NAME signal=KILL|STOP|...)"""
    rec = _record(k, service)
    if rec.pid is None:
        raise BadArguments(f"service {rec.name!r} has no process")
    try:
        signum = signals.Signals[f"SIG{signal.upper().removeprefix('SIG')}"]
    except KeyError:
        raise BadArguments(f"unknown signal {signal!r}") from None
    os.kill(rec.pid, signum)
    return {"service": rec.name, "pid": rec.pid, "signal": signum.name}


@kernel_command
async def inject(
    k: KernelPort,
    fault: str,
    count: Any = None,
    address: Any = None,
    core: Any = None,
    delta_ma: Any = None,
    delta_w: Any = None,
    delta_c: Any = None,
    on: Any = None,
    bits: Any = None,
    device: Any = None,
    rate: Any = None,
    value: Any = None,
) -> dict[str, Any]:
    """inject a fault into a simulated board (fault=seu|sefi|reset|sel|power-cycle|core-fail|thermal-step|saa|sun) or device (fault=i2c-nack|... device=NAME), see `faults`

    The fault's own arguments are checked by the fault, which names the one it refuses (``faults`` lists them).
    """  # noqa: E501 - the first line is the one-line doc ``describe`` and the mission database show
    import hal  # the HAL's error type only; imported here so the table stays light for ground tools

    given = {
        "count": count,
        "address": address,
        "core": core,
        "delta_ma": delta_ma,
        "delta_w": delta_w,
        "delta_c": delta_c,
        "on": on,
        "bits": bits,
        "device": device,
        "rate": rate,
        "value": value,
    }
    try:
        what = k.effects.inject(fault, {n: v for n, v in given.items() if v is not None})
    except hal.HalError as exc:
        raise BadArguments(f"{fault}: {exc}") from None
    return {"injected": what, "cores": dict(k.effects.states)}


@kernel_command
async def faults(k: KernelPort) -> dict[str, str]:
    """the faults `inject` knows, with their arguments (the board's, then the payload devices')"""
    from flightos.kernel.health.faults import DEVICE_FAULTS, FAULTS  # imported here so the table stays light

    return {**FAULTS, **DEVICE_FAULTS}


@kernel_command
async def core(k: KernelPort, core: int, action: str) -> dict[str, Any]:
    """hold a core out of service or return it (core=N action=disable|enable)"""
    if core not in k.monitor.health:
        raise BadArguments(f"core: expected one of {sorted(k.monitor.health)}, got {core!r}")
    if action not in ("enable", "disable"):
        raise BadArguments(f"action: expected 'enable' or 'disable', got {action!r}")
    return {"core": core, "state": k.monitor.force_core(core, action == "enable")}


@kernel_command
async def block(k: KernelPort, seconds: float) -> dict[str, Any]:
    """drill: stall the kernel's loop for seconds=S (simulated boards only; tests the watchdog)"""
    if not k.effects.injects_faults:
        raise ServiceUnavailable("the kernel block drill runs only on simulated boards")
    if not 0 < seconds <= 60:
        raise BadArguments(f"seconds: expected a number in (0, 60], got {seconds!r}")
    time.sleep(seconds)  # noqa: ASYNC251 - stalling the loop is the drill
    return {"blocked_s": seconds}


@kernel_command
async def mode(k: KernelPort, mode: str) -> dict[str, Any]:
    """hold a mode or return to automatic (mode=safe|degraded|nominal|auto)"""
    wanted = mode.upper()
    if wanted == "AUTO":
        k.monitor.force_mode(None)
    elif wanted in Mode.__members__:
        k.monitor.force_mode(Mode[wanted])
    else:
        raise BadArguments(f"mode: expected safe, degraded, nominal or auto, got {mode!r}")
    await k.monitor.tick()
    return {"mode": k.monitor.mode.value, "forced": wanted != "AUTO"}


@kernel_command
async def shutdown(k: KernelPort) -> dict[str, Any]:
    """stop every service and the kernel"""
    asyncio.get_running_loop().call_soon(k.request_stop)
    return {"stopping": True}


@kernel_command
async def link(k: KernelPort) -> dict[str, Any]:
    """the links to other boards: peers, their services, counters and refusals"""
    if k.link is None:
        raise ServiceUnavailable(f"target {k.target.name!r} has no [link]: this kernel is not linked")
    return k.link.status()
