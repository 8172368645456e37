"""The kernel: one runtime's lifecycle, its status and its telemetry; built complete by flightos.system.

Its parts (router, supervisor, health monitor, recorder, link, channels...) are built by the composition
root and handed in; ``run`` starts them and ``_shutdown`` stops them. The kernel's commands see it as their
``KernelPort``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import structlog
import zmq

import hal
from flightos.bus import envelope as wire
from flightos.bus.endpoints import Endpoints
from flightos.config.target import Target
from flightos.hardening import forbid_ptrace
from flightos.kernel.channels import KernelChannels
from flightos.kernel.control import ControlChannel
from flightos.kernel.event_log import EventLog
from flightos.kernel.events import EventId
from flightos.kernel.health.board_health import BoardHealthLoop
from flightos.kernel.health.faults import BoardEffects
from flightos.kernel.health.monitor import HealthMonitor
from flightos.kernel.health.placement import place
from flightos.kernel.moves import Mover
from flightos.kernel.notify import SdNotify
from flightos.kernel.recorder import RunRecorder
from flightos.kernel.records import ServiceRecord, State
from flightos.kernel.routing.router import CommandRouter
from flightos.kernel.runtime_lock import RuntimeBusy, RuntimeLock
from flightos.kernel.supervision.resources import ResourceSampler, service_row
from flightos.kernel.supervision.supervisor import Supervisor
from flightos.link.link import Link
from flightos.sdk.severity import Severity

if TYPE_CHECKING:
    from hal.scenario import ScenarioRunner

__all__ = ["Kernel", "KernelParts", "RuntimeBusy"]

log = structlog.get_logger("flightos.kernel")


@dataclass(frozen=True)
class KernelParts:
    """Everything a kernel runs, built complete by the composition root (``flightos.system``)."""

    target: Target
    endpoints: Endpoints
    state_dir: Path
    ctx: zmq.Context[zmq.Socket[bytes]]
    board: hal.Board
    records: dict[str, ServiceRecord]
    lock: RuntimeLock
    channels: KernelChannels
    events: EventLog
    recorder: RunRecorder
    router: CommandRouter
    supervisor: Supervisor
    sampler: ResourceSampler
    effects: BoardEffects
    moves: Mover
    monitor: HealthMonitor
    board_health: BoardHealthLoop
    notify: SdNotify
    control: ControlChannel
    link: Link | None = None
    scenario: ScenarioRunner | None = None
    duration_s: float | None = None


class Kernel:
    """One runtime: the bus endpoints, the services of a target, and their supervision."""

    def __init__(self, parts: KernelParts) -> None:
        self.target = parts.target
        self.endpoints = parts.endpoints
        self.state_dir = parts.state_dir
        self.ctx = parts.ctx
        self.board = parts.board
        self.records = parts.records
        self.lock = parts.lock
        self.channels = parts.channels
        self.events = parts.events
        self.recorder = parts.recorder
        self.router = parts.router
        self.supervisor = parts.supervisor
        self.sampler = parts.sampler
        self.effects = parts.effects
        self.moves = parts.moves
        self.monitor = parts.monitor
        self.board_health = parts.board_health
        self.notify = parts.notify
        self.control = parts.control
        self.scenario = parts.scenario
        self.duration_s = parts.duration_s
        self.link = parts.link
        """The links to other boards, if the target has a ``[link]``."""
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self.started_at = time.time()
        self._me = psutil.Process()

    def emit(self, event_id: EventId, severity: Severity, message: str, **data: Any) -> None:
        """Raise a kernel event: on ``ev.kernel`` and in the log, with its reason in ``message``."""
        self.events.emit(event_id, severity, message, **data)

    async def _scenario_loop(self, runner: ScenarioRunner) -> None:
        """Apply scenario events as they come due (checked ten times a second until the last one)."""
        self.emit(
            EventId.SCENARIO_STEP,
            Severity.INFO,
            f"scenario {runner.scenario.name!r} started",
            scenario=runner.scenario.name,
            events=len(runner.pending),
        )
        while not runner.done:
            for line in runner.advance():
                self.emit(EventId.SCENARIO_STEP, Severity.LOW, f"scenario: {line}", scenario=runner.scenario.name)
            self.effects.update()
            await asyncio.sleep(0.1)
        self.emit(
            EventId.SCENARIO_STEP,
            Severity.INFO,
            f"scenario {runner.scenario.name!r} complete",
            scenario=runner.scenario.name,
        )

    # ---- lifecycle ----------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Begin a graceful stop (SIGINT, SIGTERM, or the ``shutdown`` command)."""
        self._stop.set()

    def abandon(self) -> None:
        """Give everything back after a start that failed before ``run`` (a link that could not be set up)."""
        self.channels.close()
        self.supervisor.containment.close()
        self.recorder.close()
        self.board.close()
        self.notify.close()
        self.ctx.term()
        self.lock.release()

    async def run(self) -> int:
        """Run until stopped; return the process exit code (0 after a clean stop)."""
        forbid_ptrace()  # no process of our user (a compromised service) may attach to the kernel or read its memory
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)
        if self.target.runtime.record_runs:
            self.recorder.start()
        await self.supervisor.start()
        self.monitor.start()
        self._place_all()
        if self.link is not None:
            self.link.attach()
        # copy=False: zmq.Frame objects carry the sender's credentials (Peer-Address), from which identity comes
        self.channels.command.on_messages(self.router.on_frames, multipart=True, copy=False)
        self.channels.control.on_messages(self.control.on_frames, multipart=True, copy=False)
        self._tasks = [
            loop.create_task(self.supervisor.watch()),
            loop.create_task(self.supervisor.lag.run()),
            loop.create_task(self.monitor.run()),
            loop.create_task(self.channels.events.run(self._record_event)),
            loop.create_task(self._telemetry_loop()),
            loop.create_task(self.board_health.run()),
        ]
        if self.scenario is not None:
            self._tasks.append(loop.create_task(self._scenario_loop(self.scenario)))
        if self.notify.enabled:
            self._tasks.append(loop.create_task(self._systemd_loop()))
        self.emit(
            EventId.KERNEL_STARTED,
            Severity.INFO,
            f"kernel up on target {self.target.name}",
            target=self.target.name,
            board=self.board.identity.model,
            runtime_dir=str(self.endpoints.runtime_dir),
            pid=os.getpid(),
        )
        if self.link is not None:
            await self.link.join()
            self.link.start()
        await asyncio.gather(
            *(self.supervisor.spawn(r) for r in self.records.values() if r.state not in (State.DISABLED, State.REMOTE))
        )
        if self.duration_s is not None:
            loop.call_later(self.duration_s, self.request_stop)
        await self._stop.wait()
        await self._shutdown()
        return 0

    async def _systemd_loop(self) -> None:
        """READY=1 once start-up settled (every service READY or given up on), then WATCHDOG=1 while healthy."""
        loop = asyncio.get_running_loop()
        settle_by = loop.time() + self.target.health.start_timeout_s
        while loop.time() < settle_by and any(
            r.state in (State.STARTING, State.BACKOFF, State.RESTARTING) for r in self.records.values()
        ):
            await asyncio.sleep(0.05)
        ready = sum(1 for r in self.records.values() if r.state == State.READY)
        self.notify.ready(f"{ready} service(s) ready on target {self.target.name}")
        interval = self.notify.watchdog_interval_s
        while interval is not None:
            critical_failed = [
                r.name
                for r in self.records.values()
                if r.cfg.criticality == "critical" and (r.state == State.FAILED or r.escalated)
            ]
            if not critical_failed or self.monitor.hold_safe:
                self.notify.watchdog()
            else:
                self.notify.status(
                    "not petting the watchdog: critical service(s) FAILED: " + ", ".join(critical_failed)
                )
            await asyncio.sleep(interval)

    async def _shutdown(self) -> None:
        grace = self.target.runtime.shutdown_grace_s
        self.notify.stopping()
        self.emit(EventId.KERNEL_STOPPING, Severity.INFO, "kernel stopping", grace_s=grace)
        if self.link is not None:
            self.link.stopping()
        await self.supervisor.stop_all(grace)
        if self.link is not None:
            with contextlib.suppress(Exception):  # a last replica of each failover store, then goodbye
                await asyncio.wait_for(self.link.replicate(), 2.0)
            await self.link.close()
        self.monitor.stop()
        self.emit(EventId.KERNEL_STOPPED, Severity.INFO, "kernel stopped")
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.recorder.close()
        self.channels.close()
        self.board.close()
        self.notify.close()
        self.ctx.term()
        self.lock.release()

    # ---- placement ----------------------------------------------------------------------------
    def _place_all(self) -> None:
        cores = self.board.core_ids()
        active = [(r.name, r.cfg.criticality, r.cfg.cores) for r in self.records.values() if r.state != State.DISABLED]
        for name, chosen in place(active, cores).items():
            rec = self.records[name]
            self.moves.set_cores(rec, chosen)
            self.emit(
                EventId.SERVICE_PLACED,
                Severity.INFO,
                f"{name} placed on core(s) {chosen}",
                service=name,
                cores=chosen,
                host_cpus=rec.host_cpus,
                criticality=rec.cfg.criticality,
            )

    # ---- channels -----------------------------------------------------------------------------
    def _record_event(self, env: wire.Envelope) -> None:
        if env.source != "kernel":  # the kernel's own events are recorded as they are emitted
            self.recorder.event(env.topic, env.source, env.utc_ns, env.payload)

    def board_reset(self) -> None:
        """The simulated board reset under us: count it, and restart every service as a reboot would.

        A reboot clears every restart history, so a FAILED or escalated service gets a fresh start too.
        """
        self.monitor.watchdog_reset()
        restarted = self.supervisor.reboot(skip=lambda rec: rec.name in self.monitor.shed)
        self.emit(
            EventId.BOARD_RESET_RESTART,
            Severity.MEDIUM,
            f"board reset: {len(restarted)} service(s) start again with a clean restart history",
            services=restarted,
        )

    # ---- events and telemetry -----------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The status table: kernel, services, cores, bus counters."""
        now = asyncio.get_running_loop().time()
        fork = self.supervisor.fork_spawner
        return {
            "kernel": {
                "pid": os.getpid(),
                "target": self.target.name,
                "uptime_s": round(time.time() - self.started_at, 1),
                "board": self.board.identity.model,
                "backend": self.board.identity.backend,
                "runtime_dir": str(self.endpoints.runtime_dir),
                "cpu_percent": self._me.cpu_percent(None),
                "rss_mb": round(self._me.memory_info().rss / 1e6, 1),
                "spawn": "forkserver" if fork and fork.alive else "exec",
            },
            "services": [service_row(r, now) for r in self.records.values()],
            "cores": self._cores(),
            "health": {k: v for k, v in self.monitor.snapshot().items() if k != "cores"},
            "board_health": self.board_health.latest,
            "run": {"id": self.recorder.run_id, "dir": str(self.recorder.dir)},
            "bus": self.bus_stats(),
            **({"link": self.link.status()} if self.link is not None else {}),
        }

    def _cores(self) -> list[dict[str, Any]]:
        reading = self.monitor.reading
        hw = {c.id: c for c in reading.cores} if reading is not None else {}
        out = []
        for c in self.monitor.snapshot()["cores"]:
            r = hw.get(c["id"])
            out.append(
                {
                    **c,
                    "online": r.online if r else None,
                    "freq_mhz": r.freq_mhz if r else None,
                    "hw_state": self.effects.states.get(c["id"], "ok" if r is None or r.online else "offline"),
                    "host_cpus": sorted(self.board.host_cpus(c["id"])),
                }
            )
        return out

    def bus_stats(self) -> dict[str, Any]:
        """Router and control counters, including rejected frames by reason."""
        return {
            "commands": dict(self.router.stats),
            "rejected": {"commands": dict(self.router.rejects.counts), "control": dict(self.control.rejects.counts)},
            "identity": {
                **self.router.identities.stats,
                "forged_kernel_topics": self.channels.events.forged,
                "unverified_kernel_topics": self.channels.events.unverified,  # twin lost on kev.sock: not forged
            },
            "dropped": self.channels.events.dropped,  # events lost before the kernel's subscriber (gaps)
            "pending": len(self.router.pending),
        }

    async def _telemetry_loop(self) -> None:
        period = 1.0 / self.target.runtime.telemetry_hz
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            self.sampler.forget_dead({r.pid for r in self.records.values() if r.pid})
            self.channels.publisher.publish(
                "tm.kernel.services", {"services": [service_row(r, now) for r in self.records.values()]}
            )
            try:
                if self.monitor.reading is not None:
                    self.channels.publisher.publish("tm.hal.reading", self.monitor.reading.to_dict())
                self.effects.update()
                timeline = self.effects.take_timeline()  # entries the monitor's tick took count too
                if timeline:
                    self.channels.publisher.publish("tm.hal.timeline", {"entries": timeline})
                snap = self.monitor.snapshot()
                self.channels.publisher.publish("tm.kernel.health", snap)
                self.recorder.telemetry(snap, [service_row(r, now) for r in self.records.values()])
            except Exception as exc:  # a HAL fault must never stop the kernel
                log.warning("kernel.hal_read_failed", error=f"{type(exc).__name__}: {exc}")
            self.channels.publisher.publish("tm.kernel.bus", self.bus_stats())
            self.channels.publisher.publish(
                "tm.kernel.self",
                {"cpu_percent": self._me.cpu_percent(None), "rss_mb": round(self._me.memory_info().rss / 1e6, 1)},
            )
            await asyncio.sleep(period)
