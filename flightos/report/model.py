"""A recorded run, read leniently: bad lines are skipped and counted, missing files are named.

The format (``meta.json``, ``events.jsonl``, ``telemetry.jsonl``) is the contract between the
kernel, which writes it, and the report, which reads it; docs/report.md describes it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
META, EVENTS, TELEMETRY = "meta.json", "events.jsonl", "telemetry.jsonl"
SEVERITIES = ("INFO", "LOW", "MEDIUM", "HIGH")
#: Telemetry ending this long before ``ended_utc`` means the recording stopped early.
SILENT_END_S = 10.0
#: An unknown severity name ranks as LOW, so a new kind of event shows in the decisions table.
UNKNOWN_SEVERITY_RANK = 2


class ReportError(Exception):
    """The run cannot be reported on (a required file is missing) or the report cannot be drawn."""


@dataclass(frozen=True)
class Event:
    """One line of ``events.jsonl``: a kernel event (with a name) or a service event (without)."""

    t: float
    topic: str
    source: str
    id: int | None
    name: str | None
    severity: str
    message: str
    data: dict[str, Any]

    @property
    def rank(self) -> int:
        """1 (INFO) to 4 (HIGH)."""
        return SEVERITIES.index(self.severity) + 1 if self.severity in SEVERITIES else UNKNOWN_SEVERITY_RANK

    @property
    def label(self) -> str:
        """The event name, or ``source #id`` for a service event."""
        if self.name:
            return self.name
        return f"{self.source} #{self.id}" if self.id is not None else self.source


@dataclass(frozen=True)
class CoreSample:
    """One core in one telemetry sample."""

    id: int
    state: str
    temp_c: float | None
    load_pct: float | None
    services: tuple[str, ...]


@dataclass(frozen=True)
class ServiceSample:
    """One service in one telemetry sample."""

    name: str
    state: str
    cores: tuple[int, ...]
    throttle: int
    restarts: int
    energy_mj: float | None
    cpu_percent: float | None


@dataclass(frozen=True)
class Sample:
    """One line of ``telemetry.jsonl``: a kernel monitoring sample."""

    t: float
    mode: str | None
    junction_c: float | None
    trip_c: float | None
    power_w: float | None
    budget_w: float | None
    cores: tuple[CoreSample, ...]
    services: tuple[ServiceSample, ...]


@dataclass
class Run:
    """A parsed run. Times in ``events`` and ``samples`` are UTC seconds, sorted."""

    run_dir: Path
    meta: dict[str, Any]
    events: list[Event]
    samples: list[Sample]
    skipped_lines: int = 0
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id") or self.run_dir.name)

    @property
    def start(self) -> float:
        """``started_utc``, else the first recorded time."""
        started = _num(self.meta.get("started_utc"))
        if started is not None:
            return started
        times = [e.t for e in self.events[:1]] + [s.t for s in self.samples[:1]]
        return min(times) if times else 0.0

    @property
    def ended(self) -> float | None:
        """``ended_utc``: None when the kernel was killed or is still running."""
        return _num(self.meta.get("ended_utc"))

    @property
    def end(self) -> float:
        """``ended_utc``, else the last recorded time."""
        if self.ended is not None:
            return self.ended
        times = [e.t for e in self.events[-1:]] + [s.t for s in self.samples[-1:]]
        return max([*times, self.start])

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)

    def rel(self, t: float) -> float:
        """Seconds since the start of the run."""
        return t - self.start

    @property
    def cores(self) -> list[int]:
        """``meta.cores``, else every core seen in telemetry or in CORE_STATE_CHANGED."""
        listed = self.meta.get("cores")
        if isinstance(listed, list) and all(isinstance(c, int) for c in listed):
            return list(listed)
        seen = {c.id for s in self.samples for c in s.cores}
        seen |= {
            e.data["core"]
            for e in self.events
            if e.name == "CORE_STATE_CHANGED" and isinstance(e.data.get("core"), int)
        }
        return sorted(seen)

    @property
    def services(self) -> list[str]:
        """Service names from ``meta.services``, then any other seen in telemetry, in order of appearance."""
        names: list[str] = []
        listed = self.meta.get("services")
        for s in listed if isinstance(listed, list) else []:
            if isinstance(s, dict) and isinstance(s.get("name"), str):
                names.append(s["name"])
        for sample in self.samples:
            names += [s.name for s in sample.services]
        return list(dict.fromkeys(names))


