"""The jobs service's engine, without the bus: queue, start, meter, enforce budgets, record.

``JobManager`` is driven by the service (``tick()`` at the metering rate) and reads the world
through an ``Environment`` (mode, throttle, board power, CPUs), so tests can run it with a fake one.
"""

from __future__ import annotations

import asyncio
import importlib.metadata as md
import json
import os
import secrets
import shutil
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from flightos import BadArguments, Severity
from flightos.sdk.jobs import PROCESSOR_GROUP
from services.jobs import policy
from services.jobs.budget import Budget, energy_increment_mj, over_budget
from services.jobs.errors import JobRefused, UnknownJob, UnknownProcessor
from services.jobs.events import JobsEvent
from services.jobs.ledger import Job, Ledger
from services.jobs.process import JobProcess
from services.jobs.store import TenantStore, check_tenant

KILL_GRACE_S = 2.0
"""SIGTERM first; SIGKILL if the job is still there after this long."""
LEDGER_WRITE_S = 1.0
"""How often a running job's usage is written to the ledger (and always when it ends)."""


class Environment(Protocol):
    """What the manager needs to know about the runtime."""

    def mode(self) -> str: ...
    def throttle(self) -> int: ...
    def power_w(self) -> float: ...
    def n_cpus(self) -> int: ...


@dataclass
class Config:
    """The service's settings (parameters and target options)."""

    max_concurrent: int = 1
    queue_limit: int = 32
    nice: int = 10
    pause_throttle: int = 2
    keep_job_dirs: int = 200
    max_put_bytes: int = 8 << 20
    max_job_rss_mb: int = 512
    sched_idle: bool = False
    default_budget: dict[str, float] = field(default_factory=dict)
    max_budget: dict[str, float] = field(default_factory=dict)


@dataclass
class Running:
    """A job with a live process."""

    job: Job
    proc: JobProcess
    dir: Path
    t0: float
    stop: tuple[str, str, str | None] | None = None
    term_at: float | None = None
    killed: bool = False
    throttle: int = -1
    saved_at: float = 0.0
    ticks: int = 0
    peak_rss: int = 0


@dataclass
class Notice:
    """Something the service announces: an event and, for finished jobs, ``tm.jobs.done``."""

    message: str
    severity: Severity
    event_id: JobsEvent
    job: Job


EVENT_IDS = {
    "started": JobsEvent.JOB_STARTED,
    "done": JobsEvent.JOB_DONE,
    "failed": JobsEvent.JOB_FAILED,
    "over_budget": JobsEvent.JOB_OVER_BUDGET,
    "cancelled": JobsEvent.JOB_CANCELLED,
    "stopped": JobsEvent.JOB_STOPPED,
    "refused": JobsEvent.JOB_REFUSED,
}
"""The event each job state announces (docs/events.md)."""


