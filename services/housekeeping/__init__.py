"""The ``housekeeping`` service: per-core CPU, memory, disk and load telemetry at a set rate."""

from __future__ import annotations

import os
from typing import Any

from flightos import Message, Parameter, Service, command, periodic, subscribe
from services.housekeeping.board import flatten
from services.housekeeping.options import HousekeepingOptions


class Housekeeping(Service):
    """Publishes the board's resource figures and a per-service resource table."""

    name = "housekeeping"
    options_schema = HousekeepingOptions
    disk_path = Parameter("/", doc="file system whose usage is reported")
    rate_hz = Parameter(1.0, min=0.01, max=50.0, doc="reports per second")

    def __init__(self) -> None:
        super().__init__()
        self._services: list[dict[str, Any]] = []
        self._cores: list[dict[str, Any]] = []
        self._board: dict[str, Any] | None = None
        self.samples = 0

    @subscribe("tm.kernel.services")
    async def on_services(self, msg: Message) -> None:
        """Keep the kernel's latest service table for the resource report."""
        if isinstance(msg.payload, dict):
            self._services = list(msg.payload.get("services", []))

    @subscribe("tm.hal.reading")
    async def on_hal(self, msg: Message) -> None:
        """Keep the HAL's latest per-core readings (load by core label, never by position)."""
        if isinstance(msg.payload, dict):
            self._cores = list(msg.payload.get("cores", []))

    @subscribe("tm.hal.health")
    async def on_board_health(self, msg: Message) -> None:
        """Keep the kernel's latest board health (hal.health) as flat housekeeping values."""
        if isinstance(msg.payload, dict):
            self._board = flatten(msg.payload)

    @periodic(hz="rate_hz")
    async def report(self) -> None:
        """Publish ``tm.housekeeping.system``, ``tm.housekeeping.services`` and ``tm.housekeeping.board``."""
        await self.publish("system", self.snapshot())
        await self.publish(
            "services",
            {
                "services": [
                    {k: s.get(k) for k in ("name", "state", "pid", "cores", "cpu_percent", "rss_mb", "restarts")}
                    for s in self._services
                ]
            },
        )
        if self._board is not None:
            await self.publish("board", self._board)
        self.samples += 1

    @command()
    async def board(self) -> dict[str, Any] | None:
        """The board's health as housekeeping values (None until the kernel's first reading)."""
        return self._board

    @command()
    async def sample(self) -> dict[str, Any]:
        """Take and return one housekeeping sample now."""
        return self.snapshot()

    def snapshot(self) -> dict[str, Any]:
        """CPU load per board core, memory, disk and load average."""
        per_core = {str(c.get("id")): c.get("load_pct") for c in self._cores}
        try:
            st = os.statvfs(self.disk_path)
            total, free = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
            used = total - st.f_bfree * st.f_frsize
            disk = {
                "path": self.disk_path,
                "used_pct": round(100.0 * used / max(1, used + free), 1),
                "free_mb": free // 2**20,
            }
        except OSError as exc:
            disk = {"path": self.disk_path, "error": str(exc)}
        return {
            "core_load_pct": per_core,
            "memory": _memory(),
            "disk": disk,
            "load_avg": list(os.getloadavg()),
        }


def _memory() -> dict[str, Any]:
    """Used % and available MiB from /proc/meminfo (psutil would cost every service ~1 MiB of RSS)."""
    info: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                info[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError) as exc:
        return {"error": f"/proc/meminfo: {exc}"}
    total, avail = info.get("MemTotal", 0), info.get("MemAvailable", info.get("MemFree", 0))
    return {"used_pct": round(100.0 * (total - avail) / max(1, total), 1), "available_mb": avail // 2**20}
