"""HAL benchmarks: cost of one full read() per backend on recorded trees, and simulator speed."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import hal


def _per_call_us(fn: Callable[[], object], min_time_s: float = 0.3) -> float:
    """Median-free simple timing: repeat until min_time_s has passed, return µs per call."""
    fn()  # warm-up (and the first load sample)
    calls = 0
    start = time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time_s:
            return elapsed / calls * 1e6


def run() -> list[tuple[str, float, str]]:
    """Measure and return (name, value, unit) rows."""
    from hal.testing import trees as t

    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        cases = [
            ("linux", t.build_generic, {}),
            ("rpi4", t.build_pi4, t.PI_OUTPUTS_PI4),
            ("rpi5", t.build_pi5, t.PI_OUTPUTS_PI5),
            ("orin_nano", t.build_orin_nano, t.ORIN_OUTPUTS),
            ("nano", t.build_nano, t.NANO_OUTPUTS),
        ]
        backend = {"linux": "linux", "rpi4": "rpi", "rpi5": "rpi"}
        for name, build, outputs in cases:
            root = build(base / name)
            board = hal.open_board(
                {"backend": backend.get(name, "jetson"), "root": str(root)},
                runner=t.RecordedRunner(outputs),
            )
            rows.append((f"hal.read.{name}", _per_call_us(board.read), "us"))
    sim = hal.open_board({"backend": "sim", "time_scale": 0, "load_source": "sim"})
    rows.append(("hal.read.sim", _per_call_us(sim.read), "us"))
    step = float(getattr(sim, "settings", {}).get("step_s", 10.0))
    start = time.perf_counter()
    sim.step(7 * 86400)  # type: ignore[attr-defined]
    wall = time.perf_counter() - start
    rows.append(("hal.sim.speed", 7 * 86400 / wall, f"sim s per wall s (step {step:g} s)"))
    sim.close()
    return rows


if __name__ == "__main__":
    for name, value, unit in run():
        print(f"{name:24s} {value:14.1f} {unit}")
