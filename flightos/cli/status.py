"""``flightos status``: the service and core tables."""

from __future__ import annotations

from typing import Any

from flightos.cli.output import table


def render(status: dict[str, Any]) -> str:
    """The status document as text tables."""
    k = status["kernel"]
    head = (f"kernel pid {k['pid']}  target {k['target']}  board {k['board']} ({k['backend']})  "
            f"up {k['uptime_s']} s  cpu {k['cpu_percent']:.1f}%  rss {k['rss_mb']} MB  spawn {k['spawn']}")
    svc_rows = [
        (s["name"], s["state"], s["pid"], s["criticality"], ",".join(map(str, s["cores"])),
         s["restarts"], _ms(s["heartbeat_age_ms"]), f"{s['cpu_percent']:.1f}", s["rss_mb"],
         s["queued"] or "", s["reason"])
        for s in status["services"]
    ]
    services = table(["SERVICE", "STATE", "PID", "CRIT", "CORES", "RESTARTS", "HB AGE", "CPU%",
                      "RSS MB", "QUEUED", "REASON"], svc_rows)
    core_rows = [(c["id"], "yes" if c["online"] else "no", c.get("state", ""), _pct(c["load_pct"]),
                  c["freq_mhz"] if c["freq_mhz"] is not None else "",
                  ",".join(map(str, c["host_cpus"])), ", ".join(c["services"]))
                 for c in status["cores"]]
    cores = table(["CORE", "ONLINE", "STATE", "LOAD", "MHZ", "HOST CPUS", "SERVICES"], core_rows)
    cmds = status["bus"]["commands"]
    bus = (f"commands: {cmds['received']} received, {cmds['completed']} answered, "
           f"{cmds['queued']} queued, {cmds['deadline_exceeded']} deadline exceeded, "
           f"{cmds['service_lost']} lost with their service; pending {status['bus']['pending']}")
    rejected = status["bus"]["rejected"]
    nrej = sum(sum(v.values()) for v in rejected.values())
    return "\n".join([head, "", services, "", cores, "", bus + f"; rejected frames {nrej}"])


def _ms(v: Any) -> str:
    return "" if v is None else f"{v:.0f} ms"


def _pct(v: Any) -> str:
    return "" if v is None else f"{v:.0f}%"
