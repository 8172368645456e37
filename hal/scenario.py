"""Scenarios: a TOML timeline of faults and environment changes applied to a board (reproducible HIL).

``load(path)`` validates a file (errors name the file, the event and the key), ``Scenario.due``
lists the events of a time window, ``Scenario.apply`` does one, and ``ScenarioRunner.advance``
applies everything that has come due; the kernel calls it from its telemetry loop. The board is
reached through capabilities, never a backend: ``hal.FaultInjection`` does the faults, and
``SimulatedClock`` gives simulated time; a board without them is refused by name.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from hal.board import Board
from hal.errors import HalError
from hal.injection import FaultInjection, fault_injection

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10
    import tomli as tomllib

TIME_BASES = ("sim", "wall")
SCENARIO_KEYS = ("name", "description", "time")
EVENT_KEYS = ("at", "action", "note")


class ScenarioError(HalError, ValueError):
    """A scenario file is wrong; the message reads ``<file>: event[<i>].<key>: <what was expected>``."""


# ---- argument checkers: (where, value) -> converted value, raising ScenarioError ----------------
def _fail(where: str, expected: str, value: Any) -> ScenarioError:
    return ScenarioError(f"{where}: expected {expected}, got {value!r}")


def _core(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(where, "an integer core id", value)
    return value


def _cores(where: str, value: Any) -> list[int]:
    if not isinstance(value, list) or not value:
        raise _fail(where, "a non-empty list of integer core ids", value)
    return [_core(f"{where}[{i}]", v) for i, v in enumerate(value)]


def _count(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(where, "an integer >= 1", value)
    return value


def _address(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(where, "an integer word address >= 0", value)
    return value


def _bits(where: str, value: Any) -> list[int]:
    if not isinstance(value, list) or not value:
        raise _fail(where, "a non-empty list of bit numbers of one word, e.g. [0, 8]", value)
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise _fail(f"{where}[{i}]", "a bit number >= 0", v)
    return list(value)


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(where, "a number", value)
    return float(value)


def _positive(where: str, value: Any) -> float:
    number = _number(where, value)
    if number <= 0:
        raise _fail(where, "a number > 0", value)
    return number


def _pct(where: str, value: Any) -> float:
    number = _number(where, value)
    if not 0.0 <= number <= 100.0:
        raise _fail(where, "a load between 0 and 100 (%)", value)
    return number


def _on(where: str, value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if value == "auto":
        return None
    raise _fail(where, "true, false or 'auto'", value)


def _text(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(where, "a non-empty string", value)
    return value


Check = Callable[[str, Any], Any]


@dataclass(frozen=True)
class ActionSpec:
    """The arguments an action takes: required ones, optional ones, and a one-line doc."""

    required: dict[str, Check]
    optional: dict[str, Check]
    doc: str


#: Every action a scenario event may name, with its arguments.
ACTIONS: dict[str, ActionSpec] = {
    "seu": ActionSpec(
        {},
        {"count": _count, "address": _address, "bits": _bits},
        "flip `count` bits (all in word `address` if given), or exactly the bit numbers `bits`",
    ),
    "sefi": ActionSpec({}, {"core": _core}, "hang `core` (a random running core if omitted)"),
    "reset_core": ActionSpec({"core": _core}, {}, "reset `core` (clears a SEFI hang)"),
    "sel": ActionSpec({}, {"delta_ma": _positive}, "latch-up current step of `delta_ma` mA (default 200)"),
    "power_cycle": ActionSpec({}, {"reason": _text}, "cut and restore power"),
    "core_fail": ActionSpec({"core": _core}, {}, "permanent failure of `core`"),
    "thermal_step": ActionSpec({}, {"delta_w": _number, "delta_c": _number}, "add `delta_w` W heat, step `delta_c` C"),
    "saa": ActionSpec({"on": _on}, {}, "force inside (true) / outside (false) the SAA; 'auto' follows the orbit"),
    "sun": ActionSpec({"on": _on}, {}, "force sunlight (true) / eclipse (false); 'auto' follows the orbit"),
    "load": ActionSpec({"pct": _pct}, {"core": _core, "cores": _cores}, "set `core`/`cores` to `pct` % load"),
}


#: The ``hal.FaultInjection`` fault each injecting action is (``load`` sets core loads instead).
FAULT_OF = {
    "seu": "seu", "sefi": "sefi", "reset_core": "reset", "sel": "sel", "power_cycle": "power-cycle",
    "core_fail": "core-fail", "thermal_step": "thermal-step", "saa": "saa", "sun": "sun",
}  # fmt: skip


@runtime_checkable
class SimulatedClock(Protocol):
    """A board whose time is simulated: what ``time = "sim"`` counts, and what ``run_until`` steps."""

    @property
    def sim_time(self) -> float:
        """Seconds of simulated time since the board was opened."""

    def advance_to(self, t_s: float) -> None:
        """Advance simulated time to ``t_s``, running the board's physics and faults."""


