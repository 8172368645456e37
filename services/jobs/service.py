"""The ``jobs`` service: metered leases of the on-board computer for registered processors.

Ground (a *tenant*) submits a job: a processor registered under ``flightos.processors``
(``inference.run``, ``sar.detect``, …), its parameters, input files from the tenant's on-board
store and a budget (CPU-seconds, energy, downlink bytes, deadline). Each job runs in a process of
its own, niced, on the service's CPUs; the service meters it, stops it when it goes over any
budget (its partial results kept and marked), and records every job in a SQLite ledger.

The service is elastic: it never displaces critical or essential services, holds new jobs in
DEGRADED mode or under throttle, and refuses them in SAFE mode. See docs/jobs.md.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from flightos import Message, Parameter, Service, Severity, command, periodic, subscribe
from services.jobs import policy
from services.jobs.downlink import Outbox
from services.jobs.events import JobsEvent
from services.jobs.manager import Config, JobManager
from services.jobs.options import JobsOptions
from services.jobs.store import check_tenant

__all__ = ["Jobs"]


class Jobs(Service):
    """Compute jobs under enforced budgets, with a usage ledger per tenant."""

    name = "jobs"
    options_schema = JobsOptions
    max_concurrent = Parameter(1, min=1, max=16, doc="jobs that run at the same time")
    queue_limit = Parameter(32, min=1, max=4096, doc="jobs that may wait in the queue")
    nice = Parameter(10, min=0, max=19, doc="nice value of job processes")
    pause_throttle = Parameter(2, min=1, max=10, doc="throttle level at which new jobs wait")
    max_job_rss_mb = Parameter(512, min=0, max=65536, doc="resident memory a job may use (0: no limit)")
    sched_idle = Parameter(False, doc="run jobs in the SCHED_IDLE class: only on otherwise idle CPU time")
    meter_hz = Parameter(10.0, min=1.0, max=50.0, doc="how often running jobs are metered and checked")
    status_hz = Parameter(1.0, min=0.1, max=10.0, doc="rate of tm.jobs.status")
    downlink_priority = Parameter(3, min=0, max=7, doc="ground-link priority of job records and files")
    downlink_chunks = Parameter(4, min=1, max=64, doc="32 KiB file chunks given to the ground link per metering period")

    def __init__(self) -> None:
        super().__init__()
        self._mode = "NOMINAL"
        self._power_w: float | None = None
        self._n_cpus = len(os.sched_getaffinity(0)) or 1
        self._shed_reason: str | None = None
        self.manager: JobManager | None = None
        self.outbox = Outbox()

    # ---- the Environment the manager reads -------------------------------------------------
    def mode(self) -> str:
        """The spacecraft mode, from the kernel's health telemetry and mode events."""
        return self._mode

    def power_w(self) -> float:
        """Board power from tm.kernel.health; the ``power_w`` option where the board reports none."""
        if self._power_w is not None:
            return self._power_w
        return float(self.config.power_w)

    def n_cpus(self) -> int:
        """The host CPUs the board's cores run on (energy is charged per share of them)."""
        return self._n_cpus

    def throttle_level(self) -> int:
        """This service's throttle level, set by the kernel (DEGRADED, thermal, power)."""
        return int(self.throttle)

    # ---- lifecycle ---------------------------------------------------------------------------
    async def on_start(self) -> None:
        opts: JobsOptions = self.config
        cfg = Config(
            max_concurrent=self.max_concurrent,
            queue_limit=self.queue_limit,
            nice=self.nice,
            pause_throttle=self.pause_throttle,
            max_job_rss_mb=self.max_job_rss_mb,
            sched_idle=self.sched_idle,
            keep_job_dirs=opts.keep_job_dirs,
            max_put_bytes=opts.max_put_bytes,
            default_budget=opts.budgets("default_"),
            max_budget=opts.budgets("max_"),
        )
        await self._read_kernel_status()
        self.manager = JobManager(self.data_dir, _Env(self), cfg)
        await self._drain()

    async def _read_kernel_status(self) -> None:
        """Mode, board power and the CPUs behind the board, once at start (telemetry keeps them fresh)."""
        try:
            st = await self.call("kernel", "status", timeout=2.0)
        except Exception as exc:  # telemetry will tell us within a second
            self.log.warning("jobs.kernel_status_unavailable", error=str(exc))
            return
        health = st.get("health") or {}
        self._apply_health(health)
        cpus = {c for core in st.get("cores") or [] for c in core.get("host_cpus") or []}
        if cpus:
            self._n_cpus = len(cpus)
        me = next((s for s in st.get("services") or [] if s.get("name") == self.name), None)
        if me is not None and me.get("criticality") != "elastic":
            await self.event(
                f"the jobs service runs as {me.get('criticality')}; it should be elastic "
                '([services.jobs] criticality = "elastic") so jobs never displace other services',
                Severity.LOW,
                event_id=JobsEvent.NOT_ELASTIC,
            )

    def _apply_health(self, health: dict[str, Any]) -> None:
        if isinstance(health.get("mode"), str):
            self._mode = health["mode"].upper()
        if isinstance(health.get("power_w"), (int, float)):
            self._power_w = float(health["power_w"])

    async def on_stop(self) -> None:
        if self.manager is None:
            return
        if self._mode != "SAFE":
            with contextlib.suppress(Exception):
                st = await self.call("kernel", "status", timeout=0.3)
                self._apply_health(st.get("health") or {})
                row: dict[str, Any] = next((s for s in st.get("services") or [] if s.get("name") == self.name), {})
                self._shed_reason = row.get("reason") or self._shed_reason
        if self._mode == "SAFE":
            reason = policy.SAFE_STOP
        else:
            reason = "the jobs service stopped" + (f" ({self._shed_reason})" if self._shed_reason else "")
        await self.manager.shutdown(reason)
        await self._drain()
        for name, payload in self.outbox.take(64):  # the records of the jobs just stopped, at least
            await self.downlink(name, payload, priority=self.downlink_priority)

    async def on_parameter(self, name: str, value: Any) -> None:
        if self.manager is not None and name in (
            "max_concurrent",
            "queue_limit",
            "nice",
            "pause_throttle",
            "max_job_rss_mb",
            "sched_idle",
        ):
            setattr(self.manager.cfg, name, value)
            self.manager.schedule()
            await self._drain()

    # ---- the kernel's view -------------------------------------------------------------------
    @subscribe("tm.kernel.health")
    async def on_health(self, msg: Message) -> None:
        """Keep the mode and board power; a mode change may start or stop jobs."""
        if isinstance(msg.payload, dict):
            self._apply_health(msg.payload)

    @subscribe("ev.kernel")
    async def on_kernel_event(self, msg: Message) -> None:
        """Mode changes at once (telemetry comes once a second); our own shedding, with its reason."""
        p = msg.payload if isinstance(msg.payload, dict) else {}
        data = p.get("data") or {}
        if p.get("name") == "MODE_CHANGED" and isinstance(data.get("new"), str):
            self._mode = data["new"].upper()
            if self.manager is not None:
                self.manager.schedule()
                await self._drain()
        elif p.get("name") == "SERVICE_SHED" and data.get("service") == self.name:
            self._shed_reason = f"shed: {data.get('reason')}"

    # ---- periodic work -----------------------------------------------------------------------
    @periodic(hz="meter_hz")
    async def meter(self) -> None:
        """Meter running jobs, enforce budgets, start queued jobs; hand products to the ground link."""
        if self.manager is not None:
            self.manager.tick()
            await self._drain()
        for name, payload in self.outbox.take(self.downlink_chunks):
            await self.downlink(name, payload, priority=self.downlink_priority)

    @periodic(hz="status_hz")
    async def report(self) -> None:
        """Publish ``tm.jobs.status``."""
        if self.manager is not None:
            await self.publish("status", {**self.manager.status(), "downlink_pending": len(self.outbox)})

    async def _drain(self) -> None:
        assert self.manager is not None
        notices, self.manager.notices = self.manager.notices, []
        for n in notices:
            await self.event(
                n.message,
                n.severity,
                event_id=n.event_id,
                job_id=n.job.id,
                tenant=n.job.tenant,
                processor=n.job.processor,
                state=n.job.state,
            )
            if n.job.finished:
                await self.publish("done", n.job.view())
                self.outbox.add(n.job, self.manager.jobs_dir / n.job.id / "out")

    def _m(self) -> JobManager:
        assert self.manager is not None
        return self.manager

    # ---- commands ----------------------------------------------------------------------------
    @command()
    async def submit(
        self,
        processor: str,
        params: dict[str, Any] | None = None,
        inputs: list[str] | None = None,
        budget: dict[str, Any] | None = None,
        tenant: str = "local",
    ) -> dict[str, Any]:
        """Queue a job: a processor, its params, input files from the tenant's store, and a budget."""
        try:
            out = self._m().submit(processor, params, inputs, budget, tenant)
        except Exception as exc:
            if getattr(exc, "code", "") == "job_refused":
                await self.event(
                    f"job refused for {tenant}: {exc}",
                    Severity.LOW,
                    event_id=JobsEvent.JOB_REFUSED,
                    tenant=tenant,
                    processor=processor,
                )
            raise
        await self._drain()
        return out

    @command("list")
    async def list_jobs(self, tenant: str = "", limit: int = 100) -> list[dict[str, Any]]:
        """Jobs, newest last: one tenant's, or every tenant's with tenant=""."""
        return self._m().list_jobs(tenant, limit)

    @command()
    async def cancel(self, job_id: str, tenant: str) -> dict[str, Any]:
        """Cancel a queued job, or stop a running one (partial results kept)."""
        out = self._m().cancel(job_id, tenant)
        await self._drain()
        return out

    @command()
    async def result(self, job_id: str, tenant: str) -> dict[str, Any]:
        """A job's state, usage, summary (or partial results, marked) and output files."""
        return self._m().result(job_id, tenant)

    @command()
    async def ledger(self, tenant: str = "", limit: int = 1000) -> dict[str, Any]:
        """Usage totals per tenant and overall, with the job rows they sum."""
        return self._m().ledger_view(tenant, limit)

    @command()
    async def processors(self) -> list[dict[str, Any]]:
        """The registered processors (entry-point group flightos.processors)."""
        return [{"name": k, "entry_point": v} for k, v in sorted(self._m().processors(refresh=True).items())]

    @command()
    async def put(self, tenant: str, name: str, data: bytes, append: bool = False) -> dict[str, Any]:
        """Write a small file into the tenant's store (name relative to it); append=true adds a part."""
        return self._m().store.put(check_tenant(tenant), name, data, append)

    @command()
    async def files(self, tenant: str = "local") -> list[dict[str, Any]]:
        """The files in the tenant's store."""
        return self._m().store.files(tenant)


class _Env:
    """The service as the manager's Environment (kept apart so Service attributes stay the SDK's)."""

    def __init__(self, svc: Jobs) -> None:
        self.svc = svc

    def mode(self) -> str:
        return self.svc.mode()

    def throttle(self) -> int:
        return self.svc.throttle_level()

    def power_w(self) -> float:
        return self.svc.power_w()

    def n_cpus(self) -> int:
        return self.svc.n_cpus()
