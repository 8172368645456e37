"""Fault injection for tests: the simulator's faults, and what can be done safely in software on real boards."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from typing import Any

from flightos.testing.bus import Bus


class Faults:
    """Breaks things on purpose, through the kernel where it can and the OS where it must."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._hogs: list[subprocess.Popen[bytes]] = []

    # ---- simulated boards (the HAL's faults) --------------------------------------------------------
    async def inject(self, fault: str, **args: Any) -> dict[str, Any]:
        """Any simulator fault: seu, sefi, reset, sel, power-cycle, core-fail, thermal-step, saa, sun."""
        result: dict[str, Any] = await self.bus.call("kernel", "inject", {"fault": fault, **args})
        return result

    async def sefi(self, core: int) -> None:
        """Hang a simulated core."""
        await self.inject("sefi", core=core)

    async def core_fail(self, core: int) -> None:
        """Fail a simulated core for good."""
        await self.inject("core-fail", core=core)

    # ---- any board (software faults) -----------------------------------------------------------------
    async def _pid(self, service: str) -> int:
        status = await self.bus.call("kernel", "status")
        pid = next((s["pid"] for s in status["services"] if s["name"] == service), None)
        if not pid:
            raise AssertionError(f"service {service!r} has no process to fault")
        return int(pid)

    async def kill(self, service: str) -> int:
        """SIGKILL a service (a crash); return the pid that died."""
        pid = await self._pid(service)
        os.kill(pid, signal.SIGKILL)
        return pid

    async def stop_heartbeats(self, service: str) -> int:
        """SIGSTOP a service: it stops heartbeating (a hang); return its pid."""
        pid = await self._pid(service)
        os.kill(pid, signal.SIGSTOP)
        return pid

    async def fill_memory(self, megabytes: int) -> int:
        """Make the test service hold ``megabytes`` more memory."""
        held: int = await self.bus.call("test", "leak", {"megabytes": megabytes}, timeout=30)
        return held

    async def disable_core(self, core: int) -> None:
        """Take a core out of service through the kernel (affinity, no hotplug)."""
        await self.bus.call("kernel", "core", {"core": core, "action": "disable"})

    async def enable_core(self, core: int) -> None:
        """Return a core to service."""
        await self.bus.call("kernel", "core", {"core": core, "action": "enable"})

    async def hog_core(self, core: int, seconds: float = 10.0) -> None:
        """Burn the host CPUs behind a board core with a pinned busy process (stopped at cleanup)."""
        status = await self.bus.call("kernel", "status")
        cpus = next(c["host_cpus"] for c in status["cores"] if c["id"] == core)
        code = (
            f"import os,time; os.sched_setaffinity(0, {set(cpus)!r}); end = time.monotonic() + {seconds}\n"
            "while time.monotonic() < end: pass"
        )
        self._hogs.append(subprocess.Popen([sys.executable, "-c", code]))

    def cleanup(self) -> None:
        """Stop every hog this object started."""
        for p in self._hogs:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            p.wait()
        self._hogs.clear()
