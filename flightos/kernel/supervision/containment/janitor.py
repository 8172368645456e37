"""The janitor: started by the kernel, it waits for the kernel's pipe to close, then kills every service tree.

It outlives a SIGKILLed kernel (the pipe closes however the kernel ends). It runs as a plain script
(``python -I -S .../janitor.py``) loading only ``cgroupfs.py`` beside it: a few MB, not the framework.
``--kernel=PID`` names its kernel (for ps), ``--group=DIR`` (repeatable) and ``--freezer=DIR`` the
kernel's groups; with ``--pgroups`` the kernel writes ``pg PID`` / ``unpg PID`` lines.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import sys
from pathlib import Path
from types import ModuleType
from typing import Any


def _cgroupfs() -> ModuleType:
    """``cgroupfs.py`` from beside this file, without importing the flightos package."""
    spec = importlib.util.spec_from_file_location("cgroupfs", Path(__file__).with_name("cgroupfs.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> None:
    """Read the kernel's pipe until it closes; then kill and remove everything named."""
    fs: Any = _cgroupfs()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # (it leads its own session too) a Ctrl-C is for the kernel
    groups = [Path(a.split("=", 1)[1]) for a in argv if a.startswith("--group=")]
    freezer = next((Path(a.split("=", 1)[1]) for a in argv if a.startswith("--freezer=")), None)
    pgroups: set[int] = set()
    buf = b""
    while True:
        try:
            chunk = os.read(0, 4096)
        except InterruptedError:
            continue
        except OSError:
            chunk = b""
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            op, _, arg = line.decode(errors="replace").partition(" ")
            if arg.isdigit():
                (pgroups.add if op == "pg" else pgroups.discard)(int(arg))
    for pgid in pgroups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    for g in groups:
        fs.kill_group(g, freezer)
    for g in [*groups, *([freezer] if freezer is not None else [])]:
        fs.remove_tree(g, 2.0)


if __name__ == "__main__":
    main(sys.argv[1:])
