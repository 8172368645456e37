"""``flightos status``: the service and core tables."""

from __future__ import annotations

import time
from typing import Any

from flightos.cli.output import table


def render(status: dict[str, Any]) -> str:
    """The status document as text tables."""
    k = status["kernel"]
    h = status.get("health", {})
    head = (
        f"kernel pid {k['pid']}  target {k['target']}  board {k['board']} ({k['backend']})  "
        f"up {k['uptime_s']} s  cpu {k['cpu_percent']:.1f}%  rss {k['rss_mb']} MB  spawn {k['spawn']}"
    )
    mode = (
        f"mode {h.get('mode', '?')}"
        + (" (held by ground)" if h.get("forced_mode") else "")
        + (" (held: watchdog resets)" if h.get("hold_safe") else "")
    )
    temp = (
        ""
        if h.get("junction_c") is None
        else f"  junction {h['junction_c']:.1f} C (trip {h.get('trip_c')} C, thermal level {h.get('thermal_level', 0)})"
    )
    power = (
        ""
        if h.get("power_w") is None
        else f"  power {h['power_w']:.2f} W" + (f" of {h['budget_w']:g} W" if h.get("budget_w") else "")
    )
    wd = h.get("watchdog", {})
    head += f"\n{mode}{temp}{power}  watchdog {'armed' if wd.get('armed') else 'off'}, resets {wd.get('resets', 0)}"
    if wd.get("reset_reason"):
        head += f", last reset: {wd['reset_reason']}" + (", nowayout" if wd.get("nowayout") else "")
    head += edac_line(h.get("edac"))
    svc_rows = [
        (
            s["name"],
            s["state"],
            s["pid"],
            s["criticality"],
            ",".join(map(str, s["cores"])),
            s["restarts"],
            _ms(s["heartbeat_age_ms"]),
            f"{s['cpu_percent']:.1f}",
            s["rss_mb"],
            s["queued"] or "",
            s["reason"],
        )
        for s in status["services"]
    ]
    services = table(
        ["SERVICE", "STATE", "PID", "CRIT", "CORES", "RESTARTS", "HB AGE", "CPU%", "RSS MB", "QUEUED", "REASON"],
        svc_rows,
    )
    core_rows = [
        (
            c["id"],
            c.get("state", ""),
            c.get("hw_state", ""),
            _pct(c["load_pct"]),
            c["freq_mhz"] if c.get("freq_mhz") is not None else "",
            ",".join(map(str, c["host_cpus"])),
            ", ".join(c["services"]),
            ("held: " if c.get("forced") else "") + (c.get("reason") or ""),
        )
        for c in status["cores"]
    ]
    cores = table(["CORE", "HEALTH", "HW", "LOAD", "MHZ", "HOST CPUS", "SERVICES", "WHY"], core_rows)
    cmds = status["bus"]["commands"]
    bus = (
        f"commands: {cmds['received']} received, {cmds['completed']} answered, "
        f"{cmds['queued']} queued, {cmds['deadline_exceeded']} deadline exceeded, "
        f"{cmds['service_lost']} lost with their service; pending {status['bus']['pending']}"
    )
    rejected = status["bus"]["rejected"]
    nrej = sum(sum(v.values()) for v in rejected.values())
    lost = status["bus"].get("dropped", 0) + sum((s.get("stats") or {}).get("dropped", 0) for s in status["services"])
    decisions = [
        f"  {time.strftime('%H:%M:%S', time.gmtime(d['t']))} {d['message']}" for d in h.get("decisions", [])[-6:]
    ]
    tail = ["", "last decisions:", *decisions] if decisions else []
    link = _link(status["link"]) if "link" in status else []
    board = board_health_lines(status.get("board_health"))
    bus += f"; rejected frames {nrej}; messages lost {lost} (sequence gaps seen by subscribers)"
    return "\n".join([head, *board, "", services, "", cores, "", bus, *link, *tail])


