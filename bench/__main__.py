"""``python -m bench``: run every figure (or ``--only`` some), print one table, write results JSON."""

from __future__ import annotations

import argparse
import importlib
import inspect
import signal
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from bench import burst, goals, ground, idle, latency, link, migration, mqtt_pubsub, pubsub, rtt, runtime, supervision
from bench.report import RESULTS_DIR, Budget, Row, error_row, machine, machine_line, markdown, table, write_json

Figure = Callable[[bool], list[Row]]
SKIPPED: list[str] = []


def _field(obj: Any, *names: str) -> Any:
    """The first of ``names`` that a dict or object carries."""
    for n in names:
        v = obj.get(n) if isinstance(obj, dict) else getattr(obj, n, None)
        if v is not None:
            return v
    return None


def as_row(obj: Any) -> Row:
    """A Row from what another benchmark module returned: a Row, ``(name, value, unit)``, a dict or object."""
    if isinstance(obj, Row):
        obj.group = obj.group or "hal"
        return obj
    if isinstance(obj, (tuple, list)):
        name, value, unit = [*obj, None, None][:3]
        return Row(str(name), float(value) if value is not None else None, str(unit or ""), group="hal")
    budget = _field(obj, "budget")
    ratio = _field(obj, "ratio")
    return Row(
        str(_field(obj, "figure", "name") or "hal"),
        _field(obj, "value"),
        str(_field(obj, "unit") or ""),
        _field(obj, "baseline"),
        float(ratio) if ratio is not None else None,
        budget if isinstance(budget, Budget) else None,
        str(_field(obj, "note") or ""),
        dict(_field(obj, "samples") or {}),
        "hal",
        str(_field(obj, "verdict") or ""),
        "" if budget is None or isinstance(budget, Budget) else str(budget),
    )


def _rows_of(module: str, quick: bool) -> list[Row]:
    """Rows of a benchmark module that returns (name, value, unit) tuples."""
    mod = importlib.import_module(module)
    return [as_row(r) for r in (mod.run(quick=quick) or [])]


def run_hal(quick: bool) -> list[Row]:
    """Rows of ``bench.hal_bench.run()``, if that module exists (it is maintained separately)."""
    try:
        mod = importlib.import_module("bench.hal_bench")
    except ModuleNotFoundError as exc:
        if exc.name != "bench.hal_bench":
            raise
        SKIPPED.append("hal: bench/hal_bench.py is not present")
        return []
    fn = getattr(mod, "run", None)
    if not callable(fn):
        SKIPPED.append("hal: bench/hal_bench.py has no run()")
        return []
    result = fn(quick=quick) if "quick" in inspect.signature(fn).parameters else fn()
    return [as_row(r) for r in (result or [])]


FIGURES: dict[str, Figure] = {
    "pubsub": pubsub.run,
    "mqtt": mqtt_pubsub.run,
    "latency": latency.run,
    "rtt": rtt.run,
    "burst": burst.run,
    "crash": supervision.run_crash,
    "hang": supervision.run_hang,
    "idle": idle.run,
    "migration": migration.run,
    "ground": ground.run,
    "link": link.run,
    "hal": run_hal,
    "sar": lambda quick=False: _rows_of("bench.sar_bench", quick),
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="smaller counts (under a minute)")
    p.add_argument("--markdown", action="store_true", help="also print the table in Markdown (the README's form)")
    p.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        choices=sorted(FIGURES),
        help=f"run only this figure (repeatable): {', '.join(FIGURES)}",
    )
    return p.parse_args(argv)


def run_figure(name: str, quick: bool) -> list[Row]:
    """One figure's rows; a failure becomes an error row (the bench itself never fails on it)."""
    t0 = time.monotonic()
    try:
        rows = FIGURES[name](quick)
    except Exception as exc:
        traceback.print_exc()
        rows = [error_row(name, exc)]
    print(f"[bench] {name}: {len(rows)} rows in {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
    return rows


def _interrupt(_signum: int, _frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so every figure's ``finally`` stops what it started (brokers, runtimes)."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the chosen figures, print the table, write ``bench/results/latest.json``."""
    args = parse(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    names = [n for n in FIGURES if not args.only or n in args.only]
    started, t0 = datetime.now(timezone.utc), time.monotonic()
    m = machine()
    rows = [row for name in names for row in run_figure(name, args.quick)]
    stop = runtime.shutdown_row()
    if stop is not None:
        rows.append(stop)
    took = time.monotonic() - t0
    print(machine_line(m))
    print(
        f"run: {'quick' if args.quick else 'full'}, figures {', '.join(names)}, {took:.0f} s; "
        "ratios are against baselines measured in this run (medians of interleaved repetitions)\n"
    )
    print(table(rows))
    if args.markdown:
        print("\n" + markdown(rows))
    for s in SKIPPED:
        print(f"skipped: {s}")
    judged = goals.rows()
    print("\nissue 15 goals, from the figures of this run:\n")
    print(goals.table(judged))
    out = RESULTS_DIR / "latest.json"
    write_json(
        out,
        {
            "machine": m,
            "options": {"quick": args.quick, "only": args.only},
            "started_utc": started.isoformat(),
            "duration_s": round(took, 1),
            "figures": names,
            "skipped": SKIPPED,
            "rows": [r.to_json() for r in rows],
            "goals": [g.to_json() for g in judged],
        },
    )
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
