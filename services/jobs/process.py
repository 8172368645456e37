"""A running job as the service sees it: start it, meter its CPU time, signal and reap it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

STARTUP_FILE = "startup_cpu_s"
"""Written by the runner just before the processor is called: the CPU-seconds its start-up took."""
STARTUP_ALLOWANCE_CPU_S = 5.0
"""The most CPU-seconds of start-up (interpreter, imports, loading the processor) not charged to the budget:
about 0.1 CPU-s on a PC, 0.8 on a board 6-10x slower; past this, start-up counts as the job's own work."""


class JobProcess:
    """One job's process (a session and process group of its own, so its descendants are signalled too)."""

    def __init__(self, popen: subprocess.Popen[bytes], job_dir: Path | None = None) -> None:
        self.popen = popen
        self.startup_file = job_dir / STARTUP_FILE if job_dir is not None else None
        self.startup_cpu_s: float | None = None
        """CPU-seconds the job's start-up took (None until the runner reports it)."""
        self.pid = popen.pid
        self._ps: psutil.Process | None
        try:
            self._ps = psutil.Process(self.pid)
        except psutil.Error:
            self._ps = None
        self._descendants: dict[int, psutil.Process] = {}
        self._desc_cpu: dict[int, float] = {}
        self.cpu_s = 0.0

    @classmethod
    def spawn(cls, job_dir: Path, extra_env: dict[str, str]) -> JobProcess:
        """Start ``python -m services.jobs.runner JOB_DIR``; it inherits this process's CPU affinity."""
        env = {**os.environ, **extra_env}
        with open(job_dir / "job.log", "wb") as log:
            popen = subprocess.Popen(
                [sys.executable, "-m", "services.jobs.runner", str(job_dir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(job_dir),
                env=env,
                close_fds=True,
                start_new_session=True,
            )
        return cls(popen, job_dir)

    def exited(self) -> bool:
        """True once the process has exited (it stays a zombie, readable, until ``reap``)."""
        if self.popen.returncode is not None:
            return True
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def meter(self, scan_descendants: bool = False) -> float:
        """CPU-seconds used so far: user + system of the job, of its reaped children, of live descendants.

        Never decreases (a descendant's time moves from "live" to "reaped" when its parent waits for it).
        """
        total = self.cpu_s
        if self._ps is not None:
            with contextlib.suppress(psutil.Error):
                t = self._ps.cpu_times()
                own = t.user + t.system + t.children_user + t.children_system
                if scan_descendants:
                    self._descendants = {p.pid: p for p in self._ps.children(recursive=True)}
                live = 0.0
                for pid, p in list(self._descendants.items()):
                    try:
                        d = p.cpu_times()
                        self._desc_cpu[pid] = d.user + d.system
                        live += self._desc_cpu[pid]
                    except psutil.Error:
                        self._descendants.pop(pid, None)
                total = max(total, own + live)
        self.cpu_s = total
        return total

    def work_cpu_s(self, total: float) -> float:
        """CPU-seconds of the job's own work: ``total`` less its start-up, uncharged up to the allowance.

        Until the runner reports its start-up, everything so far is start-up (nothing is work yet).
        """
        if self.startup_cpu_s is None and self.startup_file is not None:
            with contextlib.suppress(OSError, ValueError):
                self.startup_cpu_s = float(self.startup_file.read_text())
        credit = self.startup_cpu_s if self.startup_cpu_s is not None else total
        return max(0.0, total - min(credit, STARTUP_ALLOWANCE_CPU_S))

    def rss_bytes(self) -> int:
        """Resident memory of the job and its known descendants (0 if it cannot be read)."""
        total = 0
        for p in [self._ps, *self._descendants.values()]:
            if p is not None:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
        return total

    def affinity(self) -> set[int] | None:
        """The job's CPU affinity, or None if it cannot be read."""
        try:
            return set(os.sched_getaffinity(self.pid))
        except OSError:
            return None

    def set_affinity(self, cpus: set[int]) -> None:
        """Pin the job and its known descendants to ``cpus`` (the service was moved by the kernel)."""
        for pid in [self.pid, *self._descendants]:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(pid, cpus)

    def signal(self, sig: int) -> None:
        """Signal the job's whole process group."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def reap(self) -> int:
        """Kill what is left of the group, wait for the job process, and return its exit code."""
        self.signal(signal.SIGKILL)
        return self.popen.wait()
