"""``flightos status``: the service and core tables."""

from __future__ import annotations

import time
from typing import Any

from flightos.cli.output import table


def render(status: dict[str, Any]) -> str:
    """The status document as text tables."""
    k = status["kernel"]
    h = status.get("health", {})
    head = (f"kernel pid {k['pid']}  target {k['target']}  board {k['board']} ({k['backend']})  "
            f"up {k['uptime_s']} s  cpu {k['cpu_percent']:.1f}%  rss {k['rss_mb']} MB  spawn {k['spawn']}")
    mode = f"mode {h.get('mode', '?')}" + (" (held by ground)" if h.get("forced_mode") else "") + \
        (" (held: watchdog resets)" if h.get("hold_safe") else "")
    temp = "" if h.get("junction_c") is None else f"  junction {h['junction_c']:.1f} C (trip {h.get('trip_c')} C, " \
        f"thermal level {h.get('thermal_level', 0)})"
    power = "" if h.get("power_w") is None else f"  power {h['power_w']:.2f} W" + \
        (f" of {h['budget_w']:g} W" if h.get("budget_w") else "")
    wd = h.get("watchdog", {})
    head += f"\n{mode}{temp}{power}  watchdog {'armed' if wd.get('armed') else 'off'}, resets {wd.get('resets', 0)}"
    if wd.get("reset_reason"):
        head += f", last reset: {wd['reset_reason']}" + (", nowayout" if wd.get("nowayout") else "")
    svc_rows = [
        (s["name"], s["state"], s["pid"], s["criticality"], ",".join(map(str, s["cores"])),
         s["restarts"], _ms(s["heartbeat_age_ms"]), f"{s['cpu_percent']:.1f}", s["rss_mb"],
         s["queued"] or "", s["reason"])
        for s in status["services"]
    ]
    services = table(["SERVICE", "STATE", "PID", "CRIT", "CORES", "RESTARTS", "HB AGE", "CPU%",
                      "RSS MB", "QUEUED", "REASON"], svc_rows)
    core_rows = [(c["id"], c.get("state", ""), c.get("hw_state", ""), _pct(c["load_pct"]),
                  c["freq_mhz"] if c.get("freq_mhz") is not None else "",
                  ",".join(map(str, c["host_cpus"])), ", ".join(c["services"]),
                  ("held: " if c.get("forced") else "") + (c.get("reason") or ""))
                 for c in status["cores"]]
    cores = table(["CORE", "HEALTH", "HW", "LOAD", "MHZ", "HOST CPUS", "SERVICES", "WHY"], core_rows)
    cmds = status["bus"]["commands"]
    bus = (f"commands: {cmds['received']} received, {cmds['completed']} answered, "
           f"{cmds['queued']} queued, {cmds['deadline_exceeded']} deadline exceeded, "
           f"{cmds['service_lost']} lost with their service; pending {status['bus']['pending']}")
    rejected = status["bus"]["rejected"]
    nrej = sum(sum(v.values()) for v in rejected.values())
    decisions = [f"  {time.strftime('%H:%M:%S', time.gmtime(d['t']))} {d['message']}"
                 for d in h.get("decisions", [])[-6:]]
    tail = ["", "last decisions:", *decisions] if decisions else []
    link = _link(status["link"]) if "link" in status else []
    return "\n".join([head, "", services, "", cores, "", bus + f"; rejected frames {nrej}", *link, *tail])


def _link(link: dict[str, Any]) -> list[str]:
    """The links to other boards: one row per peer, then refusals."""
    rows = [(b, "up" if p["up"] else ("down" if p["ever_up"] else "never heard"), p["endpoint"],
             _ms(p["last_hello_ms"]), ", ".join(p["services"]), ", ".join(p["interest"]))
            for b, p in sorted(link["peers"].items())]
    refused = link["security"]["refused"]
    s = link["stats"]
    lines = ["", f"link: board {link['board']} on {link['listen']} "
             + ("(CURVE)" if link["curve"] else "(PLAINTEXT: lab bench only)")
             + f"; {s['commands_out']} commands out, {s['commands_in']} in, {s['resends']} resent, "
             f"{link['outgoing']} awaiting a result; {s['failovers']} failovers taken",
             table(["PEER", "LINK", "ENDPOINT", "LAST HELLO", "RUNS", "WANTS"], rows)]
    if refused:
        lines.append("refused connections: " + ", ".join(f"{k} {v}" for k, v in sorted(refused.items())))
    return lines


def _ms(v: Any) -> str:
    return "" if v is None else f"{v:.0f} ms"


def _pct(v: Any) -> str:
    return "" if v is None else f"{v:.0f}%"
