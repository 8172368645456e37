"""Records a run for `flightos report`: meta.json, events.jsonl and telemetry.jsonl under runs/<id>/.

The format is the contract with flightos.report (docs/report.md). Writes are line-buffered JSON, a
run is capped in size, and only the newest runs are kept, so a long mission cannot fill the disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import IO, Any

import structlog

log = structlog.get_logger("flightos.kernel")

SEVERITY_NAMES = {1: "INFO", 2: "LOW", 3: "MEDIUM", 4: "HIGH"}


class RunRecorder:
    """Appends the events and health telemetry of one kernel run to its own directory."""

    def __init__(self, runs_dir: Path, meta: dict[str, Any], keep: int = 20, max_bytes: int = 64 << 20) -> None:
        self.runs_dir = runs_dir
        self.run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{os.getpid()}"
        self.dir = runs_dir / self.run_id
        self.meta = {"run_id": self.run_id, **meta, "started_utc": time.time(), "ended_utc": None}
        self.keep = keep
        self.max_bytes = max_bytes
        self.written = 0
        self.truncated = False
        self._events: IO[str] | None = None
        self._telemetry: IO[str] | None = None

    def start(self) -> None:
        """Create the run directory and prune the oldest runs beyond ``keep``."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._write_meta()
            self._events = open(self.dir / "events.jsonl", "a", buffering=1, encoding="utf-8")  # noqa: SIM115
            self._telemetry = open(self.dir / "telemetry.jsonl", "a", buffering=1, encoding="utf-8")  # noqa: SIM115
            runs = sorted(p for p in self.runs_dir.iterdir() if p.is_dir())
            for old in runs[: max(0, len(runs) - self.keep)]:
                shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:
            log.warning("kernel.run_record_unavailable", dir=str(self.dir), error=str(exc))
            self.close()

    def event(self, topic: str, source: str, utc_ns: int, payload: Any) -> None:
        """Record one event from the bus (kernel or service)."""
        if not isinstance(payload, dict):
            return
        sev = payload.get("severity")
        self._line(self._events, {
            "t": utc_ns / 1e9, "topic": topic, "source": source, "id": payload.get("id"),
            "name": payload.get("name"),
            "severity": SEVERITY_NAMES.get(sev, str(sev)) if isinstance(sev, int) else str(sev),
            "message": payload.get("message", ""), "data": payload.get("data", {})})

    def telemetry(self, health: dict[str, Any], services: list[dict[str, Any]]) -> None:
        """Record one health sample: mode, junction, power, cores and the service table."""
        energy = health.get("energy_mj", {})
        throttles = health.get("throttles", {})
        self._line(self._telemetry, {
            "t": time.time(), "mode": health.get("mode"), "junction_c": health.get("junction_c"),
            "trip_c": health.get("trip_c"), "power_w": health.get("power_w"), "budget_w": health.get("budget_w"),
            "cores": [{"id": c["id"], "state": c["state"], "temp_c": health.get("junction_c"),
                       "load_pct": c.get("load_pct"), "services": c.get("services", [])}
                      for c in health.get("cores", [])],
            "services": [{"name": s["name"], "state": s["state"], "cores": s["cores"],
                          "throttle": throttles.get(s["name"], 0), "restarts": s["restarts"],
                          "energy_mj": energy.get(s["name"]), "cpu_percent": s["cpu_percent"]}
                         for s in services]})

    def _line(self, f: IO[str] | None, obj: dict[str, Any]) -> None:
        if f is None or self.truncated:
            return
        line = json.dumps(obj, default=str, separators=(",", ":")) + "\n"
        self.written += len(line)
        if self.written > self.max_bytes:
            self.truncated = True
            log.warning("kernel.run_record_full", dir=str(self.dir), max_bytes=self.max_bytes)
            return
        try:
            f.write(line)
        except OSError as exc:
            log.warning("kernel.run_record_write_failed", error=str(exc))
            self.truncated = True

    def _write_meta(self) -> None:
        tmp = self.dir / "meta.json.tmp"
        tmp.write_text(json.dumps(self.meta, indent=1, default=str))
        os.replace(tmp, self.dir / "meta.json")

    def close(self) -> None:
        """Close the files and stamp the end time."""
        for f in (self._events, self._telemetry):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
        self._events = self._telemetry = None
        if self.dir.is_dir():
            self.meta["ended_utc"] = time.time()
            with contextlib.suppress(OSError):
                self._write_meta()
