"""A job's own process: ``python -m services.jobs.runner JOB_DIR``.

The jobs service starts each job as a fresh interpreter (the *spawn* model), never as a fork of
itself: the service process holds ZeroMQ I/O threads and an asyncio loop, and a forked copy of a
threaded process may inherit locks held by threads that do not exist in the child. A fresh
interpreter also keeps a processor's imports (numpy, onnxruntime) out of the service.

The child reads ``JOB_DIR/spec.json``, asks Linux to kill it if the service dies, lowers its own
priority (``nice``), loads the processor from the ``flightos.processors`` entry-point group and
calls it with a JobContext. It writes ``result.json`` (the processor's summary) or ``error.json``,
atomically. The throttle level is read from ``JOB_DIR/throttle``, which the service rewrites.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_NO_PROCESSOR = 3
MAX_SUMMARY_BYTES = 256 * 1024
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when the jobs service dies, so a killed service leaves no orphan jobs."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - non-Linux
        pass
    if parent_pid and os.getppid() != parent_pid:
        os._exit(EXIT_FAILED)  # the parent died before prctl took effect


class ThrottleFile:
    """``ctx.throttle()``: the service's throttle level, re-read at most every 50 ms."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.level = 0
        self._next = 0.0

    def __call__(self) -> int:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + 0.05
            try:
                self.level = int(self.path.read_text().strip() or 0)
            except (OSError, ValueError):
                pass
        return self.level


def write_json(path: Path, value: Any) -> None:
    """Write JSON atomically (a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, default=str))
    os.replace(tmp, path)


def load_processor(name: str, value: str = "") -> Any:
    """The callable registered as ``name`` in ``flightos.processors``.

    ``value`` is the entry point's ``module:attr`` as the service found it, which saves importing
    importlib.metadata and scanning every installed distribution's metadata again (~45 ms) in each job.
    """
    if not value:
        import importlib.metadata as md

        from flightos.sdk.jobs import PROCESSOR_GROUP

        eps = [e for e in md.entry_points(group=PROCESSOR_GROUP) if e.name == name]
        if not eps:
            raise LookupError(f"no processor {name!r} is installed (entry-point group {PROCESSOR_GROUP})")
        value = eps[0].value
    module, _, attr = value.partition(":")
    fn: Any = importlib.import_module(module.strip())
    for part in filter(None, attr.strip().split(".")):
        fn = getattr(fn, part)
    if not callable(fn):
        raise LookupError(f"processor {name!r} ({value}) is not callable")
    return fn


def run(job_dir: Path) -> int:
    """Run the job described in ``job_dir``; return the exit code."""
    spec = json.loads((job_dir / "spec.json").read_text())
    die_with_parent(int(spec.get("parent_pid", 0)))
    want = int(spec.get("nice", 0))
    current = os.nice(0)
    if want > current:
        os.nice(want - current)
    if spec.get("sched_idle"):
        try:  # run only when a CPU would otherwise idle: a job never takes time from a service
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except (OSError, AttributeError):
            pass
    from flightos import JobContext

    out_dir = Path(spec["out_dir"])
    try:
        fn = load_processor(spec["processor"], spec.get("entry_point", ""))
    except Exception as exc:
        write_json(
            job_dir / "error.json",
            {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-4000:]},
        )
        return EXIT_NO_PROCESSOR
    ctx = JobContext(
        job_id=spec["job_id"],
        tenant=spec["tenant"],
        params=dict(spec["params"]),
        inputs=[Path(p) for p in spec["inputs"]],
        out_dir=out_dir,
        throttle=ThrottleFile(job_dir / "throttle"),
    )
    startup = job_dir / "startup_cpu_s"  # services.jobs.process.STARTUP_FILE: start-up is not the job's budget
    startup.with_name("startup_cpu_s.tmp").write_text(f"{time.process_time():.6f}")
    os.replace(startup.with_name("startup_cpu_s.tmp"), startup)
    try:
        summary = fn(ctx)
        if not isinstance(summary, dict):
            summary = {"value": summary}
        text = json.dumps(summary, default=str)
        if len(text) > MAX_SUMMARY_BYTES:
            raise ValueError(
                f"the summary is {len(text)} B (limit {MAX_SUMMARY_BYTES} B): put bulky results in ctx.out_dir"
            )
    except Exception as exc:
        write_json(
            job_dir / "error.json",
            {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-4000:]},
        )
        return EXIT_FAILED
    tmp = job_dir / "result.json.tmp"
    tmp.write_text(text)
    os.replace(tmp, job_dir / "result.json")
    return EXIT_OK


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m services.jobs.runner JOB_DIR``."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("services.jobs.runner: started without a job directory; the jobs service starts jobs", file=sys.stderr)
        sys.exit(2)
    sys.exit(run(Path(argv[0])))


if __name__ == "__main__":
    main()
