"""The kernel's commands and their one-line docs, with no imports, so ground tools read them without the kernel."""

from __future__ import annotations

KERNEL_COMMANDS = {
    "ping": "answer at once (liveness of the kernel)",
    "status": "the service table, the cores and the bus counters",
    "describe": "the kernel's commands",
    "restart": "stop a service gracefully and start it again (service=NAME)",
    "stop": "stop a service gracefully; it stays stopped (service=NAME)",
    "start": "start a stopped, disabled or FAILED service (service=NAME)",
    "kill": "send a signal to a service process, for fault drills (service=NAME signal=KILL|STOP|...)",
    "inject": "inject a fault into a simulated board (fault=seu|sefi|reset|sel|power-cycle|core-fail|"
              "thermal-step|saa|sun, see `faults`)",
    "faults": "the faults `inject` knows, with their arguments",
    "core": "hold a core out of service or return it (core=N action=disable|enable)",
    "block": "drill: stall the kernel's loop for seconds=S (simulated boards only; tests the watchdog)",
    "mode": "hold a mode or return to automatic (mode=safe|degraded|nominal|auto)",
    "shutdown": "stop every service and the kernel",
    "link": "the links to other boards: peers, their services, counters and refusals",
}
"""Command name -> doc; the kernel's ``describe``, its unknown-command error and the mission database read it."""