@dataclass(frozen=True)
class Event:
    """One timeline entry: when (seconds in the scenario's time base), what, with which arguments."""

    index: int
    at: float
    action: str
    args: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def label(self) -> str:
        """``event[3] sefi at 300 s``."""
        return f"event[{self.index}] {self.action} at {self.at:g} s"


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: name, description, time base and events sorted by time (file order on ties)."""

    name: str
    description: str
    time: str
    events: list[Event]
    source: str = "<scenario>"

    def due(self, t_from: float, t_to: float) -> list[Event]:
        """Events with ``t_from <= at < t_to``, by time then file order (windows never overlap)."""
        return [e for e in self.events if t_from <= e.at < t_to]

    @property
    def end_s(self) -> float:
        """Time of the last event (0 for an empty scenario)."""
        return self.events[-1].at if self.events else 0.0

    def check(self, board: Board) -> None:
        """Raise ScenarioError, naming the board, if it cannot run this scenario: it has no fault injection,
        no simulated time for ``time = "sim"``, or not a core an event names."""
        named = f"the {board.identity.backend!r} board ({board.identity.model})"
        if self.events and not isinstance(board, FaultInjection):
            raise ScenarioError(
                f"{self.source}: {self.events[0].label} needs fault injection, which {named} "
                "does not have: scenarios drive a simulated board (hal.backend = 'sim')"
            )
        if self.time == "sim" and not isinstance(board, SimulatedClock):
            raise ScenarioError(
                f"{self.source}: scenario.time: 'sim' counts simulated time, which {named} "
                "does not have (time = 'wall' counts seconds since the scenario started)"
            )
        cores = board.core_ids()
        for e in self.events:
            wanted = list(e.args.get("cores", []))
            if "core" in e.args:
                wanted.append(e.args["core"])
            for core in wanted:
                if core not in cores:
                    raise ScenarioError(
                        f"{self.source}: event[{e.index}].core: core {core} does not exist on this board "
                        f"(cores {cores[0]}..{cores[-1]})"
                    )

    def apply(self, event: Event, board: Board) -> str:
        """Do one event on the board; return a one-line description (a failure is described, not raised)."""
        try:
            what = _apply(event, board.core_ids(), fault_injection(board), _board_time(board))
        except HalError as exc:
            return f"{event.label}: failed: {exc}"
        return f"{event.label}: {what}"


def _board_time(board: Board) -> float:
    """The board's simulated time (0 on a board without one: its timeline is then read from the start)."""
    return board.sim_time if isinstance(board, SimulatedClock) else 0.0


