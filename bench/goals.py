"""Issue 15's goals, judged from figures measured in this run: what each figure recorded, and the goal table.

Figures ``record`` the numbers a goal needs (keys such as ``("pubsub", 64, "sdk proxy")``); ``rows``
turns whatever was recorded into one row per goal, each stating the goal and whether it was met.
A goal whose figures did not run says so instead of guessing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.report import TIMES, num

MEASURED: dict[Any, Any] = {}

MET, NOT_MET, NO_DATA = "met", "NOT MET", "not measured"


def record(key: Any, value: Any) -> None:
    """Keep one number (or record) of this run for the goals."""
    MEASURED[key] = value


def get(key: Any) -> Any:
    """A number recorded in this run, or None."""
    return MEASURED.get(key)


@dataclass
class Goal:
    """One goal row: what was measured, against what, the goal, and whether it was met."""

    goal: str
    measured: str
    baseline: str
    target: str
    verdict: str
    note: str = ""

    def to_json(self) -> dict[str, str]:
        """A JSON-ready record."""
        return {
            "goal": self.goal,
            "measured": self.measured,
            "baseline": self.baseline,
            "target": self.target,
            "verdict": self.verdict,
            "note": self.note,
        }


def _x(r: float | None) -> str:
    return f"{r:.2f}{TIMES}" if r is not None else "—"


def _judge(ok: bool | None) -> str:
    return NO_DATA if ok is None else (MET if ok else NOT_MET)


def _pubsub(size: int, lab: str, want: float) -> Goal:
    sdk, raw = get(("pubsub", size, "sdk proxy")), get(("pubsub", size, "raw direct"))
    r = sdk / raw if sdk is not None and raw else None
    return Goal(
        f"pub/sub {lab} through the SDK",
        f"{num(sdk)} msg/s ({_x(r)})",
        f"raw single-frame pyzmq direct {num(raw)} msg/s",
        f"≥ {want:g}{TIMES}",
        _judge(None if r is None else r >= want),
    )


def _latency() -> list[Goal]:
    sdk, raw = get(("latency", "sdk proxy")), get(("latency", "raw proxy"))
    if sdk is None or raw is None:
        return [
            Goal(
                "isolated 64 B message latency p50 / p99 through the SDK",
                "—",
                "raw pyzmq via the proxy",
                "p50 ≤ raw + 40 µs; p99 ≤ 250 µs",
                NO_DATA,
            )
        ]
    d50 = sdk["p50"] - raw["p50"]
    aio = get(("latency", "raw asyncio proxy"))
    also = f" (raw frames read by asyncio: {aio['p50']:.0f} µs)" if aio else ""
    return [
        Goal(
            "isolated-message latency p50 through the SDK",
            f"{sdk['p50']:.0f} µs (+{d50:.0f} µs)",
            f"raw pyzmq via the proxy {raw['p50']:.0f} µs{also}",
            "≤ raw + 40 µs",
            _judge(d50 <= 40),
        ),
        Goal(
            "isolated-message latency p99 through the SDK",
            f"{sdk['p99']:.0f} µs",
            f"raw pyzmq via the proxy {raw['p99']:.0f} µs",
            "≤ 250 µs",
            _judge(sdk["p99"] <= 250),
        ),
    ]


def _rtt() -> list[Goal]:
    sdk, aio, mq = get(("rtt", "test")), get(("rtt", "raw asyncio")), get(("rtt", "mqtt"))
    if sdk is None:
        return [Goal("command round trip through the SDK", "—", "raw asyncio DEALER↔ROUTER", "", NO_DATA)]
    r = sdk["p50"] / aio["p50"] if aio else None
    routed = get(("rtt", "test routed"))
    out = [
        Goal(
            "command round trip p50, Client.call test.ping",
            f"{sdk['p50']:.0f} µs ({_x(r)})",
            f"raw asyncio DEALER↔ROUTER {aio['p50']:.0f} µs" if aio else "raw asyncio: not measured",
            f"≤ 1.5{TIMES}",
            _judge(None if r is None else r <= 1.5),
            note=f"every hop through the kernel (direct=False), same run: {routed['p50']:.0f} µs p50, "
            f"{routed['p99']:.0f} µs p99"
            if routed
            else "",
        ),
        Goal(
            "command round trip p99",
            f"{sdk['p99']:.0f} µs",
            f"raw asyncio p99 {aio['p99']:.0f} µs" if aio else "—",
            "≤ 500 µs",
            _judge(sdk["p99"] <= 500),
        ),
    ]
    rm = sdk["p50"] / mq["p50"] if mq else None
    why = get("mqtt_rtt_skipped")
    out.append(
        Goal(
            "command round trip p50 vs MQTT request/reply",
            f"{sdk['p50']:.0f} µs ({_x(rm)})",
            f"mosquitto + paho-mqtt v5 request/reply {mq['p50']:.0f} µs (p99 {mq['p99']:.0f})"
            if mq
            else "MQTT: not measured",
            f"< 1{TIMES} (faster)",
            _judge(None if rm is None else rm < 1),
            note=why or "",
        )
    )
    return out


def _burst() -> list[Goal]:
    runs = get("burst")
    if not runs:
        return [
            Goal(
                f"64 publishers {TIMES} 2,000 messages in one burst: every loss counted",
                "—",
                "—",
                "counted = lost",
                NO_DATA,
            )
        ]
    out = []
    for b in runs:
        lost, counted = b["sent"] - b["delivered"], b["counted"]
        out.append(
            Goal(
                f"{b['publishers']} {TIMES} {b['each']:,} burst, {b['mode']}: every loss counted",
                f"{b['delivered']:,} of {b['sent']:,} delivered, {lost:,} lost, {counted:,} counted",
                "—",
                "counted = lost",
                _judge(counted == lost),
                note=b.get("note", ""),
            )
        )
    return out


def _idle(n: int, limit: float) -> Goal:
    cpu, total = get(("idle", n)), get(("idle total", n))
    return Goal(
        f"idle kernel CPU with {n} services",
        f"{cpu:.2f} % of a core" if cpu is not None else "—",
        "—",
        f"≤ {limit:g} %",
        _judge(None if cpu is None else cpu <= limit),
        note=f"the kernel and all {n} services together: {total:.2f} % of a core" if total is not None else "",
    )


GOALS: list[Callable[[], Goal | list[Goal]]] = [
    lambda: _pubsub(64, "64 B", 0.8),
    lambda: _pubsub(1024, "1 KiB", 1.0),
    lambda: _pubsub(65536, "64 KiB", 0.8),
    _latency,
    _rtt,
    _burst,
    lambda: _idle(8, 1.0),
    lambda: _idle(64, 3.0),
]


def rows() -> list[Goal]:
    """Every goal of issue 15, judged from this run's figures."""
    out: list[Goal] = []
    for g in GOALS:
        got = g()
        out.extend(got if isinstance(got, list) else [got])
    return out


def table(goals: list[Goal]) -> str:
    """The goals as a Markdown table (what the README's table takes), then their notes."""
    head = "| goal | measured (ratio) | baseline, same run | goal | met? |\n|---|---|---|---|---|\n"
    body = "".join(f"| {g.goal} | {g.measured} | {g.baseline} | {g.target} | {g.verdict} |\n" for g in goals)
    notes = "".join(f"  - {g.goal}: {g.note}\n" for g in goals if g.note)
    return head + body + (f"\nnotes:\n{notes}" if notes else "")
