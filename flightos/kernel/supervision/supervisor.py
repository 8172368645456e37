"""Supervision: spawn, detect crashes (from the exit) and hangs (from silence), restart or give up."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import structlog

from flightos.aio import TaskSet
from flightos.host.spawn_spec import SpawnSpec
from flightos.kernel.events import EventId
from flightos.kernel.records import ServiceRecord, State
from flightos.kernel.supervision.containment import Containment, detect
from flightos.kernel.supervision.lag import LoopLag, runqueue_wait_s
from flightos.kernel.supervision.ports import CommandFlow, Emit
from flightos.kernel.supervision.spawn import ExecSpawner, ForkServerSpawner, SpawnError
from flightos.sdk.severity import Severity

log = structlog.get_logger("flightos.kernel")

HANG_CREDIT_MAX = 3.0
"""At most this many hang timeouts of busy-host credit before a silent service is declared hung anyway."""
SpecFactory = Callable[[ServiceRecord], SpawnSpec]


class Supervisor:
    """Keeps every enabled service running according to its restart type and the restart policy."""

    def __init__(
        self,
        records: dict[str, ServiceRecord],
        router: CommandFlow,
        emit: Emit,
        make_spec: SpecFactory,
        spawn_mode: str,
        start_timeout_s: float,
        containment: Containment | None = None,
        *,
        lag: LoopLag | None = None,
        before_spawn: Callable[[ServiceRecord], None] | None = None,
        poll_control: Callable[[], None] = lambda: None,
        exit_cause: Callable[[ServiceRecord, int | None], str] = lambda rec, code: "",
    ) -> None:
        self.records = records
        self.router = router
        self.emit = emit
        self.make_spec = make_spec
        self.spawn_mode = spawn_mode
        self.start_timeout_s = start_timeout_s
        self.containment = containment if containment is not None else detect()
        """Each service's group and limits (cgroup v2, v1 or process groups); see kernel.supervision.containment."""
        self.exec_spawner = ExecSpawner(self._on_exit, self.containment)
        self.fork_spawner: ForkServerSpawner | None = None
        self._by_pid: dict[int, ServiceRecord] = {}
        self._early_exits: dict[int, tuple[int | None, str | None, float]] = {}
        """Exits reported before spawn() recorded the pid, by pid: (code, limit broken, when)."""
        self._exited: dict[int, asyncio.Event] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks = TaskSet("supervisor")
        self.before_spawn = before_spawn
        """Told before each (re)start, so a service leaves cores that went bad (the health monitor's placement)."""
        self.poll_control = poll_control
        """Read control messages already waiting, so queued heartbeats count."""
        self.lag = lag if lag is not None else LoopLag()
        self.exit_cause = exit_cause
        """Why an incarnation ended, in words (the service's own last error, a limit)."""

    async def start(self) -> None:
        """Start the fork server (if configured)."""
        if self.spawn_mode == "forkserver":
            self.fork_spawner = ForkServerSpawner(self._on_exit, self._on_forkserver_lost, self.containment)
            try:
                await self.fork_spawner.start()
            except SpawnError as exc:
                log.error("kernel.forkserver_failed", error=str(exc), fallback="exec")
                self.fork_spawner = None

    def spawner_pids(self) -> list[int]:
        """Processes besides the kernel whose children are services: the fork server, while it runs."""
        pid = self.fork_spawner.pid if self.fork_spawner is not None else None
        return [pid] if pid is not None else []

    def _on_forkserver_lost(self) -> None:
        if self._stopping:
            return
        self.emit(
            EventId.FORKSERVER_LOST,
            Severity.MEDIUM,
            "fork server lost; services start as fresh interpreters from now on",
        )
        self.fork_spawner = None

    # ---- spawning ----------------------------------------------------------------------------
    async def spawn(self, rec: ServiceRecord) -> None:
        """Start a new incarnation of a service."""
        if self._stopping:
            return
        rec.restart_handle = None
        rec.incarnation += 1
        rec.state = State.STARTING
        rec.cmd_attached = rec.ctl_ready = False
        rec.hung = False
        rec.stop_requested = False
        rec.relocating = False
        rec.throttle_sent = 0
        loop = asyncio.get_running_loop()
        rec.spawned_at = loop.time()
        if self.before_spawn is not None:
            self.before_spawn(rec)
        spec = self.make_spec(rec)
        try:
            spawner = self.fork_spawner if self.fork_spawner and self.fork_spawner.alive else self.exec_spawner
            pid = await spawner.spawn(spec)
        except SpawnError as exc:
            self.emit(EventId.SERVICE_SPAWN_FAILED, Severity.HIGH, f"cannot start {rec.name}: {exc}", service=rec.name)
            rec.pid = None
            self._handle_exit(rec, None, "could not be started")
            return
        rec.pid = pid
        self._by_pid[pid] = rec
        self._exited[pid] = asyncio.Event()
        self.emit(
            EventId.SERVICE_SPAWNED,
            Severity.INFO,
            f"{rec.name} started",
            service=rec.name,
            pid=pid,
            incarnation=rec.incarnation,
            cores=rec.cores,
            host_cpus=rec.host_cpus,
        )
        self._wake.set()
        early = self._early_exits.pop(pid, None)
        if early is not None and time.monotonic() - early[2] < 10.0:  # older: another process with a reused pid
            self._settle_exit(pid, early[0], early[1])

    def mark_ready_part(self, rec: ServiceRecord) -> None:
        """Called when the command channel attaches or the control channel says ready."""
        if rec.state != State.STARTING or not (rec.cmd_attached and rec.ctl_ready):
            return
        loop = asyncio.get_running_loop()
        rec.state = State.READY
        rec.ready_at = rec.last_heartbeat = loop.time()
        rec.reason = ""
        rec.escalated = False
        self.emit(
            EventId.SERVICE_READY,
            Severity.INFO,
            f"{rec.name} ready",
            service=rec.name,
            pid=rec.pid,
            incarnation=rec.incarnation,
            start_ms=round((rec.ready_at - rec.spawned_at) * 1000, 1),
        )
        self.router.flush(rec)
        self._wake.set()

    # ---- exits -------------------------------------------------------------------------------
    def _on_exit(self, pid: int, code: int | None) -> None:
        limit = self.containment.exited(pid)  # kills what the service left behind; a limit it broke
        if pid not in self._by_pid and pid not in self._exited:
            # Died before spawn() recorded it (a start that fails within milliseconds): settle it there.
            self._early_exits[pid] = (code, limit, time.monotonic())
            while len(self._early_exits) > 64:
                self._early_exits.pop(next(iter(self._early_exits)))
            return
        self._settle_exit(pid, code, limit)

    def _settle_exit(self, pid: int, code: int | None, limit: str | None) -> None:
        rec = self._by_pid.pop(pid, None)
        ev = self._exited.pop(pid, None)
        if ev is not None:
            ev.set()
        if rec is None or rec.pid != pid:
            return
        rec.pid = None
        rec.last_exit = code
        cause = self.exit_cause(rec, code)
        rec.exit_cause = limit or cause
        how = (
            "was killed after it hung"
            if rec.hung
            else "exited"
            if code is None or code >= 0
            else f"was killed by {_signal_name(-code)}"
        )
        self._handle_exit(rec, code, how + (f": {rec.exit_cause}" if rec.exit_cause else ""))

    def relocate(self, rec: ServiceRecord) -> None:
        """Kill a service stuck on a bad core; it restarts at once on the cores already chosen."""
        rec.relocating = True
        self._kill(rec)

    def _handle_exit(self, rec: ServiceRecord, code: int | None, how: str) -> None:
        self.router.service_lost(rec, how)
        if rec.relocating and not (rec.stop_requested or self._stopping):
            rec.relocating = False
            rec.restarts += 1
            self._tasks.spawn(self._restart(rec))  # a move, not a crash: no backoff, no intensity count
            return
        if rec.stop_requested or self._stopping:
            rec.state = State.STOPPED
            rec.reason = rec.stop_reason
            self.emit(EventId.SERVICE_STOPPED, Severity.INFO, f"{rec.name} stopped", service=rec.name, code=code)
            self.router.service_unavailable(rec)
            return
        abnormal = rec.hung or code != 0
        self.emit(
            EventId.SERVICE_EXITED,
            Severity.MEDIUM if abnormal else Severity.INFO,
            f"{rec.name} {how} (code {code})",
            service=rec.name,
            code=code,
            incarnation=rec.incarnation,
            hung=rec.hung,
            cause=rec.exit_cause,
        )
        if rec.cfg.restart == "temporary" or (rec.cfg.restart == "transient" and not abnormal):
            rec.state = State.STOPPED
            rec.reason = f"{rec.cfg.restart} service exited with code {code}"
            self.router.service_unavailable(rec)
            return
        loop = asyncio.get_running_loop()
        healthy_for = (loop.time() - rec.ready_at) if rec.ready_at else 0.0
        delay = rec.tracker.next_delay(loop.time(), healthy_for)
        if delay is None and rec.cfg.criticality == "critical":
            delay = self._escalate(rec)
        if delay is None:
            s = rec.tracker.settings
            rec.state = State.FAILED
            rec.reason = f"more than {s.max_restarts} restarts in {s.window_s:g} s"
            self.emit(
                EventId.SERVICE_FAILED,
                Severity.HIGH,
                f"{rec.name} FAILED: {rec.reason}",
                service=rec.name,
                restarts=rec.restarts,
            )
            self.router.service_unavailable(rec)
            return
        rec.restarts += 1
        rec.state = State.BACKOFF
        rec.reason = f"restarting in {delay:.1f} s after it {how}"
        self.emit(
            EventId.SERVICE_RESTART_SCHEDULED,
            Severity.LOW,
            f"{rec.name} restarts in {delay:.2f} s",
            service=rec.name,
            delay_s=round(delay, 3),
            restarts=rec.restarts,
            escalated=rec.escalated,
        )
        if delay <= 0:
            self._tasks.spawn(self._restart(rec))
        else:
            rec.restart_handle = loop.call_later(delay, lambda: self._tasks.spawn(self._restart(rec)))

    async def _restart(self, rec: ServiceRecord) -> None:
        """The scheduled restart, unless the service was stopped or shed since it was scheduled."""
        if rec.stop_requested:  # e.g. SAFE mode shed it while it waited: it stays STOPPED until restored
            rec.restart_handle = None
            return
        await self.spawn(rec)

    def _escalate(self, rec: ServiceRecord) -> float:
        """A critical service past the intensity limit: never FAILED; retried slowly while the ladder climbs."""
        delay = rec.tracker.escalated_delay()
        if not rec.escalated:
            rec.escalated = True
            s = rec.tracker.settings
            self.emit(
                EventId.SERVICE_ESCALATED,
                Severity.HIGH,
                f"{rec.name} restarted more than {s.max_restarts} times in {s.window_s:g} s; a critical "
                f"service is never given up: retrying every ~{s.critical_retry_s:g} s, and the watchdog is "
                "no longer petted, so a board reset restarts everything",
                service=rec.name,
                restarts=rec.restarts,
                retry_s=s.critical_retry_s,
                cause=rec.exit_cause,
            )
        return delay

    def reboot(self, skip: Callable[[ServiceRecord], bool]) -> list[str]:
        """A board reset: every enabled service starts again with a clean history, FAILED ones included.

        Services an operator stopped, services shed by the mode (``skip``) and remote ones stay as they are.
        """
        restarted = []
        for rec in self.records.values():
            if rec.state in (State.DISABLED, State.REMOTE) or rec.stop_requested or skip(rec):
                continue
            rec.tracker.forget()
            rec.escalated = False
            if rec.pid is not None:
                self.relocate(rec)
            else:
                if rec.restart_handle is not None:
                    rec.restart_handle.cancel()
                    rec.restart_handle = None
                self._tasks.spawn(self.spawn(rec))
            restarted.append(rec.name)
        return restarted

    # ---- hang detection ----------------------------------------------------------------------
    def heartbeat(self, rec: ServiceRecord, payload: Any) -> None:
        """Record a heartbeat from the current incarnation."""
        rec.last_heartbeat = asyncio.get_running_loop().time()
        rec.verdict_deferred = False
        if rec.pid is not None:
            rec.cpu_wait_at_heartbeat = runqueue_wait_s(rec.pid)
        if isinstance(payload, dict):
            rec.heartbeat = payload

    async def watch(self) -> None:
        """Forever: sleep until the earliest heartbeat/start deadline, then act on expired ones."""
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            nearest = now + 1.0
            for rec in self.records.values():
                if rec.state == State.READY and rec.pid is not None and not rec.hung:
                    deadline = rec.last_heartbeat + rec.hang_timeout
                    if deadline <= now:
                        self.poll_control()  # heartbeats already sent but not yet read are not silence
                        deadline = rec.last_heartbeat + rec.hang_timeout + self._busy_credit(rec)
                    if deadline <= now:
                        self._declare_hung(rec, now - rec.last_heartbeat)
                    else:
                        nearest = min(nearest, deadline)
                elif rec.state == State.STARTING and rec.pid is not None and not rec.hung:
                    deadline = rec.spawned_at + self.start_timeout_s * rec.speed_factor
                    if deadline <= now:
                        self.emit(
                            EventId.SERVICE_START_TIMEOUT,
                            Severity.MEDIUM,
                            f"{rec.name} not ready {self.start_timeout_s * rec.speed_factor:g} s after start",
                            service=rec.name,
                        )
                        self._kill(rec, hung=True)
                    else:
                        nearest = min(nearest, deadline)
            self._wake.clear()
            wait_s = max(0.0, nearest - loop.time())
            asked = loop.time() + wait_s
            try:
                await asyncio.wait_for(self._wake.wait(), wait_s)
            except asyncio.TimeoutError:
                self.lag.note(loop.time(), loop.time() - asked)

    def _busy_credit(self, rec: ServiceRecord) -> float:
        """Silence the service could not help: time it waited for a CPU, or the kernel's own loop was late.

        Capped at ``HANG_CREDIT_MAX`` hang timeouts, so a service that really hangs on a busy host is still
        caught. Reported once per silence (HANG_VERDICT_DEFERRED).
        """
        assert rec.pid is not None
        starved = max(0.0, runqueue_wait_s(rec.pid) - rec.cpu_wait_at_heartbeat)
        late = self.lag.since(rec.last_heartbeat)
        credit = min(starved + late, HANG_CREDIT_MAX * rec.hang_timeout)
        if credit < 0.01:
            return 0.0
        if not rec.verdict_deferred:
            rec.verdict_deferred = True
            self.emit(
                EventId.HANG_VERDICT_DEFERRED,
                Severity.LOW,
                f"{rec.name} silent past its limit on a busy host: it waited {starved * 1000:.0f} ms for a "
                f"CPU and the kernel ran {late * 1000:.0f} ms late; verdict deferred by {credit * 1000:.0f} ms",
                service=rec.name,
                cpu_wait_ms=round(starved * 1000, 1),
                kernel_late_ms=round(late * 1000, 1),
                credit_ms=round(credit * 1000, 1),
            )
        return credit

    def _declare_hung(self, rec: ServiceRecord, silent_for: float) -> None:
        self.emit(
            EventId.SERVICE_HUNG,
            Severity.MEDIUM,
            f"{rec.name} silent for {silent_for * 1000:.0f} ms (limit {rec.hang_timeout * 1000:.0f} ms)",
            service=rec.name,
            pid=rec.pid,
            silent_ms=round(silent_for * 1000, 1),
            limit_ms=round(rec.hang_timeout * 1000, 1),
        )
        self._kill(rec, hung=True)

    def _kill(self, rec: ServiceRecord, hung: bool = False) -> None:
        rec.hung = rec.hung or hung
        if rec.pid is not None:
            rec.state = State.RESTARTING  # from now on commands queue for the next incarnation
            self.containment.kill_tree(rec.pid)

    def limit_breached(self, rec: ServiceRecord, reason: str) -> None:
        """A running service broke its memory or task limit: kill its tree; it restarts with ``reason``."""
        log.warning("kernel.limit_breached", service=rec.name, pid=rec.pid, reason=reason)
        self._kill(rec)

    # ---- stopping ----------------------------------------------------------------------------
    async def stop_service(self, rec: ServiceRecord, grace_s: float, reason: str = "stopped on request") -> None:
        """SIGTERM, wait up to the grace, then SIGKILL; the exit handler marks it STOPPED with ``reason``."""
        if rec.restart_handle is not None:
            rec.restart_handle.cancel()
            rec.restart_handle = None
        rec.stop_requested = True
        rec.stop_reason = reason
        if rec.pid is None:
            rec.state = State.STOPPED
            rec.reason = reason
            self.router.service_unavailable(rec)
            return
        rec.state = State.STOPPING
        pid = rec.pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        exited = self._exited.get(pid)
        if exited is None:
            return
        try:
            await asyncio.wait_for(exited.wait(), grace_s)
        except asyncio.TimeoutError:
            log.warning("kernel.stop_grace_expired", service=rec.name, pid=pid, grace_s=grace_s)
            self.containment.kill_tree(pid)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(exited.wait(), 5.0)

    async def stop_all(self, grace_s: float) -> None:
        """Stop every running service in parallel, then the spawners."""
        self._stopping = True
        for rec in self.records.values():
            if rec.restart_handle is not None:
                rec.restart_handle.cancel()
        await asyncio.gather(*(self.stop_service(r, grace_s) for r in self.records.values() if r.pid is not None))
        if self.fork_spawner is not None:
            await self.fork_spawner.close()
        await self.exec_spawner.close()
        await asyncio.get_running_loop().run_in_executor(None, self.containment.close)


def _signal_name(signum: int) -> str:
    """``9`` -> ``SIGKILL`` (or ``signal 99`` for an unknown number)."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