def _apply(event: Event, cores: list[int], board: FaultInjection, now: float) -> str:
    a = event.args
    action = event.action
    before = {c: board.core_state(c) for c in cores} if action == "sefi" else {}
    if action in FAULT_OF:
        board.inject(FAULT_OF[action], {"reason": "scenario", **a} if action == "power_cycle" else a)
    if action == "seu":
        count = len(a["bits"]) if "bits" in a else int(a.get("count", 1))
        address = a.get("address")
        where = f"in word {address}" if address is not None else "in random words"
        return f"{count} SEU bit flip(s) {where}"
    if action == "sefi":
        hung = [c for c in cores if before[c] != "hung" and board.core_state(c) == "hung"]
        if "core" in a and not hung:
            return f"SEFI on core {a['core']} (core is {board.core_state(a['core'])}: no effect)"
        return f"SEFI: core {hung[0] if hung else a.get('core')} hung"
    if action == "reset_core":
        return f"core {a['core']} reset (now {board.core_state(a['core'])})"
    if action == "sel":
        delta = float(a.get("delta_ma", 200.0))
        latched = [e for e in board.events_since(now) if e.kind == "sel"]
        total = latched[-1].detail.get("total_ma") if latched else None
        return f"latch-up: +{delta:g} mA" + (f" (total {total:g} mA)" if isinstance(total, (int, float)) else "")
    if action == "power_cycle":
        return "power cycled"
    if action == "core_fail":
        return f"core {a['core']} failed permanently"
    if action == "thermal_step":
        delta_w = a.get("delta_w")
        delta_c = a.get("delta_c")
        parts = [f"{delta_w:+g} W" if delta_w is not None else "", f"{delta_c:+g} C" if delta_c is not None else ""]
        return "thermal step " + " ".join(p for p in parts if p)
    if action == "saa":
        return {True: "SAA forced on", False: "SAA forced off", None: "SAA follows the orbit"}[a["on"]]
    if action == "sun":
        return {True: "sunlight forced", False: "eclipse forced", None: "sun follows the orbit"}[a["on"]]
    if action == "load":
        targets = list(a["cores"]) if "cores" in a else [a["core"]]
        for core in targets:
            board.set_load(core, a["pct"])
        text = f"load {a['pct']:g} % on core(s) {', '.join(str(c) for c in targets)}"
        if not board.load_from_services:
            text += " (no effect on readings: hal.load_source is not 'sim')"
        return text
    raise HalError(f"unknown action {action!r}")  # unreachable: load() rejects it


# ---- loading -------------------------------------------------------------------------------------
def load(path: str | os.PathLike[str]) -> Scenario:
    """Read and validate a scenario file; raise ScenarioError naming the file, event and key."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{source}: cannot read: {exc}") from None
    return loads(text, source)


def loads(text: str, source: str = "<scenario>") -> Scenario:
    """Validate scenario TOML given as text; ``source`` names it in errors."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not valid TOML: {exc}") from None
    return from_dict(raw, source)


def from_dict(raw: Mapping[str, Any], source: str = "<scenario>") -> Scenario:
    """Validate an already-parsed scenario table."""
    unknown = sorted(set(raw) - {"scenario", "event"})
    if unknown:
        raise ScenarioError(f"{source}: {unknown[0]}: unknown table (known: [scenario], [[event]])")
    head = raw.get("scenario", {})
    if not isinstance(head, Mapping):
        raise ScenarioError(f"{source}: scenario: expected a [scenario] table")
    extra = sorted(set(head) - set(SCENARIO_KEYS))
    if extra:
        raise ScenarioError(f"{source}: scenario.{extra[0]}: unknown key (known: {', '.join(SCENARIO_KEYS)})")
    name = head.get("name", Path(source).stem)
    if not isinstance(name, str) or not name:
        raise _fail(f"{source}: scenario.name", "a non-empty string", name)
    description = head.get("description", "")
    if not isinstance(description, str):
        raise _fail(f"{source}: scenario.description", "a string", description)
    base = head.get("time", "sim")
    if base not in TIME_BASES:
        raise _fail(f"{source}: scenario.time", "'sim' or 'wall'", base)
    items = raw.get("event", [])
    if not isinstance(items, list):
        raise ScenarioError(f"{source}: event: expected [[event]] entries (an array of tables)")
    events = [_event(source, i, item) for i, item in enumerate(items)]
    events.sort(key=lambda e: (e.at, e.index))
    return Scenario(name=name, description=description, time=str(base), events=events, source=source)


