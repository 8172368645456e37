"""The ``sar.detect`` compute-job processor: a scene from the on-board store in, ship alerts out.

Inputs (``ctx.inputs``): the scene, a 2-D float ``.npy`` (memmapped, never loaded whole); then,
optionally, a ``truth.json`` written by ``scene.write_scene`` (its ships score the result, its
geotransform places it) and a land mask ``.npy`` (True = land). Nothing else is read.

Parameters (``ctx.params``, all optional): ``pfa``, ``guard``, ``train``, ``method`` ("k" |
"ca" | "os"), ``looks``, ``min_pixels``, ``tile``, ``memory_budget_bytes``, ``pixel_m``, ``geo`` (a dict
of ``GeoTransform`` fields), ``scene_id``, ``tolerance_px`` (scoring), ``throttle_scale`` and any
other field of ``detect.Settings`` (``censor``, ``censor_pfa``, ``gap``, ``grow_frac``, ...).

Outputs in ``ctx.out_dir``: ``alerts.bin`` (the downlink product, see ``detect.alert``) and
``detections.json``. After every tile it checkpoints ``{"tiles_done", "tiles", "detections"}``.
Throttle level n (from the thermal governor) makes it rest n times the last tile's duration
after each tile (times ``throttle_scale``), dividing its tile rate by 1 + n.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from flightos.sdk.jobs import JobContext
from services.sar.detect import Settings, ShipDetection, TileResult, alert, detect_iter, score
from services.sar.figures import clutter_figures
from services.sar.scene import FORMAT, GeoTransform, Truth, load_truth

_SETTINGS = {f.name for f in fields(Settings)}
_OWN = {"tile", "memory_budget_bytes", "pixel_m", "geo", "scene_id", "tolerance_px", "throttle_scale"}


def _inputs(ctx: JobContext) -> tuple[Path, Truth | None, GeoTransform | None, NDArray[np.bool_] | None]:
    """The scene path, and the truth, geotransform and land mask from the other inputs (if any)."""
    if not ctx.inputs:
        raise ValueError("sar.detect needs a scene (.npy) as its first input")
    scene_path = Path(ctx.inputs[0])
    truth: Truth | None = None
    geo: GeoTransform | None = None
    land = None
    for extra in ctx.inputs[1:]:
        p = Path(extra)
        if p.suffix == ".json":
            head = json.loads(p.read_text())
            if head.get("format") != FORMAT:
                raise ValueError(f"{p.name}: not a scene truth file ({FORMAT})")
            truth, geo, _ = load_truth(p, land=False)  # the land mask only if it is an input itself
        elif p.suffix == ".npy":
            land = np.load(p, mmap_mode="r")
        else:
            raise ValueError(f"{p.name}: unexpected input (a truth .json or a land mask .npy)")
    return scene_path, truth, geo, land


def detect_processor(ctx: JobContext) -> dict[str, Any]:
    """Detect ships in ``ctx.inputs[0]``; write ``alerts.bin`` and ``detections.json``; return the summary."""
    params = dict(ctx.params)
    unknown = set(params) - _SETTINGS - _OWN
    if unknown:
        raise ValueError(f"unknown sar.detect parameter(s): {', '.join(sorted(unknown))}")
    scene_path, truth, geo, land = _inputs(ctx)
    image = np.load(scene_path, mmap_mode="r")
    if image.ndim != 2 or image.dtype.kind != "f":
        raise ValueError(f"{scene_path.name}: expected a 2-D float intensity image, got {image.dtype} {image.shape}")
    if params.get("geo") is not None:
        geo = GeoTransform.from_dict(params["geo"])
    default_id = scene_path.parent.name if scene_path.stem == "scene" else scene_path.stem
    scene_id = str(params.get("scene_id") or default_id)
    settings = {k: v for k, v in params.items() if k in _SETTINGS}
    scale = float(params.get("throttle_scale", 1.0))
    ctx.out_dir.mkdir(parents=True, exist_ok=True)

    found: list[ShipDetection] = []
    done: list[TileResult] = []
    t0, cpu0 = time.perf_counter(), time.process_time()
    waited = 0.0
    tiles = 0
    levels: list[int] = []
    for t in detect_iter(
        image,
        tile=params.get("tile", 1024),
        land_mask=land,
        geo=geo,
        memory_budget_bytes=params.get("memory_budget_bytes"),
        pixel_m=params.get("pixel_m"),
        **settings,
    ):
        found.extend(t.detections)
        done.append(t)
        tiles = t.total
        ctx.checkpoint({"tiles_done": t.index + 1, "tiles": t.total, "detections": len(found)})
        level = int(ctx.throttle())
        levels.append(level)
        if level > 0 and t.index + 1 < t.total:
            rest = level * t.seconds * scale
            time.sleep(rest)
            waited += rest
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    found.sort(key=lambda d: (d.row, d.col))

    blob = alert(found, scene_id, geo)
    (ctx.out_dir / "alerts.bin").write_bytes(blob)
    raw = int(image.nbytes)
    summary: dict[str, Any] = {
        "scene_id": scene_id,
        "ships": len(found),
        "raw_bytes": raw,
        "alert_bytes": len(blob),
        "ratio": raw / len(blob),
        "seconds": round(seconds, 4),
        "cpu_seconds": round(cpu, 4),
        "tiles": tiles,
        "megapixels_per_s": round(image.size / 1e6 / max(seconds - waited, 1e-9), 3),
        "throttle_wait_s": round(waited, 4),
        "throttle_max": max(levels, default=0),
        "method": Settings(**settings).method,
        **clutter_figures(done, Settings(**settings).p),
    }
    if truth is not None:
        p, r, matches = score(found, truth, float(params.get("tolerance_px", 5.0)))
        summary.update(precision=round(p, 4), recall=round(r, 4), matched=len(matches), truth_ships=len(truth.ships))
    detections = [
        {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.to_dict().items()}
        for d in found
    ]
    tmp = ctx.out_dir / "detections.json.tmp"
    tmp.write_text(json.dumps({"summary": summary, "detections": detections}, indent=1))
    tmp.replace(ctx.out_dir / "detections.json")
    return summary
