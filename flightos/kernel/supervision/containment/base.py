"""What every containment backend offers the supervisor, and the janitor that outlives the kernel."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from flightos.host.spawn_spec import SpawnSpec


@dataclass(frozen=True)
class Usage:
    """A service's whole tree: cumulative CPU seconds, memory in use and tasks (processes or threads)."""

    cpu_s: float
    memory_bytes: int
    tasks: int


def memory_reason(mb: int) -> str:
    """The exit reason of a service killed for its memory."""
    return f"killed by the memory limit (memory_mb={mb})"


def tasks_reason(tasks: int, refused: int = 0) -> str:
    """The exit reason of a service killed for its task count."""
    extra = f"; {refused} forks refused" if refused else ""
    return f"killed at the task limit (tasks={tasks}{extra})"


class Containment:
    """No containment (a service is its process alone); the base of the real backends.

    The supervisor calls prepare() before a spawn (the returned spec tells the child what to join),
    started() with the pid, kill_tree() to kill a service with everything it started, exited() after
    its main process ended (kills what is left, returns a limit breach or None), poll() to find a
    breach while it runs, usage() for telemetry, and close() at shutdown.
    """

    kind = "none"

    def __init__(self) -> None:
        self._names: dict[int, SpawnSpec] = {}
        self._breach: dict[int, str] = {}
        self._janitor: subprocess.Popen[bytes] | None = None
        self._janitor_w: int | None = None

    def describe(self) -> str:
        """One line for the log: the backend and where its groups are."""
        return self.kind

    # ---- per service -------------------------------------------------------------------------
    def prepare(self, spec: SpawnSpec) -> SpawnSpec:
        """Make the service's group; return the spec its child applies (new session, groups, rlimits)."""
        return spec

    def started(self, spec: SpawnSpec, pid: int) -> None:
        """The service process of ``spec`` is ``pid``."""
        self._names[pid] = spec

    def discard(self, spec: SpawnSpec) -> None:
        """The spawn of a prepared spec failed: free what prepare() made."""

    def kill_tree(self, pid: int) -> None:
        """SIGKILL a service process and everything it started."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def exited(self, pid: int) -> str | None:
        """The main process ended: kill the rest of its tree, free its group; the limit it broke, if any."""
        spec = self._names.pop(pid, None)
        reason = self._breach.pop(pid, None)
        if spec is not None:
            reason = self._release(spec, pid) or reason
        return reason

    def _release(self, spec: SpawnSpec, pid: int) -> str | None:
        """Kill what is left of an exited service's tree and free its group; a limit it broke."""
        return None

    def poll(self, pid: int) -> str | None:
        """A limit the running service has broken (reported once per incarnation), or None."""
        return None

    def flag(self, pid: int, reason: str) -> None:
        """Remember why a service is being killed, for its exit event."""
        self._breach.setdefault(pid, reason)

    def usage(self, pid: int) -> Usage | None:
        """CPU, memory and tasks of a service's whole tree (None: measure the process alone)."""
        return None

    def close(self) -> None:
        """Kill every service tree still there and remove the groups; let the janitor go."""
        for pid in list(self._names):
            self.kill_tree(pid)
            self.exited(pid)
        if self._janitor_w is not None:
            os.close(self._janitor_w)
            self._janitor_w = None
        if self._janitor is not None:
            try:
                self._janitor.wait(5)
            except subprocess.TimeoutExpired:
                self._janitor.kill()
                self._janitor.wait()
            self._janitor = None

    # ---- the janitor -------------------------------------------------------------------------
    def start_janitor(self, args: list[str]) -> None:
        """Start the process that kills every service tree when this kernel dies, however it dies."""
        r, w = os.pipe()
        try:
            self._janitor = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-S",
                    str(Path(__file__).with_name("janitor.py")),
                    f"--kernel={os.getpid()}",
                    *args,
                ],
                stdin=r,
                stdout=subprocess.DEVNULL,
                close_fds=True,
                start_new_session=True,
            )  # a signal for the kernel's process group must not take it first
        except OSError:
            os.close(w)
            return
        finally:
            os.close(r)
        self._janitor_w = w

    def _tell(self, line: str) -> None:
        if self._janitor_w is None:
            return
        try:
            os.write(self._janitor_w, (line + "\n").encode())
        except OSError:
            os.close(self._janitor_w)
            self._janitor_w = None
