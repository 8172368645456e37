"""``python -m flightos.reference topics|testing``: print docs/topics.md or docs/testing.md."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    """Print the page named by the one argument; exit 2 on anything else."""
    if argv not in (["topics"], ["testing"]):
        print("usage: python -m flightos.reference topics|testing", file=sys.stderr)
        return 2
    if argv == ["topics"]:
        from flightos.reference.topics import render_markdown
    else:
        from flightos.reference.testing import render_markdown
    sys.stdout.write(render_markdown())
    return 0


sys.exit(main(sys.argv[1:]))
