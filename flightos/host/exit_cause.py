"""Why a service process ended, in words: written by the dying process, read (and removed) by the kernel.

An exit code says little ("exited (code 70)"); the cause names the error, so the event a ground operator
reads says what broke ("sqlite3.DatabaseError: file is not a database").
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

MAX_CHARS = 400
"""A cause is one line for an event, not a traceback."""


def cause_file(runtime_dir: str | Path, name: str, incarnation: int) -> Path:
    """Where the process of one incarnation leaves its cause."""
    return Path(runtime_dir) / f"exit-{name}-{incarnation}.txt"


def record(runtime_dir: str | Path, name: str, incarnation: int, text: str) -> None:
    """Leave the cause for the kernel (best effort: a full disk must not turn a crash into another one)."""
    line = " ".join(text.split())[:MAX_CHARS]
    with contextlib.suppress(OSError):
        fd = os.open(cause_file(runtime_dir, name, incarnation), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(line)


def take(runtime_dir: str | Path, name: str, incarnation: int) -> str:
    """The cause an incarnation left, or ""; the file is removed so the runtime directory stays clean."""
    path = cause_file(runtime_dir, name, incarnation)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")[:MAX_CHARS]
    except OSError:
        return ""
    with contextlib.suppress(OSError):
        path.unlink()
    return text.strip()
