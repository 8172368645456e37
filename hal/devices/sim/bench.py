"""The simulated devices' shared state: small files in ``<runtime_dir>/devices-<kernel pid>``.

Services are separate processes and ``flightos inject`` is yet another, so a simulated device keeps
what must be shared on disk: its kind (``NAME.json``), its injected fault (``NAME.fault``), a GPIO
line's level (``NAME.line``), a sensor's physical state (``NAME.model``) and what a radio sent
(``NAME.tx``). Every write is atomic (write, then rename). The directory is named after the kernel's
pid (``devices-<pid>``): a new run starts with fresh devices, and a dead kernel's are swept.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

BOARD_TREE_GLOB = "sim-*/sys/class/thermal/thermal_zone1/temp"
"""The simulated board's radiator temperature, in the sysfs tree it renders into the runtime directory."""
DEFAULT_AMBIENT_C = 20.0


PREFIX = "devices-"


class SimBench:
    """Where the simulated devices of one run (one kernel, ``kernel_pid``) keep their shared state."""

    def __init__(self, runtime_dir: Path, kernel_pid: int) -> None:
        self.runtime_dir = Path(runtime_dir)
        self.root = self.runtime_dir / f"{PREFIX}{kernel_pid}"

    def sweep(self) -> None:
        """Remove the device state of kernels that are gone (earlier runs in this runtime directory)."""
        for d in self.runtime_dir.glob(f"{PREFIX}*"):
            pid = d.name[len(PREFIX) :]
            if not pid.isdigit() or d == self.root:
                continue
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                shutil.rmtree(d, ignore_errors=True)
            except PermissionError:  # alive, someone else's
                continue

    def _write(self, path: Path, text: str) -> None:
        self.root.mkdir(mode=0o700, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def _read_json(self, path: Path) -> Any:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    # ---- devices and faults ---------------------------------------------------------------
    def register(self, name: str, kind: str) -> None:
        """Record that a service opened ``name`` as a ``kind`` device (so inject can check the kind)."""
        self._write(self.root / f"{name}.json", json.dumps({"kind": kind}))

    def devices(self) -> dict[str, str]:
        """Every device opened in this runtime so far, with its kind."""
        out: dict[str, str] = {}
        for p in sorted(self.root.glob("*.json")) if self.root.is_dir() else []:
            d = self._read_json(p)
            if isinstance(d, dict) and isinstance(d.get("kind"), str):
                out[p.stem] = d["kind"]
        return out

    def fault(self, name: str) -> dict[str, Any] | None:
        """The fault injected into ``name`` (``{"fault": ..., **args}``), or None."""
        d = self._read_json(self.root / f"{name}.fault")
        return d if isinstance(d, dict) and d.get("fault") else None

    def set_fault(self, name: str, fault: dict[str, Any] | None) -> None:
        """Set (or clear, with None) the fault of ``name``."""
        if fault is None:
            (self.root / f"{name}.fault").unlink(missing_ok=True)
        else:
            self._write(self.root / f"{name}.fault", json.dumps(fault))

    # ---- GPIO levels, sensor models, radio transcripts ----------------------------------------
    def line(self, name: str, default: int = 0) -> int:
        """The level a simulated GPIO line was last driven to."""
        try:
            return 1 if (self.root / f"{name}.line").read_text().strip() == "1" else 0
        except OSError:
            return default

    def set_line(self, name: str, value: int) -> None:
        """Drive a simulated GPIO line."""
        self._write(self.root / f"{name}.line", "1\n" if value else "0\n")

    def model(self, name: str) -> dict[str, Any] | None:
        """A sensor's saved physical state."""
        d = self._read_json(self.root / f"{name}.model")
        return d if isinstance(d, dict) else None

    def set_model(self, name: str, state: dict[str, Any]) -> None:
        """Save a sensor's physical state."""
        self._write(self.root / f"{name}.model", json.dumps(state))

    def transmit(self, name: str, data: bytes) -> None:
        """Append what a radio sent to its transcript (what the ground would have heard)."""
        self.root.mkdir(mode=0o700, exist_ok=True)
        with open(self.root / f"{name}.tx", "ab") as f:
            f.write(data)

    def transcript(self, name: str) -> bytes:
        """Everything a simulated radio has sent."""
        try:
            return (self.root / f"{name}.tx").read_bytes()
        except OSError:
            return b""

    def ambient_c(self) -> float:
        """The simulated board's radiator temperature, or 20 °C when no simulated board renders one."""
        for p in self.runtime_dir.glob(BOARD_TREE_GLOB):  # one live tree per runtime (stale ones are swept)
            try:
                return int(p.read_text().strip()) / 1000.0
            except (OSError, ValueError):
                continue
        return DEFAULT_AMBIENT_C
