"""The ``sar`` service: turns radar scenes into ship alerts on board, and downlinks the alerts, not the scene.

Each acquisition (a synthetic scene here, with its ground truth) is written to the service's store,
processed tile by tile in a worker thread (the event loop keeps heartbeating), and reduced to an
alert of a few bytes per ship that goes to the ground at high priority. Per scene it publishes the
raw and downlinked sizes, processing time, energy and detection quality.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from flightos import Message, Parameter, Service, Severity, command, periodic, subscribe
from services.sar.events import SarEvent
from services.sar.figures import clutter_figures, energy
from services.sar.options import SarOptions

POWER_WAIT_S = 3.0  # how long a scene waits for the first board power reading (health comes at ~1 Hz)


class Sar(Service):
    """Ship detection in synthetic SAR scenes; elastic, and it honours the thermal throttle."""

    name = "sar"
    options_schema = SarOptions
    scene_px = Parameter(2048, min=256, max=16384, doc="scene side in pixels (float32 intensity)")
    ships = Parameter(12, min=0, max=500, doc="ships placed in each synthetic scene")
    pfa = Parameter(
        0.0,
        min=0.0,
        max=1e-2,
        doc="CFAR false-alarm probability per pixel; 0 = the method's default (1e-4 for k, 1e-6 for ca and os)",
    )
    method = Parameter("k", choices=["k", "ca", "os"], doc="K-distribution CFAR, cell-averaging or order-statistic")
    interval_s = Parameter(60.0, min=1.0, max=86400.0, doc="seconds between acquisitions (0 = on command only)")
    memory_mb = Parameter(64, min=8, max=4096, doc="memory budget of the detector")
    keep_raw = Parameter(False, doc="keep scenes after processing (otherwise dropped)")
    alert_priority = Parameter(6, min=0, max=7, doc="downlink priority of ship alerts")

    async def on_start(self) -> None:
        self.scenes = int(self.store.get("scenes", 0))
        self._energy_mj = 0.0
        self._power_w: list[float] = []  # board power readings (W) from the kernel's health telemetry
        self._power_seen = asyncio.Event()
        self._busy = False
        self._last = 0.0
        self._stopping = threading.Event()  # checked between tiles: a stop mid-scene stays within the grace

    async def on_stop(self) -> None:
        """Ask a scene in detection to end at its next tile (the worker thread would outlive the grace)."""
        self._stopping.set()

    @subscribe("tm.kernel.health")
    async def on_health(self, msg: Message) -> None:
        """Keep the board power and this service's energy counter from the kernel's power accounting."""
        payload = msg.payload if isinstance(msg.payload, dict) else {}
        energy = payload.get("energy_mj") or {}
        if isinstance(energy, dict) and isinstance(energy.get(self.name), (int, float)):
            self._energy_mj = float(energy[self.name])
        power = payload.get("power_w")
        if isinstance(power, (int, float)) and not isinstance(power, bool) and power >= 0:
            self._power_w = [*self._power_w[-59:], float(power)]
            self._power_seen.set()

    @periodic(hz=1)
    async def acquire(self) -> None:
        """Start an acquisition every ``interval_s`` (not while one is being processed)."""
        if self._busy or time.monotonic() - self._last < self.interval_s:
            return
        await self.process_scene()

    @command()
    async def process_scene(self, seed: int = -1) -> dict[str, Any]:
        """Acquire (synthesise) a scene now, detect ships, downlink the alert; return the scene's figures."""
        if self._busy:
            return {"busy": True}
        self._busy = True
        self._last = time.monotonic()
        try:
            return await self._process(seed if seed >= 0 else self.scenes + 1)
        finally:
            self._busy = False

    async def _process(self, seed: int) -> dict[str, Any]:
        from services.sar import detect as det
        from services.sar import scene as sc

        self.scenes += 1
        self.store.set("scenes", self.scenes)
        scene_id = f"S{self.scenes:06d}"
        where = self.data_dir / "scenes" / scene_id
        n = int(self.scene_px)
        t0 = time.monotonic()
        energy0 = self._energy_mj
        readings0 = len(self._power_w)
        scene = await asyncio.to_thread(sc.write_scene, where, (n, n), seed, n_ships=int(self.ships))
        raw_bytes = (where / "scene.npy").stat().st_size
        t1 = time.monotonic()
        self.log.info("sar.detecting", scene=scene_id, pixels=n * n)
        detections, stats = await asyncio.to_thread(self._detect, det, scene)
        t2 = time.monotonic()
        if not self._power_w:  # a scene done before the first health report: its power comes within a period
            with contextlib.suppress(asyncio.TimeoutError):  # not the builtin before Python 3.11
                await asyncio.wait_for(self._power_seen.wait(), POWER_WAIT_S)
        alert = det.alert(detections, scene_id, scene.geo)
        precision, recall, _ = det.score(detections, scene.truth)
        await self.downlink("ship-alert", alert, priority=int(self.alert_priority))
        if not self.keep_raw:
            shutil.rmtree(where, ignore_errors=True)
        figures = {
            "scene": scene_id,
            "pixels": n * n,
            "ships_true": len(scene.truth.ships),
            "ships_found": len(detections),
            "raw_bytes": raw_bytes,
            "downlinked_bytes": len(alert),
            "ratio": round(raw_bytes / max(1, len(alert)), 1),
            "acquire_s": round(t1 - t0, 3),
            "detect_s": round(t2 - t1, 3),
            "megapixels_per_s": round(n * n / 1e6 / max(1e-9, t2 - t1), 2),
            **energy(self._power_w, readings0, t2 - t0, self._energy_mj - energy0),
            **stats,
            "precision": round(precision, 3),
            "recall": round(recall, 3),
            "throttle": self.throttle,
            "kept_raw": bool(self.keep_raw),
        }
        await self.publish("scene", figures)
        if detections:
            await self.event(
                f"{len(detections)} ship(s) in {scene_id}",
                Severity.INFO,
                event_id=SarEvent.SHIPS_DETECTED,
                scene=scene_id,
                ships=len(detections),
            )
        return figures

    def _detect(self, det: Any, scene: Any) -> tuple[list[Any], dict[str, Any]]:
        """Tile by tile within the memory budget; under throttle, rest between tiles. Also the clutter figures."""
        out: list[Any] = []
        tiles: list[Any] = []
        settings = det.Settings(method=str(self.method), pfa=float(self.pfa) or None)
        for tile in det.detect_iter(
            scene.image,
            land_mask=scene.truth.land_mask,
            geo=scene.geo,
            memory_budget_bytes=int(self.memory_mb) << 20,
            pfa=settings.p,
            method=settings.method,
        ):
            out.extend(tile.detections)
            tiles.append(tile)
            if self._stopping.is_set():
                raise SceneStopped(f"stopped after {len(tiles)} tile(s)")
            level = self.throttle
            if level:
                self._stopping.wait(min(2.0, 0.05 * level))  # honour the thermal governor; a stop ends the rest
        return sorted(out, key=lambda d: (d.row, d.col)), clutter_figures(tiles, settings.p)

    @command()
    async def figures(self) -> dict[str, Any]:
        """Scenes processed so far and where they are kept."""
        kept = await asyncio.to_thread(_kept, self.data_dir / "scenes")
        return {"scenes": self.scenes, "kept": kept, "busy": self._busy}


class SceneStopped(Exception):
    """The service is stopping: the scene's detection ended between tiles."""


def _kept(scenes_dir: Path) -> list[str]:
    """Scene ids kept on board."""
    return sorted(p.name for p in scenes_dir.iterdir()) if scenes_dir.is_dir() else []
