"""``test.spin``: a processor for testing budgets. It burns CPU, checkpoints, honours the throttle.

Parameters: ``seconds`` of CPU to burn (default 1), ``sleep_s`` of idle wall time after that
(default 0), ``downlink_bytes`` to write into ``out/downlink/spin.bin`` (default 0), ``fail`` (raise
after spinning), ``slice_s`` between checkpoints (default 0.05), ``alloc_mb`` to allocate and hold
first (default 0). At throttle level L (0..3) it idles
L/3 of each slice. It writes ``out/spin.json`` and returns what it did.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from flightos import JobContext


def spin(ctx: JobContext) -> dict[str, Any]:
    """Burn ``seconds`` of CPU in slices, checkpointing after each one."""
    seconds = float(ctx.params.get("seconds", 1.0))
    sleep_s = float(ctx.params.get("sleep_s", 0.0))
    slice_s = float(ctx.params.get("slice_s", 0.05))
    held = bytearray(int(float(ctx.params.get("alloc_mb", 0)) * 2**20))
    for i in range(0, len(held), 4096):
        held[i] = 1  # touch every page so it is resident
    spun, iterations, max_throttle = 0.0, 0, 0
    digest = hashlib.sha256()
    while spun < seconds:
        level = ctx.throttle()
        max_throttle = max(max_throttle, level)
        busy = slice_s * max(0.25, 1.0 - level / 3.0)
        start = time.process_time()
        while time.process_time() - start < busy:
            digest.update(b"x" * 256)
            iterations += 1
        spun += time.process_time() - start
        if busy < slice_s:
            time.sleep(slice_s - busy)
        ctx.checkpoint({"spun_s": round(spun, 3), "iterations": iterations, "max_throttle": max_throttle})
    end = time.monotonic() + sleep_s
    while time.monotonic() < end:
        time.sleep(min(0.05, max(0.0, end - time.monotonic())))
        ctx.checkpoint({"slept_s": round(sleep_s - max(0.0, end - time.monotonic()), 3)})
    n = int(ctx.params.get("downlink_bytes", 0))
    if n > 0:
        (ctx.out_dir / "downlink").mkdir(exist_ok=True)
        (ctx.out_dir / "downlink" / "spin.bin").write_bytes(b"\xa5" * n)
    if ctx.params.get("fail"):
        raise RuntimeError(f"failing on request after {spun:.2f} s")
    summary = {
        "spun_s": round(spun, 3),
        "iterations": iterations,
        "max_throttle": max_throttle,
        "digest": digest.hexdigest()[:16],
        "inputs": [p.name for p in ctx.inputs],
        "held_mb": len(held) >> 20,
    }
    (ctx.out_dir / "spin.json").write_text(json.dumps(summary))
    return summary