def _event(source: str, index: int, item: Any) -> Event:
    where = f"{source}: event[{index}]"
    if not isinstance(item, Mapping):
        raise ScenarioError(f"{where}: expected a table")
    if "at" not in item:
        raise ScenarioError(f"{where}.at: missing: every event says when it happens (seconds)")
    at = _number(f"{where}.at", item["at"])
    if at < 0:
        raise _fail(f"{where}.at", "a time >= 0 (seconds)", item["at"])
    action = item.get("action")
    if action is None:
        raise ScenarioError(f"{where}.action: missing (one of {', '.join(ACTIONS)})")
    if action not in ACTIONS:
        raise _fail(f"{where}.action", "one of " + ", ".join(ACTIONS), action)
    spec = ACTIONS[action]
    allowed = set(EVENT_KEYS) | set(spec.required) | set(spec.optional)
    for key in item:
        if key not in allowed:
            known = ", ".join([*spec.required, *spec.optional]) or "none"
            raise ScenarioError(f"{where}.{key}: unknown key for action {action!r} (its keys: {known})")
    note = item.get("note", "")
    if not isinstance(note, str):
        raise _fail(f"{where}.note", "a string", note)
    args: dict[str, Any] = {}
    for key, check in spec.required.items():
        if key not in item:
            raise ScenarioError(f"{where}.{key}: missing: action {action!r} needs it")
        args[key] = check(f"{where}.{key}", item[key])
    for key, check in spec.optional.items():
        if key in item:
            args[key] = check(f"{where}.{key}", item[key])
    if action == "thermal_step" and not args:
        raise ScenarioError(f"{where}.delta_w: action 'thermal_step' needs delta_w and/or delta_c")
    if action == "load" and ("core" in args) == ("cores" in args):
        raise ScenarioError(f"{where}.core: action 'load' needs exactly one of core or cores")
    return Event(index=index, at=at, action=action, args=args, note=note)


# ---- running -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Applied:
    """One applied event: when it was due, when it was applied, and what happened."""

    event: Event
    t_s: float
    description: str


class ScenarioRunner:
    """Applies a scenario's events to a board that injects faults as time passes; ``advance(now)`` from any loop.

    ``now`` is in the scenario's time base: seconds of simulated time (``board.sim_time``) for
    ``time = "sim"``, seconds since the runner started for ``time = "wall"``. Omit it and the
    runner reads the right clock itself. Each event is applied once, in order.
    """

    def __init__(
        self,
        scenario: Scenario,
        board: Board,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        scenario.check(board)  # ScenarioError naming the board if it lacks fault injection or simulated time
        self.scenario = scenario
        self.board = board
        self._sim = board if isinstance(board, SimulatedClock) else None
        self._clock = clock
        self._start = clock()
        self._next = 0
        self.applied: list[Applied] = []

    def now(self) -> float:
        """The current time in the scenario's time base."""
        if self.scenario.time == "sim":
            return self._simulated().sim_time
        return self._clock() - self._start

    def _simulated(self) -> SimulatedClock:
        """The board's simulated clock (``check`` refused a 'sim' scenario on a board without one)."""
        if self._sim is None:
            raise HalError(f"the {self.board.identity.backend!r} board has no simulated time")
        return self._sim

    @property
    def done(self) -> bool:
        """True once every event has been applied."""
        return self._next >= len(self.scenario.events)

    @property
    def pending(self) -> list[Event]:
        """Events not applied yet."""
        return self.scenario.events[self._next :]

    def advance(self, now_s: float | None = None) -> list[str]:
        """Apply every event with ``at <= now_s`` not yet applied; return their descriptions."""
        now = self.now() if now_s is None else now_s
        out: list[str] = []
        events = self.scenario.events
        while self._next < len(events) and events[self._next].at <= now:
            event = events[self._next]
            self._next += 1
            text = self.scenario.apply(event, self.board)
            self.applied.append(Applied(event, now, text))
            out.append(text)
        return out

    def run_until(self, t_s: float) -> list[str]:
        """Sim time only: step the board to each event's exact time, apply it, and end at ``t_s``."""
        if self.scenario.time != "sim":
            raise HalError("run_until drives simulated time: the scenario must have time = 'sim'")
        sim = self._simulated()
        out: list[str] = []
        events = self.scenario.events
        while self._next < len(events) and events[self._next].at <= t_s:
            at = events[self._next].at
            if at > sim.sim_time:
                sim.advance_to(at)
            out += self.advance(max(at, sim.sim_time))
        if t_s > sim.sim_time:
            sim.advance_to(t_s)
        return out
