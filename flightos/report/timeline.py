"""Series derived from a run: the mode and each core's state as intervals, service placement, markers.

A state is taken from the kernel's events when it announced changes (exact times), else from the
telemetry samples (a change is seen at the first sample that shows it). The state before the
first change is the ``old`` of that change, else the first sample's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flightos.report.model import Event, Run

HEALTHY = "HEALTHY"

#: Marker kinds drawn as vertical lines, and the kernel events behind each.
MARKER_EVENTS: dict[str, tuple[str, ...]] = {
    "restart": ("SERVICE_RESTART_SCHEDULED",),
    "migration": ("SERVICE_MIGRATED",),
    "mode change": ("MODE_CHANGED",),
    "fault": ("HAL_EVENT", "HAL_FAULT_INJECTED", "SCENARIO_STEP", "WATCHDOG_RESET"),
    "service failed": ("SERVICE_FAILED",),
}


@dataclass(frozen=True)
class Change:
    """The value becomes ``value`` at UTC time ``t``; ``reason`` when the kernel gave one."""

    t: float
    value: str
    reason: str = ""


@dataclass(frozen=True)
class Interval:
    """``value`` from ``start`` to ``end`` (UTC seconds)."""

    start: float
    end: float
    value: str

    @property
    def length(self) -> float:
        return self.end - self.start


def _text(v: object) -> str:
    return str(v).upper() if v is not None else ""


def mode_changes(run: Run) -> tuple[str | None, list[Change]]:
    """The initial mode and every change after it."""
    events = [e for e in run.events if e.name == "MODE_CHANGED" and e.data.get("new") is not None]
    if events:
        first = _text(events[0].data.get("old")) or next((s.mode for s in run.samples if s.mode), None)
        return first, [Change(e.t, _text(e.data["new"]), str(e.data.get("reason") or "")) for e in events]
    samples = [s for s in run.samples if s.mode]
    return (samples[0].mode if samples else None), [Change(s.t, s.mode) for s in samples if s.mode]


def core_changes(run: Run, core: int) -> tuple[str | None, list[Change]]:
    """The initial state of a core and every change after it."""
    events = [
        e
        for e in run.events
        if e.name == "CORE_STATE_CHANGED" and e.data.get("core") == core and e.data.get("new") is not None
    ]
    sampled = [(s.t, c.state) for s in run.samples for c in s.cores if c.id == core]
    if events:
        first = _text(events[0].data.get("old")) or (sampled[0][1] if sampled else None)
        return first, [Change(e.t, _text(e.data["new"]), str(e.data.get("reason") or "")) for e in events]
    return (sampled[0][1] if sampled else None), [Change(t, v) for t, v in sampled]


def intervals(initial: str | None, changes: list[Change], start: float, end: float) -> list[Interval]:
    """Piecewise-constant intervals covering [start, end] where the value is known."""
    out: list[Interval] = []
    cur_t, cur_v = start, initial
    for ch in changes:
        t = min(max(ch.t, start), end)
        if ch.value == cur_v:
            continue
        if cur_v is not None and t > cur_t:
            out.append(Interval(cur_t, t, cur_v))
        cur_t, cur_v = t, ch.value
    if cur_v is not None and end > cur_t:
        out.append(Interval(cur_t, end, cur_v))
    merged: list[Interval] = []
    for iv in out:
        if merged and merged[-1].value == iv.value and merged[-1].end == iv.start:
            merged[-1] = Interval(merged[-1].start, iv.end, iv.value)
        else:
            merged.append(iv)
    return merged


def mode_intervals(run: Run) -> list[Interval]:
    return intervals(*mode_changes(run), run.start, run.end)


def core_intervals(run: Run, core: int) -> list[Interval]:
    return intervals(*core_changes(run, core), run.start, run.end)


@dataclass(frozen=True)
class Episode:
    """A time a core was not HEALTHY: when it left, through which states, why, and when it came back."""

    core: int
    left_at: float
    states: tuple[str, ...]
    reason: str
    back_at: float | None


def unhealthy_episodes(run: Run, core: int) -> list[Episode]:
    """Every stretch during which a core was not HEALTHY (starting from its initial state)."""
    initial, changes = core_changes(run, core)
    out: list[Episode] = []
    steps = ([Change(run.start, initial, "state at the start of the run")] if initial else []) + changes
    open_: Episode | None = None
    for ch in steps:
        if ch.value != HEALTHY and open_ is None:
            open_ = Episode(core, ch.t, (ch.value,), ch.reason, None)
        elif ch.value != HEALTHY and open_ is not None and ch.value != open_.states[-1]:
            open_ = Episode(core, open_.left_at, (*open_.states, ch.value), open_.reason, None)
        elif ch.value == HEALTHY and open_ is not None:
            out.append(Episode(core, open_.left_at, open_.states, open_.reason, ch.t))
            open_ = None
    if open_ is not None:
        out.append(open_)
    return out


def core_services(run: Run, core: int) -> list[tuple[float, tuple[str, ...]]]:
    """When the services on a core change: from telemetry, else from SERVICE_PLACED/SERVICE_MIGRATED.

    Samples taken before the kernel placed any service (the first one precedes the spawns) say nothing
    about placement and are skipped, unless no sample ever shows a placement.
    """
    out: list[tuple[float, tuple[str, ...]]] = []
    first = next((i for i, s in enumerate(run.samples) if any(c.services for c in s.cores)), 0)
    for s in run.samples[first:]:
        for c in s.cores:
            if c.id == core and (not out or out[-1][1] != c.services):
                out.append((s.t, c.services))
    if run.samples:
        return out
    where: dict[str, tuple[int, ...]] = {}
    for e in run.events:
        key = "cores" if e.name == "SERVICE_PLACED" else "to_cores" if e.name == "SERVICE_MIGRATED" else None
        svc = e.data.get("service")
        if key is None or not isinstance(svc, str) or not isinstance(e.data.get(key), list):
            continue
        where[svc] = tuple(c for c in e.data[key] if isinstance(c, int))
        here = tuple(sorted(name for name, cores in where.items() if core in cores))
        if not out or out[-1][1] != here:
            out.append((e.t, here))
    return out


def placement_labels(
    changes: list[tuple[float, tuple[str, ...]]], start: float, width: Callable[[str], float]
) -> list[tuple[float, str]]:
    """The labels drawn for a core's placement changes, as (time, text); ``width(text)`` is its extent in seconds.

    A change before ``start`` is drawn at ``start``. A change that would overlap the previous label replaces
    that label's text, so a burst of changes (services spawning one by one) shows where it settled instead
    of hiding every later placement behind the first label.
    """
    labels: list[tuple[float, str]] = []
    for t, names in changes:
        text = ", ".join(names) or "(no services)"
        t = max(t, start)
        if labels and t < labels[-1][0] + width(labels[-1][1]):
            labels[-1] = (labels[-1][0], text)
        else:
            labels.append((t, text))
    return labels


def markers(run: Run) -> dict[str, list[Event]]:
    """Marker kind -> the events drawn as vertical lines (only kinds that occur)."""
    out: dict[str, list[Event]] = {}
    for kind, names in MARKER_EVENTS.items():
        found = [e for e in run.events if e.name in names]
        if found:
            out[kind] = found
    return out
