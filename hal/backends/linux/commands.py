"""Board commands (``vcgencmd``, ``nvpmodel``) run on background threads, their last answer cached.

The kernel reads the board on its event loop; a command that hangs until its timeout must not
stall that loop. ``read()`` therefore never waits for a command, except for first answers during
the cache's first ``first_wait_s`` (one budget shared by every command, so four hung commands
cost the first read 0.5 s, not 2 s).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hal.fs import Runner


@dataclass(frozen=True)
class CommandResult:
    """The last finished run of a command: stdout if it exited 0, how old that is, and whether one is running."""

    stdout: str | None
    age_s: float | None  # None: no run has finished yet
    running_s: float | None  # seconds the current run has taken so far; None if none is running
    error: str = ""

    @property
    def pending(self) -> bool:
        """True while no run of the command has finished yet."""
        return self.age_s is None


class _Entry:
    def __init__(self) -> None:
        self.code: int | None = None
        self.out = ""
        self.err = ""
        self.finished_at: float | None = None
        self.started_at: float | None = None
        self.done = threading.Event()


class CommandCache:
    """Runs each command at most once per ``refresh_s``, off the caller's thread; hands out the last answer."""

    def __init__(
        self,
        runner: Runner,
        *,
        refresh_s: float = 1.0,
        first_wait_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runner = runner
        self.refresh_s = refresh_s
        self.first_wait_s = first_wait_s
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, ...], _Entry] = {}
        self._first_get: float | None = None

    def get(self, argv: Sequence[str]) -> CommandResult:
        """The last answer of ``argv``; starts a background run when the answer is ``refresh_s`` old."""
        key = tuple(argv)
        now = self.clock()
        with self._lock:
            if self._first_get is None:
                self._first_get = now
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
            running = entry.started_at is not None and not entry.done.is_set()
            due = entry.started_at is None or now - entry.started_at >= self.refresh_s
            if not running and due:
                entry.done.clear()
                entry.started_at = now
                threading.Thread(target=self._run, args=(key, entry), name=f"hal-cmd-{key[0]}", daemon=True).start()
        if entry.finished_at is None and self._first_get is not None:
            entry.done.wait(max(0.0, self._first_get + self.first_wait_s - self.clock()))
        return self._result(entry)

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no command is running (for tests and tools, never for read()); False on timeout."""
        deadline = self.clock() + timeout_s
        with self._lock:
            entries = list(self._entries.values())
        return all(entry.done.wait(max(0.0, deadline - self.clock())) for entry in entries)

    def _run(self, key: tuple[str, ...], entry: _Entry) -> None:
        try:
            code, out, err = self.runner(key)
        except Exception as exc:  # a runner is user code: a crash is a failed run, never a dead thread
            code, out, err = 1, "", f"{key[0]}: {exc!r}"
        with self._lock:
            entry.code, entry.out, entry.err = code, out, err
            entry.finished_at = self.clock()
            entry.done.set()

    def _result(self, entry: _Entry) -> CommandResult:
        now = self.clock()
        with self._lock:
            running = entry.started_at is not None and not entry.done.is_set()
            running_s = now - entry.started_at if running and entry.started_at is not None else None
            if entry.finished_at is None:
                return CommandResult(None, None, running_s)
            stdout = entry.out if entry.code == 0 else None
            error = "" if entry.code == 0 else (entry.err.strip() or f"exit status {entry.code}")
            return CommandResult(stdout, max(0.0, now - entry.finished_at), running_s, error)
