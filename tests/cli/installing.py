"""What the install tests share: the CLI's own argument parser for ``install``/``uninstall``."""

from __future__ import annotations

import argparse

from flightos.cli import install


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--json", action="store_true")
    sub = p.add_subparsers(dest="cmd")
    install.add_parsers(sub)
    return p.parse_args(list(argv))
