"""``flightos jobs`` exactly as ``flightos.cli.main`` runs it, registered here if main.py does not yet.

``python -m tests.jobs.jobs_cli [--runtime-dir D] [--json] jobs ACTION ...``
"""

from __future__ import annotations

import argparse
from typing import Any

from flightos.cli import jobs as jobs_cli
from flightos.cli import main as cli_main


def _subparsers(p: argparse.ArgumentParser) -> Any:
    return next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))


def main() -> None:
    original_build, original_dispatch = cli_main.build_parser, cli_main.dispatch
    if "jobs" not in _subparsers(original_build()).choices:

        def build_parser() -> argparse.ArgumentParser:
            p = original_build()
            jobs_cli.add_parsers(_subparsers(p))
            return p

        def dispatch(args: argparse.Namespace) -> int:
            return jobs_cli.run_jobs(args) if args.cmd == "jobs" else original_dispatch(args)

        cli_main.build_parser, cli_main.dispatch = build_parser, dispatch  # type: ignore[assignment]
    cli_main.main()


if __name__ == "__main__":
    main()
