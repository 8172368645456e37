"""Known-answer self-tests pinned to each CPU: a core that hangs or computes wrong is found out.

One small worker process (``python -m flightos.kernel.health.selftest``) keeps one thread per CPU, pinned
there; each test hashes a fixed 256 KiB buffer and must produce a constant digest. hashlib drops
the GIL while hashing, so the threads really run on their own cores.

Tests are timed from the worker's readiness (its ``ready`` line), not from a request written while
its interpreter was still starting; a worker that answers for no CPU at all is a worker fault (it is
restarted), not evidence against every core at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

BUFFER = bytes(range(256)) * 1024
KNOWN_ANSWER = "2312394bd99545d9de131c24efb781e765ac1aec243f2ed9347597a793a415e9"
"""sha256 of BUFFER; checked against hashlib by a test, so a typo here cannot pass unnoticed."""


# ---- the worker process ---------------------------------------------------------------------------
def _worker_thread(cpu: int, jobs: queue.Queue[int], out: threading.Lock) -> None:
    try:
        os.sched_setaffinity(0, {cpu})  # pid 0 = this thread
        pinned = True
    except OSError:
        pinned = False
    while True:
        seq = jobs.get()
        t0 = time.perf_counter()
        digest = hashlib.sha256(BUFFER).hexdigest()
        us = int((time.perf_counter() - t0) * 1e6)
        with out:
            sys.stdout.write(f"{cpu} {seq} {digest} {us} {int(pinned)}\n")
            sys.stdout.flush()


def worker_main() -> None:
    """Read ``CPU SEQ`` lines; answer ``CPU SEQ DIGEST MICROSECONDS PINNED`` from that CPU's thread."""
    from flightos.runner import die_with_parent

    die_with_parent(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stdout.write("ready\n")  # interpreter and imports done: tests are timed from here
    sys.stdout.flush()
    lock = threading.Lock()
    queues: dict[int, queue.Queue[int]] = {}
    for line in sys.stdin:
        try:
            cpu, seq = (int(x) for x in line.split())
        except ValueError:
            continue
        q = queues.get(cpu)
        if q is None:
            q = queues[cpu] = queue.Queue()
            threading.Thread(target=_worker_thread, args=(cpu, q, lock), daemon=True).start()
        q.put(seq)


# ---- the kernel's side ------------------------------------------------------------------------------
@dataclass
class Probe:
    """One outstanding or answered test of one CPU."""

    cpu: int
    seq: int
    sent: float
    answered: float | None = None
    digest: str = ""
    micros: int = 0


class SelfTester:
    """Sends tests to the worker and keeps the latest outcome per host CPU."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.latest: dict[int, Probe] = {}
        self._seq = 0
        self._buf = b""
        self.wrong = 0
        self.started_at = 0.0
        self.ready_at: float | None = None
        """When the worker said ``ready`` (None: its interpreter is still starting)."""
        self.start_s: float | None = None
        """How long the worker took from spawn to ready: the board's interpreter start time."""
        self.restarts = 0

    def start(self) -> None:
        """Start the worker process (it dies with the kernel)."""
        self.started_at, self.ready_at, self._buf = time.monotonic(), None, b""
        self.latest.clear()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flightos.kernel.health.selftest", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        asyncio.get_running_loop().add_reader(self.proc.stdout.fileno(), self._on_output)

    def request(self, cpus: set[int]) -> None:
        """Ask for a test of each CPU that has no test outstanding."""
        if self.proc is None or self.proc.stdin is None:
            return
        now = time.monotonic()
        lines = []
        for cpu in sorted(cpus):
            p = self.latest.get(cpu)
            if p is not None and p.answered is None:
                continue  # still waiting: a hung CPU must not pile up requests
            self._seq += 1
            self.latest[cpu] = Probe(cpu, self._seq, now)
            lines.append(f"{cpu} {self._seq}\n")
        if lines:
            try:
                self.proc.stdin.write("".join(lines).encode())
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass

    def _on_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            chunk = os.read(self.proc.stdout.fileno(), 65536)
        except OSError:  # BlockingIOError: nothing waiting
            return
        if not chunk:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self.proc.stdout.fileno())
            return
        self._buf += chunk
        *lines, self._buf = self._buf.split(b"\n")
        now = time.monotonic()
        for line in lines:
            if line == b"ready" and self.ready_at is None:
                self.ready_at = now
                self.start_s = now - self.started_at
                for asked in self.latest.values():  # asked while the interpreter started: timed from now
                    if asked.answered is None:
                        asked.sent = max(asked.sent, now)
                continue
            try:
                cpu_s, seq_s, digest, us, _pinned = line.decode().split()
                cpu, seq = int(cpu_s), int(seq_s)
            except ValueError:
                continue
            p = self.latest.get(cpu)
            if p is not None and p.seq == seq:
                p.answered, p.digest, p.micros = now, digest, int(us)
                if digest != KNOWN_ANSWER:
                    self.wrong += 1

    def verdict(self, cpu: int, timeout_s: float, late_since: Callable[[float], float] = lambda t: 0.0) -> str | None:
        """A reason if the CPU's latest test went wrong or is overdue, else None.

        ``late_since(t)`` is how late the kernel itself ran since ``t``: time it could not have read an answer
        is not held against the CPU (a busy host is not a broken core).
        """
        p = self.latest.get(cpu)
        if p is None:
            return None
        if p.answered is None:
            self._on_output()  # an answer already waiting in the pipe counts
        if p.answered is None:
            if self.ready_at is None and self.proc is not None:
                return None  # the worker's interpreter is still starting: nothing of the CPU's is being timed
            waited = time.monotonic() - p.sent
            overdue = waited > timeout_s + late_since(p.sent)
            if overdue and not self._answered_since(p.sent):
                return None  # the worker answered for no CPU: its fault (worker_fault), not this core's
            return f"self-test on cpu{cpu}: no answer for {waited:.1f} s" if overdue else None
        if p.digest != KNOWN_ANSWER:
            return f"self-test on cpu{cpu}: wrong answer"
        return None

    def _answered_since(self, t: float) -> bool:
        """Whether the worker answered any test sent at or after ``t`` (it is alive and working)."""
        return any(q.answered is not None and q.sent >= t for q in self.latest.values())

    def worker_fault(self, timeout_s: float, start_limit_s: float) -> str | None:
        """Why the worker itself is at fault (exited, never ready, or silent for every CPU), else None."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            return f"self-test worker exited with code {self.proc.returncode}"
        now = time.monotonic()
        if self.ready_at is None:
            waited = now - self.started_at
            return f"self-test worker not ready {waited:.1f} s after start" if waited > start_limit_s else None
        waiting = [q for q in self.latest.values() if q.answered is None]
        if (
            waiting
            and all(now - q.sent > timeout_s for q in waiting)
            and not any(self._answered_since(q.sent) for q in waiting)
        ):
            return f"self-test worker answered for no CPU in {now - min(q.sent for q in waiting):.1f} s"
        return None

    def restart(self) -> None:
        """Replace a faulty worker with a fresh one (outstanding tests are dropped, not held against cores)."""
        self.stop()
        self.restarts += 1
        self.start()

    def stop(self) -> None:
        """Stop the worker."""
        if self.proc is None:
            return
        with contextlib.suppress(Exception):
            assert self.proc.stdout is not None
            asyncio.get_running_loop().remove_reader(self.proc.stdout.fileno())
        with contextlib.suppress(Exception):
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                with contextlib.suppress(Exception):
                    f.close()
        self.proc = None


if __name__ == "__main__":
    worker_main()
