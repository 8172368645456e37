"""Rows, budgets and verdicts; the printed table; the machine description; the JSON record."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import zmq

RESULTS_DIR = Path(__file__).resolve().parent / "results"

MEETS_GOAL = "meets goal"
WITHIN = "within budget"
OVER = "OVER BUDGET"
INFO = "info"
ERROR = "ERROR"
TIMES = "\N{MULTIPLICATION SIGN}"


@dataclass(frozen=True)
class Budget:
    """A limit on a figure's ratio or value (``op`` then ``limit``), with an optional goal."""

    on: Literal["ratio", "value"]
    op: Literal[">=", "<="]
    limit: float
    goal: float | None = None
    unit: str = ""

    def text(self) -> str:
        """The budget as printed, e.g. ``≥ 0.5x (goal 0.8x)`` with a multiplication sign."""
        sym = "≥" if self.op == ">=" else "≤"
        unit = TIMES if self.on == "ratio" else f" {self.unit}".rstrip()
        goal = f" (goal {num(self.goal)}{unit})" if self.goal is not None else ""
        return f"{sym} {num(self.limit)}{unit}{goal}"

    def meets(self, x: float, limit: float) -> bool:
        """Whether ``x`` satisfies this budget's comparison against ``limit``."""
        return x >= limit if self.op == ">=" else x <= limit

    def verdict(self, value: float | None, ratio: float | None) -> str:
        """Meets goal, within budget, over budget, or error when the figure is missing."""
        x = ratio if self.on == "ratio" else value
        if x is None:
            return ERROR
        if self.goal is not None and self.meets(x, self.goal):
            return MEETS_GOAL
        return WITHIN if self.meets(x, self.limit) else OVER


@dataclass
class Row:
    """One figure of the table, with the samples its median came from."""

    figure: str
    value: float | None
    unit: str
    baseline: float | None = None
    ratio: float | None = None
    budget: Budget | None = None
    note: str = ""
    samples: dict[str, Any] = field(default_factory=dict)
    group: str = ""
    verdict_override: str = ""
    budget_label: str = ""
    """The budget as text when it is not a Budget (rows from other benchmark modules)."""

    @property
    def budget_text(self) -> str:
        """The budget as printed."""
        return self.budget.text() if self.budget else (self.budget_label or "—")

    @property
    def verdict(self) -> str:
        """The verdict against the budget (``info`` when the figure has none)."""
        if self.verdict_override:
            return self.verdict_override
        if self.value is None:
            return ERROR
        return self.budget.verdict(self.value, self.ratio) if self.budget else INFO

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready record of the row."""
        return {
            "group": self.group,
            "figure": self.figure,
            "value": self.value,
            "unit": self.unit,
            "baseline": self.baseline,
            "ratio": self.ratio,
            "budget": self.budget_text if self.budget_text != "—" else None,
            "verdict": self.verdict,
            "note": self.note,
            "samples": self.samples,
        }


def error_row(group: str, exc: BaseException) -> Row:
    """A row saying a figure could not be measured, and why."""
    return Row(f"{group}: not measured", None, "", note=f"{type(exc).__name__}: {exc}", group=group)


def num(x: float | None) -> str:
    """A compact number: 3 significant digits, thousands as k, millions as M."""
    if x is None:
        return "—"
    ax = abs(x)
    if ax >= 1e6:
        return f"{x / 1e6:.3g}M"
    if ax >= 1e4:
        return f"{x / 1e3:.3g}k"
    if ax >= 100:
        return f"{x:.0f}"
    return f"{x:.3g}"


def fmt_ratio(r: float | None) -> str:
    """A ratio such as ``0.52x`` (with a multiplication sign), or a dash."""
    return f"{r:.2f}{TIMES}" if r is not None else "—"


def fmt(x: float | None, unit: str) -> str:
    """A value with its unit, for the table."""
    if x is None:
        return "—"
    return f"{num(x)} {unit}".rstrip()


def _cells(row: Row) -> list[str]:
    """The printed cells of one row."""
    return [
        row.figure,
        fmt(row.value, row.unit),
        fmt(row.baseline, row.unit),
        fmt_ratio(row.ratio),
        row.budget_text,
        row.verdict,
    ]


def table(rows: list[Row]) -> str:
    """The results as an aligned text table, then the notes."""
    head = ["figure", "value", "baseline", "ratio", "budget", "verdict"]
    cells = [head, *(_cells(r) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  - {r.figure}: {r.note}" for r in rows if r.note]
    return "\n".join(lines + (["", "notes:", *notes] if notes else []))


def markdown(rows: list[Row]) -> str:
    """The results as a Markdown table, the form of the README's benchmark section."""
    head = "| figure | value | baseline (same run) | ratio | budget | verdict |\n|---|---|---|---|---|---|\n"
    return head + "".join("| " + " | ".join(c.replace("|", "\\|") for c in _cells(r)) + " |\n" for r in rows)


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or the platform's guess)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "cpu model", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
    }


def machine_line(m: dict[str, Any]) -> str:
    """The machine on one line."""
    return (
        f"machine: nproc={m['nproc']} (usable {m['usable_cpus']}), cpu={m['cpu_model']}, "
        f"Python {m['python']} ({m['implementation']}), Linux {m['kernel']}, "
        f"pyzmq {m['pyzmq']} / libzmq {m['libzmq']}"
    )


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Write the results document, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