class JobManager:
    """Queue, scheduler, meter and ledger of compute jobs."""

    def __init__(self, data_dir: Path, env: Environment, cfg: Config | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.env = env
        self.cfg = cfg or Config()
        self.jobs_dir = self.data_dir / "jobs"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.store = TenantStore(self.data_dir / "store", self.cfg.max_put_bytes)
        self.ledger = Ledger(self.data_dir / "ledger.sqlite")
        self.queue: deque[Job] = deque()
        self.running: dict[str, Running] = {}
        self.notices: list[Notice] = []
        self.paused: str | None = None
        self.stopping = False
        self._processors: dict[str, str] = {}
        self._processors_at = -1e9
        self._recover()

    # ---- start-up ----------------------------------------------------------------------------
    def _recover(self) -> None:
        """Queued jobs go back in the queue; jobs that were running when the service died are marked."""
        for job in self.ledger.jobs(states=("running",), limit=1_000_000):
            partial = self._read_json(self.jobs_dir / job.id / "out" / "partial.json")
            job.state, job.ended_at = "stopped", time.time()
            job.reason = "interrupted: the jobs service restarted while the job ran (its process died with it)"
            job.result, job.partial = partial, partial is not None
            self.ledger.save(job)
        self.queue.extend(self.ledger.jobs(states=("queued",), limit=1_000_000))

    # ---- processors --------------------------------------------------------------------------
    def processors(self, refresh: bool = False) -> dict[str, str]:
        """Registered processors by name (entry point value), without importing them."""
        now = time.monotonic()
        if refresh or now - self._processors_at > 10.0:
            self._processors = {}
            for ep in md.entry_points(group=PROCESSOR_GROUP):
                self._processors.setdefault(ep.name, ep.value)
            self._processors_at = now
        return self._processors

    # ---- commands ----------------------------------------------------------------------------
    def submit(
        self,
        processor: str,
        params: dict[str, Any] | None,
        inputs: list[str] | None,
        budget: dict[str, Any] | None,
        tenant: str,
    ) -> dict[str, Any]:
        """Queue a job (and start it at once if a slot is free); return its id, state and why it waits."""
        check_tenant(tenant)
        if self.stopping:
            raise JobRefused("the jobs service is stopping: resubmit once it is back", reason="stopping")
        policy.admit(self.env.mode())
        if processor not in self.processors() and processor not in self.processors(refresh=True):
            raise UnknownProcessor(
                f"no processor {processor!r} is registered "
                f"(installed: {', '.join(sorted(self._processors)) or 'none'})",
                available=sorted(self._processors),
            )
        b = Budget.parse(budget, self.cfg.default_budget, self.cfg.max_budget)
        names = list(inputs or [])
        for name in names:
            self.store.resolve(tenant, name, must_exist=True)
        params = dict(params or {})
        try:
            json.dumps(params)
        except (TypeError, ValueError) as exc:
            raise BadArguments(f"params: must be JSON-compatible ({exc})") from None
        if len(self.queue) >= self.cfg.queue_limit:
            raise JobRefused(
                f"the job queue is full ({len(self.queue)} queued, limit {self.cfg.queue_limit}): retry later",
                reason="queue_full",
            )
        job = Job(
            id="j" + secrets.token_hex(5),
            tenant=tenant,
            processor=processor,
            params=params,
            inputs=names,
            budget=b,
            submitted_at=time.time(),
        )
        self.ledger.add(job)
        self.queue.append(job)
        self.schedule()
        return self._brief(job)

    def list_jobs(self, tenant: str = "", limit: int = 100) -> list[dict[str, Any]]:
        """Jobs (newest ``limit``) of one tenant, or of all with ``tenant=""``; live usage for running ones."""
        if tenant:
            check_tenant(tenant)
        out = []
        for job in self.ledger.jobs(tenant, limit=limit):
            live = self.running.get(job.id)
            out.append(self._brief(live.job if live else job))
        return out

    def get(self, job_id: str, tenant: str) -> Job:
        """The job, if it belongs to ``tenant``; UnknownJob otherwise (the same answer for both cases)."""
        check_tenant(tenant)
        live = self.running.get(job_id)
        job = live.job if live else next((j for j in self.queue if j.id == job_id), None) or self.ledger.get(job_id)
        if job is None or job.tenant != tenant:
            raise UnknownJob(f"no job {job_id!r} for tenant {tenant!r}", job_id=job_id, tenant=tenant)
        return job

    def cancel(self, job_id: str, tenant: str) -> dict[str, Any]:
        """Cancel a queued job at once, or stop a running one (its partial results are kept)."""
        job = self.get(job_id, tenant)
        if job.state == "queued":
            self.queue = deque(j for j in self.queue if j.id != job_id)
            self._finish_unstarted(job, "cancelled", "cancelled on request before it started")
        elif job.id in self.running:
            self._request_stop(self.running[job.id], "cancelled", "cancelled on request", None)
        return self._brief(job)

    def result(self, job_id: str, tenant: str) -> dict[str, Any]:
        """Everything about a job: state, usage, the processor's summary (or partial results), its files."""
        job = self.get(job_id, tenant)
        out = job.view()
        out_dir = self.jobs_dir / job.id / "out"
        if job.state == "running":
            out["progress"] = self._read_json(out_dir / "partial.json")
        if job.state == "queued":
            out["waiting"] = self.paused or "waiting for a free slot"
        out["out_dir"] = str(out_dir) if out_dir.is_dir() else None
        out["files"] = self._files(out_dir)
        return out

    def ledger_view(self, tenant: str = "", limit: int = 1000) -> dict[str, Any]:
        """Totals per tenant and overall, and the job rows they sum (newest ``limit``)."""
        if tenant:
            check_tenant(tenant)
        self._save_running()
        totals = self.ledger.totals(tenant)
        rows = [
            {k: v for k, v in j.summary().items() if k not in ("budget", "started_at")}
            for j in self.ledger.jobs(tenant, limit=limit)
        ]
        return {**totals, "jobs": rows, "complete": len(rows) == totals["total"]["jobs"]}

    # ---- scheduling --------------------------------------------------------------------------
    def schedule(self) -> None:
        """Expire queued jobs past their deadline; start queued jobs while the mode and slots allow."""
        now = time.time()
        for job in [j for j in self.queue if now - j.submitted_at > j.budget.deadline_s]:
            self.queue.remove(job)
            age = now - job.submitted_at
            why = f" ({self.paused})" if self.paused else ""
            self._finish_unstarted(
                job,
                "over_budget",
                f"deadline_s: {age:.2f} s since submission, deadline "
                f"{job.budget.deadline_s:g} s; it expired in the queue{why}",
                "deadline_s",
            )
        mode = self.env.mode()
        if mode.upper() == "SAFE":
            for r in list(self.running.values()):
                if r.stop is None:
                    self._request_stop(r, "stopped", policy.SAFE_STOP, None)
        self.paused = (
            "paused: the jobs service is stopping"
            if self.stopping
            else policy.start_blocker(mode, self.env.throttle(), self.cfg.pause_throttle)
        )
        while self.paused is None and self.queue and len(self.running) < self.cfg.max_concurrent:
            self._start(self.queue.popleft())

    def _start(self, job: Job) -> None:
        job_dir = self.jobs_dir / job.id
        out_dir = job_dir / "out"
        (out_dir / "downlink").mkdir(parents=True, exist_ok=True)
        store_dir = self.store.dir(job.tenant)
        spec = {
            "job_id": job.id,
            "tenant": job.tenant,
            "processor": job.processor,
            "entry_point": self.processors().get(job.processor, ""),
            "params": job.params,
            "inputs": [str(self.store.resolve(job.tenant, n, must_exist=False)) for n in job.inputs],
            "out_dir": str(out_dir),
            "parent_pid": os.getpid(),
            "nice": self.cfg.nice,
            "sched_idle": self.cfg.sched_idle,
            "store_dir": str(store_dir),
        }
        (job_dir / "spec.json").write_text(json.dumps(spec))
        throttle = self.env.throttle()
        (job_dir / "throttle").write_text(str(throttle))
        try:
            proc = JobProcess.spawn(job_dir, {"FLIGHTOS_JOB_STORE": str(store_dir), "FLIGHTOS_JOB_ID": job.id})
        except OSError as exc:
            self._finish_unstarted(job, "failed", f"could not start the job process: {exc}")
            return
        job.state, job.started_at, job.reason = "running", time.time(), None
        self.running[job.id] = Running(job, proc, job_dir, time.monotonic(), throttle=throttle)
        self.ledger.save(job)
        self.notices.append(
            Notice(f"job {job.id} started: {job.processor} for {job.tenant}", Severity.INFO, EVENT_IDS["started"], job)
        )

    # ---- metering ----------------------------------------------------------------------------
    def tick(self) -> None:
        """Meter every running job, stop those over budget, finish those that ended, start queued ones."""
        mono = time.monotonic()
        for r in list(self.running.values()):
            self._meter(r, mono)
        self.schedule()

    def _meter(self, r: Running, mono: float) -> None:
        job = r.job
        r.ticks += 1
        exited = r.proc.exited()
        before = job.usage.cpu_s
        cpu = r.proc.work_cpu_s(r.proc.meter(scan_descendants=r.ticks % 10 == 1))
        delta = max(0.0, cpu - before)
        job.usage.cpu_s = max(before, cpu)
        job.usage.energy_mj += energy_increment_mj(self.env.power_w(), delta, self.env.n_cpus())
        job.usage.downlink_bytes = _tree_bytes(r.dir / "out" / "downlink")
        job.usage.wall_s = mono - r.t0
        if exited:
            self._finish(r)
            return
        level = self.env.throttle()
        if level != r.throttle:
            _write_atomic(r.dir / "throttle", str(level))
            r.throttle = level
        if r.ticks % 10 == 1:
            mine = os.sched_getaffinity(0)
            if r.proc.affinity() not in (None, mine):
                r.proc.set_affinity(mine)
        rss = r.proc.rss_bytes()
        r.peak_rss = max(r.peak_rss, rss)
        if r.stop is None:
            over = over_budget(job.budget, job.usage, time.time() - job.submitted_at)
            if over is None and self.cfg.max_job_rss_mb and rss > self.cfg.max_job_rss_mb << 20:
                over = (
                    "memory_mb",
                    f"memory_mb: {rss / 2**20:.0f} MiB resident, over the service's limit of "
                    f"{self.cfg.max_job_rss_mb} MiB for one job",
                )
            if over is not None:
                self._request_stop(r, "over_budget", over[1], over[0])
        elif r.term_at is not None and not r.killed and mono - r.term_at > KILL_GRACE_S:
            r.proc.signal(signal.SIGKILL)
            r.killed = True
        if mono - r.saved_at >= LEDGER_WRITE_S:
            self.ledger.save(job)
            r.saved_at = mono

    def _request_stop(self, r: Running, state: str, reason: str, exceeded: str | None) -> None:
        if r.stop is not None:
            return
        r.stop = (state, reason, exceeded)
        r.term_at = time.monotonic()
        r.proc.signal(signal.SIGTERM)

    def _finish(self, r: Running) -> None:
        job = r.job
        code = r.proc.reap()
        self.running.pop(job.id, None)
        summary = self._read_json(r.dir / "result.json")
        partial = self._read_json(r.dir / "out" / "partial.json")
        err = self._read_json(r.dir / "error.json")
        job.exit_code, job.ended_at = code, time.time()
        job.error = err.get("error") if isinstance(err, dict) else None
        if r.stop is not None:
            job.state, job.reason, job.exceeded = r.stop
            if summary is not None:  # it finished just as it was stopped: the result is whole
                job.result, job.partial = summary, False
            else:
                job.result, job.partial = partial, True
        elif code == 0 and summary is not None:
            over = over_budget(job.budget, job.usage, 0.0)
            job.result, job.partial = summary, False
            if over is not None:
                job.state, job.exceeded, job.reason = "over_budget", over[0], over[1] + " (at the end of the job)"
            else:
                job.state, job.reason = "done", None
        else:
            job.state = "failed"
            job.reason = job.error or _exit_reason(code)
            job.result, job.partial = partial, partial is not None
        self.ledger.save(job)
        self._announce(job)
        self._prune()

    def _finish_unstarted(self, job: Job, state: str, reason: str, exceeded: str | None = None) -> None:
        job.state, job.reason, job.exceeded, job.ended_at = state, reason, exceeded, time.time()
        self.ledger.save(job)
        self._announce(job)

    def _announce(self, job: Job) -> None:
        sev = {"done": Severity.INFO, "cancelled": Severity.INFO, "stopped": Severity.MEDIUM}.get(
            job.state, Severity.LOW
        )
        what = f"job {job.id} {job.state}" + (f": {job.reason}" if job.reason else "")
        self.notices.append(Notice(what, sev, EVENT_IDS.get(job.state, JobsEvent.JOB_OTHER), job))

    async def shutdown(self, reason: str, grace_s: float = KILL_GRACE_S) -> None:
        """Stop every running job (marked ``stopped`` with ``reason``); queued jobs stay queued for next time."""
        self.stopping = True
        for r in list(self.running.values()):
            self._request_stop(r, "stopped", reason, None)
        loop = asyncio.get_running_loop()
        end = loop.time() + grace_s + 0.3
        while self.running:
            self.tick()
            if loop.time() > end:
                for r in list(self.running.values()):
                    r.proc.signal(signal.SIGKILL)
                    self._finish(r)
                break
            await asyncio.sleep(0.02)
        self.ledger.close()

    # ---- telemetry ---------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """``tm.jobs.status``: the queue, the running jobs, why jobs wait, and usage per tenant."""
        self._save_running()
        totals = self.ledger.totals()
        return {
            "mode": self.env.mode(),
            "throttle": self.env.throttle(),
            "paused": self.paused,
            "max_concurrent": self.cfg.max_concurrent,
            "queued": len(self.queue),
            "queue_limit": self.cfg.queue_limit,
            "running": [
                {
                    "id": r.job.id,
                    "tenant": r.job.tenant,
                    "processor": r.job.processor,
                    **r.job.usage.to_dict(),
                    "peak_rss_mb": round(r.peak_rss / 2**20, 1),
                }
                for r in self.running.values()
            ],
            "power_w": self.env.power_w(),
            "n_cpus": self.env.n_cpus(),
            "tenants": {
                t: {k: v[k] for k in ("jobs", "cpu_s", "energy_mj", "downlink_bytes")}
                for t, v in totals["tenants"].items()
            },
        }

    # ---- helpers -----------------------------------------------------------------------------
    def _brief(self, job: Job) -> dict[str, Any]:
        out = job.summary()
        if job.state == "queued":
            out["waiting"] = self.paused or "waiting for a free slot"
        return out

    def _save_running(self) -> None:
        for r in self.running.values():
            self.ledger.save(r.job)

    def _prune(self) -> None:
        """Keep the directories of the newest ``keep_job_dirs`` finished jobs (their ledger rows stay)."""
        finished = [
            p
            for p in self.jobs_dir.iterdir()
            if p.is_dir() and p.name not in self.running and not any(j.id == p.name for j in self.queue)
        ]
        if len(finished) <= self.cfg.keep_job_dirs:
            return
        finished.sort(key=lambda p: p.stat().st_mtime)
        for p in finished[: len(finished) - self.cfg.keep_job_dirs]:
            shutil.rmtree(p, ignore_errors=True)

    @staticmethod
    def _read_json(path: Path) -> Any:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    @staticmethod
    def _files(out_dir: Path) -> list[dict[str, Any]]:
        if not out_dir.is_dir():
            return []
        return [
            {
                "name": p.relative_to(out_dir).as_posix(),
                "bytes": p.stat().st_size,
                "path": str(p),
                "downlink": p.relative_to(out_dir).parts[0] == "downlink",
            }
            for p in sorted(out_dir.rglob("*"))
            if p.is_file() and not p.name.endswith(".tmp")
        ]


def _tree_bytes(path: Path) -> int:
    total = 0
    try:
        with os.scandir(path) as it:
            for e in it:
                if e.is_file(follow_symlinks=False):
                    total += e.stat(follow_symlinks=False).st_size
                elif e.is_dir(follow_symlinks=False):
                    total += _tree_bytes(Path(e.path))
    except OSError:
        pass
    return total


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the job process was killed by {name} (not by the jobs service: e.g. the OOM killer)"
    return f"the job process exited with code {code}"