def load_run(run_dir: Path | str) -> Run:
    """Read a run directory. Raises ReportError if it or its ``events.jsonl`` is missing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: not a run directory (no such directory)")
    missing = [n for n in (META, EVENTS, TELEMETRY) if not (run_dir / n).is_file()]
    if EVENTS in missing:
        others = [n for n in missing if n != EVENTS]
        also = f" (also missing: {', '.join(others)})" if others else ""
        raise ReportError(f"{run_dir / EVENTS}: missing; a recorded run needs its event log{also}")
    problems = [
        f"{n} is missing"
        + (
            ": title and times are inferred from the data"
            if n == META
            else ": no temperatures, power or sampled states"
        )
        for n in missing
    ]
    meta = _load_meta(run_dir / META, problems) if META not in missing else {}
    events, bad_events = _read_jsonl(run_dir / EVENTS, _event, problems)
    samples: list[Sample] = []
    bad_samples = 0
    if TELEMETRY not in missing:
        samples, bad_samples = _read_jsonl(run_dir / TELEMETRY, _sample, problems)
    events.sort(key=lambda e: e.t)
    samples.sort(key=lambda s: s.t)
    run = Run(run_dir, meta, events, samples, bad_events + bad_samples, missing, problems)
    if run.ended is not None and samples and run.ended - samples[-1].t > SILENT_END_S:
        problems.append(
            f"{TELEMETRY} stops {run.ended - samples[-1].t:.0f} s before the end of the run "
            "(the recording hit its size cap, or could not be written)"
        )
    return run


def _load_meta(path: Path, problems: list[str]) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError) as exc:
        problems.append(f"{path.name} is unreadable ({exc}): title and times are inferred from the data")
        return {}
    if not isinstance(meta, dict):
        problems.append(f"{path.name} is not a JSON object: title and times are inferred from the data")
        return {}
    return meta


def _read_jsonl(path: Path, parse: Callable[[dict[str, Any]], T], problems: list[str]) -> tuple[list[T], int]:
    """Parse every line with ``parse`` (which raises ValueError/TypeError/KeyError on a bad record)."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        problems.append(f"{path.name} is unreadable: {exc}")
        return [], 0
    lines = text.split("\n")
    out: list[T] = []
    bad: list[int] = []
    truncated = False
    for no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise TypeError("not a JSON object")
            out.append(parse(record))
        except (ValueError, TypeError, KeyError):
            bad.append(no)
            truncated = truncated or (no == len(lines) and not text.endswith("\n"))
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (", ..." if len(bad) > 10 else "")
        note = "; the last one is truncated (the writer was killed)" if truncated else ""
        problems.append(f"{path.name}: {len(bad)} malformed line(s) skipped (line {shown}){note}")
    return out, len(bad)


def _num(v: Any) -> float | None:
    """A finite number, else None (JSON booleans are not numbers here)."""
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    return None


def _time(record: dict[str, Any]) -> float:
    t = _num(record.get("t"))
    if t is None:
        raise ValueError("no time")
    return t


def _severity(record: dict[str, Any]) -> str:
    """The severity name: ``"MEDIUM"``, or the kernel's ``3`` with ``severity_name``."""
    sev, name = record.get("severity"), record.get("severity_name")
    if isinstance(name, str):
        return name.upper()
    if isinstance(sev, str):
        return sev.upper()
    if isinstance(sev, int) and 1 <= sev <= len(SEVERITIES):
        return SEVERITIES[sev - 1]
    return "INFO"


def _event(r: dict[str, Any]) -> Event:
    topic = str(r.get("topic") or "ev.?")
    data = r.get("data")
    ident = r.get("id")
    name = r.get("name")
    return Event(
        t=_time(r),
        topic=topic,
        source=str(r.get("source") or topic.removeprefix("ev.")),
        id=ident if isinstance(ident, int) and not isinstance(ident, bool) else None,
        name=name if isinstance(name, str) and name else None,
        severity=_severity(r),
        message=str(r.get("message") or ""),
        data=data if isinstance(data, dict) else {},
    )


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _ints(v: Any) -> tuple[int, ...]:
    return tuple(x for x in v if isinstance(x, int)) if isinstance(v, list) else ()


def _core(c: dict[str, Any]) -> CoreSample:
    return CoreSample(
        id=int(c["id"]),
        state=str(c.get("state") or "UNKNOWN").upper(),
        temp_c=_num(c.get("temp_c")),
        load_pct=_num(c.get("load_pct")),
        services=tuple(str(s) for s in _list(c.get("services"))),
    )


def _service(s: dict[str, Any]) -> ServiceSample:
    return ServiceSample(
        name=str(s["name"]),
        state=str(s.get("state") or "UNKNOWN").upper(),
        cores=_ints(s.get("cores")),
        throttle=int(_num(s.get("throttle")) or 0),
        restarts=int(_num(s.get("restarts")) or 0),
        energy_mj=_num(s.get("energy_mj")),
        cpu_percent=_num(s.get("cpu_percent")),
    )


def _sample(r: dict[str, Any]) -> Sample:
    mode = r.get("mode")
    cores = [_core(c) for c in _list(r.get("cores")) if isinstance(c, dict) and isinstance(c.get("id"), int)]
    services = [_service(s) for s in _list(r.get("services")) if isinstance(s, dict) and "name" in s]
    return Sample(
        t=_time(r),
        mode=mode.upper() if isinstance(mode, str) and mode else None,
        junction_c=_num(r.get("junction_c")),
        trip_c=_num(r.get("trip_c")),
        power_w=_num(r.get("power_w")),
        budget_w=_num(r.get("budget_w")),
        cores=tuple(cores),
        services=tuple(services),
    )


def fmt_duration(seconds: float) -> str:
    """``42.3 s``, ``10 min 05 s``, ``2 h 03 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(round(seconds), 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"
