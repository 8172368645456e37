"""``flightos report RUN [--out DIR]``: ready to be wired into the ``flightos`` CLI.

    r = sub.add_parser("report", help=HELP); add_arguments(r)     # in build_parser
    if args.cmd == "report": return run(args)                       # in dispatch

``python -m flightos.report RUN`` runs it on its own.
"""

from __future__ import annotations

import argparse
import json
import sys

from flightos.report import render
from flightos.report.model import ReportError, fmt_duration

HELP = "render the timeline of a recorded run as report.png and report.html"
OK, FAILED = 0, 1  # flightos.cli.exit_codes: OK, COMMAND_FAILED


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``flightos report``."""
    p.add_argument(
        "run",
        metavar="RUN",
        nargs="?",
        default="latest",
        help="a run directory, a run id, or 'latest' (default) among the target's recorded runs",
    )
    p.add_argument("--out", metavar="DIR", help="where to write report.png and report.html (default: RUN)")


def run(args: argparse.Namespace) -> int:
    """Render the report; print where it is (or the summary with ``--json``). ReportError -> exit 1."""
    try:
        result = render(args.run, args.out)
    except ReportError as exc:
        print(f"flightos: report: {exc}", file=sys.stderr)
        return FAILED
    s = result.summary
    if getattr(args, "json", False):
        print(json.dumps({"png": str(result.png), "html": str(result.html), "summary": s}, indent=2))
        return OK
    print(
        f"run {s['run_id']}: {fmt_duration(s['duration_s'] or 0.0)}"
        f"{'' if s['complete'] else ' (incomplete)'}, {s['events']} events, {s['samples']} samples"
    )
    for problem in s["problems"]:
        print(f"  warning: {problem}")
    print(f"  {result.png}\n  {result.html}")
    return OK


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m flightos.report", description=HELP)
    p.add_argument("--json", action="store_true", help="print the paths and the summary as JSON")
    add_arguments(p)
    sys.exit(run(p.parse_args(argv)))
