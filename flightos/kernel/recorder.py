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
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import structlog

log = structlog.get_logger("flightos.kernel")

SEVERITY_NAMES = {1: "INFO", 2: "LOW", 3: "MEDIUM", 4: "HIGH"}
REPORT_S = 10.0
"""Lost lines are reported at most this often, as one event with a count."""
RETRY_S = 5.0
"""After a failed write, the record tries the disk again this much later (and counts what it drops meanwhile)."""


class RunRecorder:
    """Appends the events and health telemetry of one kernel run to its own directory."""

    def __init__(
        self,
        runs_dir: Path,
        meta: dict[str, Any],
        keep: int = 20,
        max_bytes: int = 64 << 20,
        on_drop: Callable[[int, int, str], None] | None = None,
    ) -> None:
        self.runs_dir = runs_dir
        self.run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{os.getpid()}"
        self.dir = runs_dir / self.run_id
        self.meta = {"run_id": self.run_id, **meta, "started_utc": time.time(), "ended_utc": None}
        self.keep = keep
        self.max_bytes = max_bytes
        self.written = 0
        self.truncated = False
        self.dropped = 0
        """Lines lost to the size cap or a failed write (a full disk), since the run began."""
        self.on_drop = on_drop
        """Told (lost since the last report, lost in all, why) at most once per ``REPORT_S``."""
        self._unreported = 0
        self._last_report = float("-inf")
        self._retry_at = 0.0
        self._failure = ""
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
        self._line(
            self._events,
            {
                "t": utc_ns / 1e9,
                "topic": topic,
                "source": source,
                "id": payload.get("id"),
                "name": payload.get("name"),
                "severity": SEVERITY_NAMES.get(sev, str(sev)) if isinstance(sev, int) else str(sev),
                "message": payload.get("message", ""),
                "data": payload.get("data", {}),
            },
        )

    def telemetry(self, health: dict[str, Any], services: list[dict[str, Any]]) -> None:
        """Record one health sample: mode, junction, power, cores and the service table."""
        energy = health.get("energy_mj", {})
        throttles = health.get("throttles", {})
        self._line(
            self._telemetry,
            {
                "t": time.time(),
                "mode": health.get("mode"),
                "junction_c": health.get("junction_c"),
                "trip_c": health.get("trip_c"),
                "power_w": health.get("power_w"),
                "budget_w": health.get("budget_w"),
                "cores": [
                    {
                        "id": c["id"],
                        "state": c["state"],
                        "temp_c": health.get("junction_c"),
                        "load_pct": c.get("load_pct"),
                        "services": c.get("services", []),
                    }
                    for c in health.get("cores", [])
                ],
                "services": [
                    {
                        "name": s["name"],
                        "state": s["state"],
                        "cores": s["cores"],
                        "throttle": throttles.get(s["name"], 0),
                        "restarts": s["restarts"],
                        "energy_mj": energy.get(s["name"]),
                        "cpu_percent": s["cpu_percent"],
                    }
                    for s in services
                ],
            },
        )

    def _line(self, f: IO[str] | None, obj: dict[str, Any]) -> None:
        if f is None:
            return
        now = time.monotonic()
        if self.truncated:
            self._drop(now, f"the run record reached its cap of {self.max_bytes} bytes")
            return
        if now < self._retry_at:
            self._drop(now, self._failure)
            return
        line = json.dumps(obj, default=str, separators=(",", ":")) + "\n"
        if self.written + len(line) > self.max_bytes:
            self.truncated = True
            log.warning("kernel.run_record_full", dir=str(self.dir), max_bytes=self.max_bytes)
            self._drop(now, f"the run record reached its cap of {self.max_bytes} bytes")
            return
        try:
            f.write(line)
        except OSError as exc:  # a full disk: count what is lost, try again a little later
            self._failure = f"cannot write {self.dir}: {exc.strerror or exc}"
            self._retry_at = now + RETRY_S
            self._drop(now, self._failure)
            return
        self.written += len(line)

    def _drop(self, now: float, reason: str) -> None:
        """Count one lost line; report the count at most once per ``REPORT_S`` (never one event per line)."""
        self.dropped += 1
        self._unreported += 1
        if self.on_drop is None or now - self._last_report < REPORT_S:
            return
        self._last_report = now
        count, self._unreported = self._unreported, 0
        log.warning("kernel.run_record_dropped", lines=count, total=self.dropped, reason=reason)
        self.on_drop(count, self.dropped, reason)

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
