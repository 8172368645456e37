"""Fault injection on the simulated board from command arguments (``flightos inject <fault> key=value``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hal.injection import FAULTS, FaultArgumentError

if TYPE_CHECKING:
    from hal.backends.sim.board import SimBoard

MAX_SEU_BURST = 10_000
"""Upsets one `inject seu` may ask for: enough for any drill, small enough not to stall the caller."""


def _opt_bool(v: Any) -> bool | None:
    if v is None or v in ("none", "auto"):
        return None
    if isinstance(v, bool):
        return v
    raise FaultArgumentError(f"on: expected true, false or none, got {v!r}")


def _int(args: Mapping[str, Any], key: str, default: int | None = None) -> int | None:
    v = args.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise FaultArgumentError(f"{key}: expected an integer, got {v!r}")
    return v


def _core(args: Mapping[str, Any], fault: str) -> int:
    """The ``core=N`` a fault cannot do without."""
    core = _int(args, "core")
    if core is None:
        raise FaultArgumentError(f"{fault} needs core=N")
    return core


def _bits(args: Mapping[str, Any]) -> list[int] | None:
    """``bits=[0, 1, 2]``: exactly these bit numbers of one word (a burst), instead of ``count`` random ones."""
    v = args.get("bits")
    if v is None:
        return None
    if "count" in args:
        raise FaultArgumentError("bits: give either bits=[...] or count=N, not both")
    if not isinstance(v, list) or not v or any(isinstance(x, bool) or not isinstance(x, int) for x in v):
        raise FaultArgumentError(f"bits: expected a non-empty list of bit numbers, e.g. bits=[0,1,2,3], got {v!r}")
    return list(v)


def _next_scrub(b: SimBoard) -> str:
    """When the upsets will show: EDAC counts change only when the scrubber reads the word."""
    scale = float(b.settings["time_scale"])
    wall = f", {b.next_scrub_in_s / scale:.0f} s of wall time" if scale > 0 else ""
    return (
        f"; EDAC ({b.edac.code.name}) sees them at the next scrub, in {b.next_scrub_in_s:.0f} simulated s{wall} "
        f"(hal.scrub_period_s = {b.settings['scrub_period_s']:g})"
    )


def _num(args: Mapping[str, Any], key: str) -> float | None:
    v = args.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise FaultArgumentError(f"{key}: expected a finite number, got {v!r}")
    return float(v)


def inject(b: SimBoard, fault: str, args: Mapping[str, Any]) -> str:
    """Inject one fault into the simulated board; return what was done (FaultArgumentError if bad)."""
    if fault == "seu":
        bits = _bits(args)
        count = len(bits) if bits is not None else _int(args, "count", 1)
        if count is None or not 1 <= count <= MAX_SEU_BURST:  # count=0 is refused, not read as the default
            raise FaultArgumentError(f"count: expected 1..{MAX_SEU_BURST} upsets in one injection, got {count}")
        address = _int(args, "address")
        b.inject_seu(count=count, address=address, bits=bits)
        where = f" in word {address}" if address is not None else ""
        return f"{count} bit flip(s){where}{_next_scrub(b)}"
    if fault == "sefi":
        b.inject_sefi(_int(args, "core"))
        return "SEFI" + (f" on core {args['core']}" if "core" in args else " on a random core")
    if fault == "reset":
        core = _core(args, fault)
        b.reset_core(core)
        return f"core {core} reset"
    if fault == "sel":
        given = _num(args, "delta_ma")
        delta = 200.0 if given is None else given
        if delta <= 0:  # delta_ma=0 was read as the default 200 mA
            raise FaultArgumentError(f"delta_ma: expected a current step > 0 mA, got {given:g}")
        b.inject_sel(delta_ma=delta)
        return f"latch-up of {delta:g} mA"
    if fault == "power-cycle":
        b.power_cycle(reason=str(args.get("reason", "commanded")))  # a scenario names itself
        return "power cycle"
    if fault == "core-fail":
        core = _core(args, fault)
        b.fail_core(core)
        return f"core {core} failed permanently"
    if fault == "thermal-step":
        dw, dc = _num(args, "delta_w"), _num(args, "delta_c")
        if dw is None and dc is None:
            raise FaultArgumentError("thermal-step needs delta_w=W and/or delta_c=C")
        b.thermal_step(delta_w=dw, delta_c=dc)
        return f"thermal step (delta_w={dw}, delta_c={dc})"
    if fault in ("saa", "sun"):
        on = _opt_bool(args.get("on"))
        (b.set_saa if fault == "saa" else b.set_sun)(on)
        return f"{fault} forced {'on' if on else 'off' if on is False else 'back to the orbit'}"
    raise FaultArgumentError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