def board_health_lines(bh: dict[str, Any] | None) -> list[str]:
    """Board health (``tm.hal.health``) in three lines: resources, boot and kernel log, storage wear and clock."""
    if not bh:
        return ["board health: not read yet"]

    def why(section: dict[str, Any]) -> str:
        return f"unavailable ({section.get('reason', '?')})"

    m = bh["memory"]
    mem = (
        (
            f"ram {m['used_pct']:g}% used ({m['available_mb']} MiB free), swap "
            + (f"{m['swap_used_pct']:g}%" if m["swap_used_pct"] is not None else "none")
        )
        if m["available"]
        else f"ram {why(m)}"
    )
    disks = [
        f"{d['label']} {d['used_pct']:g}% ({d['free_mb']} MiB free{', READ-ONLY' if d['read_only'] else ''})"
        if d["available"]
        else f"disk {why(d)}"
        for d in bh["disks"]
    ]
    b = bh["boot"]
    boot = f"up {_duration(b['uptime_s'])}, last reset {b['reset_reason']}" if b["available"] else f"boot {why(b)}"
    k = bh["kernel_log"]
    klog = (
        "kernel log: " + (", ".join(f"{kind} {n}" for kind, n in k["counts"].items() if n) or "nothing of note")
        if k["available"]
        else f"kernel log {why(k)}"
    )
    e = bh["emmc"]
    emmc = (
        ("eMMC " + ", ".join(f"{c['card']} {c['level']}" for c in e["cards"])) if e["available"] else f"eMMC {why(e)}"
    )
    c = bh["clock"]
    clock = f"clock synchronised {c['synchronised']}, " + (
        f"rtc {c['rtc_offset_s']:+g} s" if c["rtc_offset_s"] is not None else "no rtc"
    )
    ro = bh["read_only_mounts"]
    ro_text = [f"read-only: {', '.join(ro['mounts'])}"] if ro.get("available") and ro.get("mounts") else []
    return [
        f"board: {mem}; disk {', '.join(disks) or 'none'}",
        f"       {boot}; {klog}",
        f"       {emmc}; {clock}" + ("; " + ro_text[0] if ro_text else ""),
    ]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(seconds)
    return (f"{s // 86400} d " if s >= 86400 else "") + f"{s % 86400 // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _link(link: dict[str, Any]) -> list[str]:
    """The links to other boards: one row per peer, then refusals."""
    rows = [
        (
            b,
            "up" if p["up"] else ("down" if p["ever_up"] else "never heard"),
            p["endpoint"],
            _ms(p["last_hello_ms"]),
            ", ".join(p["services"]),
            ", ".join(p["interest"]),
        )
        for b, p in sorted(link["peers"].items())
    ]
    refused = link["security"]["refused"]
    s = link["stats"]
    lines = [
        "",
        f"link: board {link['board']} on {link['listen']} "
        + ("(CURVE)" if link["curve"] else "(PLAINTEXT: lab bench only)")
        + f"; {s['commands_out']} commands out, {s['commands_in']} in, {s['resends']} resent, "
        f"{link['outgoing']} awaiting a result; {s['failovers']} failovers taken",
        table(["PEER", "LINK", "ENDPOINT", "LAST HELLO", "RUNS", "WANTS"], rows),
    ]
    if refused:
        lines.append("refused connections: " + ", ".join(f"{k} {v}" for k, v in sorted(refused.items())))
    return lines


def _ms(v: Any) -> str:
    return "" if v is None else f"{v:.0f} ms"


def _pct(v: Any) -> str:
    return "" if v is None else f"{v:.0f}%"


def edac_line(edac: dict[str, Any] | None) -> str:
    """``edac 100 corrected, 0 uncorrectable (rs; scrub every 60 s, next in 12 s)``, or nothing without EDAC."""
    if not edac:
        return ""
    scrub = ""
    if edac.get("scrub_period_s") is not None:
        scrub = (
            f" ({edac.get('code', '?')}; scrub every {edac['scrub_period_s']:g} s"
            + (f", next in {edac['next_scrub_in_s']:.0f} s" if edac.get("next_scrub_in_s") is not None else "")
            + ")"
        )
    return f"\nedac {edac['corrected']} corrected, {edac['uncorrected']} uncorrectable{scrub}"
