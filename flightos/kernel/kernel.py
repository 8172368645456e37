"""The kernel: owns the bus, supervises services, answers its own commands, publishes telemetry."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import psutil
import structlog
import zmq

import hal
from flightos import __version__
from flightos.bus import envelope as wire
from flightos.bus.aiozmq import AsyncSocket
from flightos.bus.commands import frame_cap
from flightos.bus.endpoints import Endpoints, RuntimeDirError, prepare_runtime_dir, release_runtime_dir
from flightos.bus.envelope import FrameError, Kind
from flightos.bus.proxy import Proxy
from flightos.bus.pubsub import KernelChannel, Publisher, RejectCounter, Subscriber, vouched_namespace
from flightos.config.target import Target
from flightos.hardening import forbid_ptrace
from flightos.host import exit_cause
from flightos.host.spawn_spec import SpawnSpec
from flightos.kernel import commands as kernel_commands
from flightos.kernel.events import EventId
from flightos.kernel.health.board_health import BoardHealthLoop
from flightos.kernel.health.faults import BoardEffects
from flightos.kernel.health.monitor import HealthMonitor
from flightos.kernel.health.placement import place
from flightos.kernel.notify import SdNotify
from flightos.kernel.recorder import RunRecorder
from flightos.kernel.records import ServiceRecord, State
from flightos.kernel.restart_policy import RestartTracker
from flightos.kernel.routing.identity import Gate, Peer, peer_address
from flightos.kernel.routing.identity import Kind as PeerKind
from flightos.kernel.routing.router import CommandRouter, _parse_identity
from flightos.kernel.supervision.resources import ResourceSampler, service_row
from flightos.kernel.supervision.supervisor import Supervisor
from flightos.link.link import Link, LinkSetupError
from flightos.sdk.severity import Severity

log = structlog.get_logger("flightos.kernel")


class RuntimeBusy(Exception):
    """Another kernel already runs in this runtime directory."""


class Kernel:
    """One runtime: the bus endpoints, the services of a target, and their supervision."""

    def __init__(self, target: Target, runtime_dir: Path, duration_s: float | None = None,
                 scenario: Path | None = None) -> None:
        self.target = target
        self.endpoints = Endpoints(runtime_dir)
        self.duration_s = duration_s
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context(io_threads=1)
        self.board = hal.open_board(target.hal)
        self.state_dir = target.state_dir()
        self.records: dict[str, ServiceRecord] = {}
        settings = target.restart
        seed = random.Random()
        for name, cfg in target.services.items():
            rec = ServiceRecord(cfg=cfg, tracker=RestartTracker(settings, random.Random(seed.random())))
            if not cfg.enabled:
                rec.state, rec.reason = State.DISABLED, "disabled in the target"
            self.records[name] = rec
        self._stop = asyncio.Event()
        self._lock_fd: int | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self.started_at = time.time()
        self.ctl_rejects = RejectCounter("kernel:control")
        self.sampler = ResourceSampler()
        self._me = psutil.Process()
        self.decisions: list[dict[str, Any]] = []
        self.scenario: Any = None
        self.link: Link | None = None
        self._denied_topics: set[tuple[str, str]] = set()
        if scenario is not None:
            self.scenario = self._load_scenario(scenario)

    def _load_scenario(self, path: Path) -> Any:
        """Load a fault scenario for this board, or raise ScenarioError naming the problem."""
        from hal import scenario as sc

        if not isinstance(self.board, hal.FaultInjection):
            raise sc.ScenarioError(f"{path}: scenarios drive a simulated board; target "
                                   f"{self.target.name!r} uses the {self.board.identity.backend!r} backend")
        sim: Any = self.board  # a SimBoard: checked above by capability, not by importing the backend
        return sc.ScenarioRunner(sc.load(path), sim)

    async def _scenario_loop(self) -> None:
        """Apply scenario events as they come due (checked ten times a second until the last one)."""
        runner = self.scenario
        self.emit(EventId.SCENARIO_STEP, Severity.INFO, f"scenario {runner.scenario.name!r} started",
                  scenario=runner.scenario.name, events=len(runner.pending))
        while not runner.done:
            for line in runner.advance():
                self.emit(EventId.SCENARIO_STEP, Severity.LOW, f"scenario: {line}", scenario=runner.scenario.name)
            self.effects.update()
            await asyncio.sleep(0.1)
        self.emit(EventId.SCENARIO_STEP, Severity.INFO, f"scenario {runner.scenario.name!r} complete",
                  scenario=runner.scenario.name)

    # ---- lifecycle ----------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Begin a graceful stop (SIGINT, SIGTERM, or the ``shutdown`` command)."""
        self._stop.set()

    def _acquire(self) -> None:
        """Take the runtime directory (its pid file) and the state directory (its ``kernel.lock``), or raise
        RuntimeBusy naming the kernel that holds either."""
        prepare_runtime_dir(self.endpoints.runtime_dir)
        fd = os.open(self.endpoints.pidfile, os.O_RDWR | os.O_CREAT, 0o600)
        for attempt in range(50):  # a client checking liveness holds a shared lock for microseconds
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == 49 or os.pread(fd, 32, 0).strip():  # a pid written: a live kernel holds it
                    other = (os.pread(fd, 32, 0).decode(errors="replace").strip() or "?")
                    os.close(fd)
                    raise RuntimeBusy(f"a runtime is already running in {self.endpoints.runtime_dir} "
                                      f"(kernel pid {other})") from None
                time.sleep(0.01)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        try:
            self._state_lock_fd: int | None = self._lock_state_dir()
        except BaseException:
            self._release()
            raise
        for f in self.endpoints.socket_files():  # left by a kernel that was killed: adopt nothing
            with contextlib.suppress(FileNotFoundError):
                f.unlink()

    def _lock_state_dir(self) -> int:
        """flock ``<state_dir>/kernel.lock``: one kernel per state directory (its keys, stores, kernel state)."""
        path = self.state_dir / "kernel.lock"
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise RuntimeDirError(f"state directory {self.state_dir}: cannot lock it: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if not isinstance(exc, BlockingIOError):
                os.close(fd)
                raise RuntimeDirError(f"state directory {self.state_dir}: cannot lock {path}: "
                                      f"{exc.strerror or exc}") from None
            holder = os.pread(fd, 4096, 0).decode(errors="replace").split("\n")
            os.close(fd)
            pid = holder[0].strip() or "?"
            where = holder[1].strip() if len(holder) > 1 and holder[1].strip() else "?"
            raise RuntimeBusy(f"state directory {self.state_dir} is in use by kernel pid {pid} (runtime directory "
                              f"{where}); two kernels would share keys, stores and kernel state: give this one "
                              "a state directory of its own (runtime.state_dir or $FLIGHTOS_STATE_DIR)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n{self.endpoints.runtime_dir}\n".encode())
        return fd

    def _release(self) -> None:
        """Give both directories back: a runtime directory flightos created goes, with everything in it."""
        state_fd = getattr(self, "_state_lock_fd", None)
        if state_fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(state_fd, 0)  # nobody holds it now
            os.close(state_fd)
            self._state_lock_fd = None
        release_runtime_dir(self.endpoints.runtime_dir, [self.endpoints.pidfile, *self.endpoints.socket_files()])
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def run(self) -> int:
        """Run until stopped; return the process exit code (0 after a clean stop)."""
        forbid_ptrace()  # no process of our user (a compromised service) may attach to the kernel or read its memory
        self._acquire()
        if self.target.link.enabled:
            self.link = Link(self)
            try:
                self.link.open()
            except LinkSetupError:
                self.ctx.term()
                self._release()
                raise
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)
        self.proxy = Proxy(self.ctx, self.endpoints.publish, self.endpoints.subscribe)
        self.proxy.start()
        max_frame = self.target.runtime.max_frame_bytes
        self.cmd_sock = self.ctx.socket(zmq.ROUTER)
        self.cmd_sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.cmd_sock.setsockopt(zmq.SNDHWM, 100_000)
        self.cmd_sock.setsockopt(zmq.RCVHWM, 100_000)
        self.cmd_sock.setsockopt(zmq.MAXMSGSIZE, frame_cap(max_frame))  # a larger frame drops its peer
        self.cmd_sock.bind(self.endpoints.command)
        self.ctl_sock = self.ctx.socket(zmq.ROUTER)
        self.ctl_sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.ctl_sock.setsockopt(zmq.MAXMSGSIZE, frame_cap(max_frame))
        self.ctl_sock.bind(self.endpoints.control)
        # The kernel's topics go through the proxy as every other (so subscribers see them in order) and also
        # out on an endpoint only the kernel binds: a subscriber delivers a proxy copy of ev.kernel, tm.kernel.*
        # or tm.hal.* only when that endpoint (checked by pid) sent the same bytes, so nobody can publish as us.
        self.publisher = Publisher(self.ctx, self.endpoints.publish, "kernel", mirror=self.endpoints.kernel_events)
        self.board_health = BoardHealthLoop.for_board(self.board, str(self.state_dir), self.publisher.publish,
                                                      self.emit)
        acmd, actl = AsyncSocket(self.cmd_sock), AsyncSocket(self.ctl_sock)
        self.router = CommandRouter(acmd, self.records,
                                    self.target.runtime.command_queue,
                                    self._kernel_command, self._attached, self.emit,
                                    self.target.runtime.command_timeout_s,
                                    max_frame_bytes=max_frame, runtime_dir=self.endpoints.runtime_dir,
                                    result_cache_bytes=int(self.target.runtime.result_cache_mb * (1 << 20)))
        self.router.acl = self.target.acl
        self.router.identities.spawners = self._spawner_pids
        self.ctl_gate = Gate(self.router.identities, self._on_control_frame)
        self.router.board = self.target.link.board
        self.router.rejects.on_report = self._rejected
        self.ctl_rejects.on_report = self._rejected
        self.supervisor = Supervisor(self.records, self.router, self.emit, self._spec,
                                     self.target.runtime.spawn,
                                     self.target.health.start_timeout_s)
        self.supervisor.before_spawn = self._avoid_bad_cores
        self.sampler.containment = self.supervisor.containment  # figures of whole trees; limit breaches restart
        self.sampler.on_breach = self.supervisor.limit_breached
        self.supervisor.exit_cause = lambda rec, code: exit_cause.take(self.endpoints.runtime_dir, rec.name,
                                                                        rec.incarnation)
        self.effects = BoardEffects(self.board, self.records, self.emit)
        self.monitor = HealthMonitor(self)
        self.effects.on_watchdog_reset = self._watchdog_reset
        self.recorder = RunRecorder(self.state_dir / "runs", {
            "target": self.target.name, "board": self.board.identity.model,
            "backend": self.board.identity.backend, "cores": self.board.core_ids(),
            "services": [{"name": r.name, "criticality": r.cfg.criticality} for r in self.records.values()],
            "scenario": self.scenario.scenario.name if self.scenario is not None else None,
            "flightos_version": __version__}, keep=self.target.runtime.runs_kept)
        self.recorder.on_drop = lambda lost, total, why: self.emit(
            EventId.RUN_RECORD_DROPPED, Severity.MEDIUM, f"run record: {lost} line(s) lost ({total} in all): {why}",
            lost=lost, total=total, reason=why)
        if self.target.runtime.record_runs:
            self.recorder.start()
        self.events_sub = Subscriber(self.ctx, self.endpoints.subscribe, "kernel:events",
                                     kernel=KernelChannel(self.endpoints.kernel_events, os.getpid()))
        self.events_sub.rejects.on_report = self._rejected  # e.g. a forged ev.kernel on the proxy: raised, counted
        self.events_sub.subscribe("ev.")
        await self.supervisor.start()
        self.monitor.start()
        self._place_all()
        if self.link is not None:
            self.router.link = self.link
            self.link.attach()
        # copy=False: zmq.Frame objects carry the sender's credentials (Peer-Address), from which identity comes
        acmd.on_messages(self.router.on_frames, multipart=True, copy=False)
        actl.on_messages(self._on_control, multipart=True, copy=False)
        self.actl = actl
        self.supervisor.poll_control = actl.pump
        self._tasks = [
            loop.create_task(self.supervisor.watch()),
            loop.create_task(self.supervisor.lag.run()),
            loop.create_task(self.monitor.run()),
            loop.create_task(self.events_sub.run(self._record_event)),
            loop.create_task(self._telemetry_loop()),
            loop.create_task(self.board_health.run()),
        ]
        if self.scenario is not None:
            self._tasks.append(loop.create_task(self._scenario_loop()))
        self.notify = SdNotify.from_env()
        if self.notify.enabled:
            self._tasks.append(loop.create_task(self._systemd_loop()))
        self.emit(EventId.KERNEL_STARTED, Severity.INFO,
                  f"kernel up on target {self.target.name}", target=self.target.name,
                  board=self.board.identity.model, runtime_dir=str(self.endpoints.runtime_dir),
                  pid=os.getpid())
        if self.link is not None:
            await self.link.join()
            self.link.start()
        await asyncio.gather(*(self.supervisor.spawn(r) for r in self.records.values()
                               if r.state not in (State.DISABLED, State.REMOTE)))
        if self.duration_s is not None:
            loop.call_later(self.duration_s, self.request_stop)
        await self._stop.wait()
        await self._shutdown(acmd, actl)
        return 0

    async def _systemd_loop(self) -> None:
        """READY=1 once start-up settled (every service READY or given up on), then WATCHDOG=1 while healthy."""
        loop = asyncio.get_running_loop()
        settle_by = loop.time() + self.target.health.start_timeout_s
        while loop.time() < settle_by and any(r.state in (State.STARTING, State.BACKOFF, State.RESTARTING)
                                              for r in self.records.values()):
            await asyncio.sleep(0.05)
        ready = sum(1 for r in self.records.values() if r.state == State.READY)
        self.notify.ready(f"{ready} service(s) ready on target {self.target.name}")
        interval = self.notify.watchdog_interval_s
        while interval is not None:
            critical_failed = [r.name for r in self.records.values()
                               if r.cfg.criticality == "critical" and (r.state == State.FAILED or r.escalated)]
            if not critical_failed or self.monitor.hold_safe:
                self.notify.watchdog()
            else:
                self.notify.status("not petting the watchdog: critical service(s) FAILED: "
                                   + ", ".join(critical_failed))
            await asyncio.sleep(interval)

    async def _shutdown(self, acmd: AsyncSocket, actl: AsyncSocket) -> None:
        grace = self.target.runtime.shutdown_grace_s
        notify = getattr(self, "notify", None)
        if notify is not None:
            notify.stopping()
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
        self.events_sub.close()
        self.recorder.close()
        acmd.close()
        actl.close()
        self.publisher.close()
        self.proxy.stop()
        self.board.close()
        if notify is not None:
            notify.close()
        self.ctx.term()
        self._release()

    # ---- placement and spawn specs ------------------------------------------------------------
    def _place_all(self) -> None:
        cores = self.board.core_ids()
        active = [(r.name, r.cfg.criticality, r.cfg.cores) for r in self.records.values()
                  if r.state != State.DISABLED]
        for name, chosen in place(active, cores).items():
            rec = self.records[name]
            rec.cores = chosen
            rec.host_cpus = sorted({c for core in chosen for c in self.board.host_cpus(core)})
            self.emit(EventId.SERVICE_PLACED, Severity.INFO, f"{name} placed on core(s) {chosen}",
                      service=name, cores=chosen, host_cpus=rec.host_cpus, criticality=rec.cfg.criticality)

    def _avoid_bad_cores(self, rec: ServiceRecord) -> None:
        """Before a (re)start, move a service off cores that are not HEALTHY (or hung underneath)."""
        bad = {c for c, h in self.monitor.health.items() if h.state.value != "HEALTHY"} | self.effects.hung_cores()
        if not rec.cores or not (set(rec.cores) & bad):
            return
        chosen = self.monitor.placement_for(rec)
        if chosen is None or set(chosen) & bad:
            return  # nowhere better: start where it was (critical work runs until the last core)
        old = rec.cores
        self.set_cores(rec, chosen)
        self.emit(EventId.SERVICE_PLACED, Severity.MEDIUM,
                  f"{rec.name} placed on core(s) {chosen} instead of {old}: core(s) {sorted(set(old) & bad)} "
                  "not healthy", service=rec.name, cores=chosen, host_cpus=rec.host_cpus, previous=old,
                  criticality=rec.cfg.criticality)

    def set_cores(self, rec: ServiceRecord, cores: list[int]) -> None:
        rec.cores = cores
        rec.host_cpus = sorted({c for core in cores for c in self.board.host_cpus(core)})

    def move_service(self, rec: ServiceRecord, cores: list[int], *, restart: bool, reason: str) -> None:
        """Move a service to other cores: its threads' affinity where it can run, else a restart there."""
        old = list(rec.cores)
        t0 = time.monotonic()
        self.set_cores(rec, cores)
        restarted = False
        if rec.pid is not None and restart:
            self.supervisor.relocate(rec)
            restarted = True
        elif rec.pid is not None:
            try:
                hal.affinity.set_process_affinity(rec.pid, rec.host_cpus)
            except (hal.HalError, OSError) as exc:
                log.warning("kernel.affinity_failed", service=rec.name, error=str(exc))
                self.supervisor.relocate(rec)
                restarted = True
            self.effects.enforce()  # a frozen process that moved to a live core runs again
        ms = round((time.monotonic() - t0) * 1000, 2)
        self.emit(EventId.SERVICE_MIGRATED, Severity.MEDIUM if restarted else Severity.INFO,
                  f"{rec.name} moved from core(s) {old} to {cores}"
                  + (" by a restart" if restarted else " without a restart") + f": {reason}",
                  service=rec.name, from_cores=old, to_cores=cores, host_cpus=rec.host_cpus,
                  restarted=restarted, reason=reason, ms=ms)

    async def shed_service(self, rec: ServiceRecord, why: str) -> None:
        """Stop a service to fit the mode, capacity or power budget (not a failure: no restart)."""
        rec.reason = f"shed: {why}"
        if rec.pid is not None or rec.state in (State.STARTING, State.BACKOFF, State.RESTARTING):
            await self.supervisor.stop_service(rec, self.target.runtime.shutdown_grace_s, rec.reason)

    async def restore_service(self, rec: ServiceRecord) -> None:
        """Start a shed service again, on a usable core."""
        if rec.pid is None and rec.state in (State.STOPPED, State.STOPPING):
            rec.tracker.consecutive = 0
            await self.supervisor.spawn(rec)

    def send_control(self, rec: ServiceRecord, payload: dict[str, Any]) -> bool:
        """Send a control message (e.g. a throttle level) to a service's current incarnation."""
        try:
            self.actl.send_multipart_nowait(
                [rec.identity.encode(), wire.encode(wire.make(Kind.CONTROL, rec.name, "kernel", payload))])
            return True
        except zmq.ZMQError:
            return False

    def _spec(self, rec: ServiceRecord) -> SpawnSpec:
        rt = self.target.runtime
        return SpawnSpec(name=rec.name, incarnation=rec.incarnation,
                         runtime_dir=str(self.endpoints.runtime_dir), state_dir=str(self.state_dir),
                         heartbeat_period_s=rec.cfg.heartbeat_period_s, cpus=rec.host_cpus,
                         options=rec.cfg.options, params=rec.cfg.params, log_format=rt.log_format,
                         log_level=rt.log_level, kernel_pid=os.getpid(), publish=self._publish_acl(rec),
                         plugin=rec.cfg.plugin, max_frame_bytes=rt.max_frame_bytes,
                         memory_mb=rec.cfg.memory_mb, tasks=rec.cfg.tasks,
                         devices=self.target.devices_for(rec.name),
                         devices_simulated=self.target.hal_backend == "sim")

    def _publish_acl(self, rec: ServiceRecord) -> list[str] | None:
        """The topic patterns a service may publish, or None when the ``[acl]`` does not restrict it."""
        acl = self.target.acl
        patterns = acl.publish.get(rec.name)
        if patterns is None:
            return None if acl.publish_default == "allow" else []
        return list(patterns)

    # ---- channels -----------------------------------------------------------------------------
    def _record_event(self, env: wire.Envelope) -> None:
        if env.source != "kernel":  # the kernel's own events are recorded as they are emitted
            self.recorder.event(env.topic, env.source, env.utc_ns, env.payload)

    def _watchdog_reset(self) -> None:
        """The simulated board reset under us: count it, and restart every service as a reboot would.

        A reboot clears every restart history, so a FAILED or escalated service gets a fresh start too.
        """
        self.monitor.watchdog_reset()
        restarted = self.supervisor.reboot(skip=lambda rec: rec.name in self.monitor.shed)
        self.emit(EventId.BOARD_RESET_RESTART, Severity.MEDIUM,
                  f"board reset: {len(restarted)} service(s) start again with a clean restart history",
                  services=restarted)

    def _rejected(self, where: str, err: FrameError, count: int) -> None:
        self.emit(EventId.BUS_FRAME_REJECTED, Severity.LOW, f"rejected a frame on {where}: {err}",
                  where=where, reason=err.reason, count=count)

    def _attached(self, rec: ServiceRecord) -> None:
        self.supervisor.mark_ready_part(rec)

    def _spawner_pids(self) -> list[int]:
        """Processes besides the kernel whose children are services: the fork server, while it runs."""
        proc = getattr(self.supervisor.fork_spawner, "_proc", None)
        return [proc.pid] if proc is not None else []

    def _on_control(self, batch: list[list[Any]]) -> None:
        for parts in batch:
            if len(parts) != 2:
                self.ctl_rejects.reject(FrameError("malformed", f"{len(parts)} frames, expected 2"))
                continue
            ident, frame = parts
            self.ctl_gate.feed(ident.bytes, peer_address(frame), frame.bytes)

    def _on_control_frame(self, who: Peer, ident: bytes, frame: bytes) -> None:
        """Ready, heartbeats and control from a service: only its own process, on its own routing id, counts."""
        try:
            env = wire.decode(frame)
        except FrameError as err:
            self.ctl_rejects.reject(err)
            return
        rec = self.records.get(who.name) if who.kind is PeerKind.SERVICE else None
        if rec is None or ident != rec.identity.encode():
            if who.kind is PeerKind.SERVICE or (who.kind is PeerKind.OPERATOR and _parse_identity(ident)[0]):
                # a heartbeat or ready claimed for another service (or incarnation): ignored, counted, raised
                self.router.identity_problem(who, ident, "sent control frames", "identity_forged")
            elif who.kind is PeerKind.REFUSED:
                self.router.identity_problem(who, ident, "sent control frames", "identity_refused")
            return  # a stale incarnation (gone) or a stranger: ignored
        if env.kind == Kind.HEARTBEAT:
            self.supervisor.heartbeat(rec, env.payload)
        elif env.kind == Kind.CONTROL and isinstance(env.payload, dict):
            op = env.payload.get("op")
            if op in ("ready", "interest"):
                prefixes = env.payload.get("interest", env.payload.get("prefixes"))
                if isinstance(prefixes, list):
                    rec.interest = [p for p in prefixes if isinstance(p, str)][:256]
            if op == "publish_denied" and isinstance(env.payload.get("topic"), str):
                self.publish_denied(rec.name, env.payload["topic"], self.target.link.board or "local",
                                    "refused by the SDK")
            if op == "incident" and isinstance(env.payload.get("message"), str):
                self._incident(rec, env.payload)
            if op == "vouch" and isinstance(env.payload.get("frame"), bytes):
                self._vouch(rec, env.payload["frame"])
            if op == "ready":
                rec.ctl_ready = True
                self.supervisor.heartbeat(rec, None)
                self.supervisor.mark_ready_part(rec)
        else:
            self.ctl_rejects.reject(FrameError("unexpected_kind", f"kind {env.kind} on control"))

    def _vouch(self, rec: ServiceRecord, frame: bytes) -> None:
        """A service's event or product: vouched for on kev.sock if it is its own, so subscribers accept it."""
        try:
            topic, env = wire.decode_topic_frame(frame)
        except FrameError as err:
            self.ctl_rejects.reject(err)
            return
        if env.source != rec.name or not vouched_namespace(topic, rec.name):
            self.ctl_rejects.reject(FrameError("not_its_own", f"{rec.name} asked the kernel to vouch for {topic} "
                                               f"from {env.source!r}"))
            return
        if not self.target.acl.allows_publish(rec.name, topic):
            self.publish_denied(rec.name, topic, self.target.link.board or "local", "not vouched by the kernel")
            return
        self.publisher.mirror_frame(frame)

    def _incident(self, rec: ServiceRecord, payload: dict[str, Any]) -> None:
        """A service's host reports damage it found and worked around (a store kept aside): raise it, loudly."""
        if payload.get("kind") == "store_quarantined":
            self.emit(EventId.STORE_QUARANTINED, Severity.HIGH, f"{rec.name}: {payload['message'][:400]}",
                      service=rec.name, file=str(payload.get("file", ""))[:300])

    def publish_denied(self, publisher: str, topic: str, board: str, how: str) -> None:
        """Raise PUBLISH_DENIED once per publisher and topic (a flood of refusals is one event each)."""
        if (publisher, topic) in self._denied_topics or len(self._denied_topics) >= 1000:
            return
        self._denied_topics.add((publisher, topic))
        self.emit(EventId.PUBLISH_DENIED, Severity.HIGH,
                  f"{publisher} on board {board} may not publish {topic} (target [acl]); {how}",
                  publisher=publisher, topic=topic, board=board)

    # ---- events and telemetry -----------------------------------------------------------------
    def emit(self, event_id: EventId, severity: Severity, message: str, **data: Any) -> None:
        """Raise a kernel event: on ``ev.kernel`` and in the log, with its reason in ``message``."""
        payload = {"id": int(event_id), "name": event_id.name, "severity": int(severity),
                   "severity_name": severity.name, "message": message, "data": data}
        self.publisher.publish("ev.kernel", payload, Kind.EVENT)
        if event_id in DECISIONS:
            self.decisions.append({"t": time.time(), "event": event_id.name, "message": message})
            del self.decisions[:-50]
        recorder = getattr(self, "recorder", None)
        if recorder is not None:
            recorder.event("ev.kernel", "kernel", time.time_ns(), payload)
        level = "info" if severity == Severity.INFO else "warning" if severity < Severity.HIGH else "error"
        getattr(log, level)(event_id.name.lower(), event_id=int(event_id), msg=message, **data)

    def status(self) -> dict[str, Any]:
        """The status table: kernel, services, cores, bus counters."""
        now = asyncio.get_running_loop().time()
        fork = self.supervisor.fork_spawner
        return {
            "kernel": {"pid": os.getpid(), "target": self.target.name,
                       "uptime_s": round(time.time() - self.started_at, 1),
                       "board": self.board.identity.model, "backend": self.board.identity.backend,
                       "runtime_dir": str(self.endpoints.runtime_dir),
                       "cpu_percent": self._me.cpu_percent(None),
                       "rss_mb": round(self._me.memory_info().rss / 1e6, 1),
                       "spawn": "forkserver" if fork and fork.alive else "exec"},
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
            out.append({**c, "online": r.online if r else None, "freq_mhz": r.freq_mhz if r else None,
                        "hw_state": self.effects.states.get(c["id"], "ok" if r is None or r.online else "offline"),
                        "host_cpus": sorted(self.board.host_cpus(c["id"]))})
        return out

    def bus_stats(self) -> dict[str, Any]:
        """Router and control counters, including rejected frames by reason."""
        return {"commands": dict(self.router.stats),
                "rejected": {"commands": dict(self.router.rejects.counts),
                             "control": dict(self.ctl_rejects.counts)},
                "identity": {**self.router.identities.stats, "forged_kernel_topics": self.events_sub.forged},
                "pending": len(self.router.pending)}

    async def _telemetry_loop(self) -> None:
        period = 1.0 / self.target.runtime.telemetry_hz
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            self.sampler.forget_dead({r.pid for r in self.records.values() if r.pid})
            self.publisher.publish("tm.kernel.services",
                                   {"services": [service_row(r, now) for r in self.records.values()]})
            try:
                if self.monitor.reading is not None:
                    self.publisher.publish("tm.hal.reading", self.monitor.reading.to_dict())
                self.effects.update()
                timeline = self.effects.take_timeline()  # entries the monitor's tick took count too
                if timeline:
                    self.publisher.publish("tm.hal.timeline", {"entries": timeline})
                snap = self.monitor.snapshot()
                self.publisher.publish("tm.kernel.health", snap)
                self.recorder.telemetry(snap, [service_row(r, now) for r in self.records.values()])
            except Exception as exc:  # a HAL fault must never stop the kernel
                log.warning("kernel.hal_read_failed", error=f"{type(exc).__name__}: {exc}")
            self.publisher.publish("tm.kernel.bus", self.bus_stats())
            self.publisher.publish("tm.kernel.self", {"cpu_percent": self._me.cpu_percent(None),
                                                      "rss_mb": round(self._me.memory_info().rss / 1e6, 1)})
            await asyncio.sleep(period)

    # ---- the kernel's own commands ------------------------------------------------------------
    async def _kernel_command(self, name: str, args: Any) -> Any:
        """Run a kernel command from its table, with the same argument checks a service's commands get."""
        return await kernel_commands.dispatch(self, name, args)


DECISIONS = {
    EventId.SERVICE_HUNG, EventId.SERVICE_FAILED, EventId.SERVICE_RESTART_SCHEDULED, EventId.CORE_STATE_CHANGED,
    EventId.MODE_CHANGED, EventId.SERVICE_MIGRATED, EventId.SERVICE_SHED, EventId.SERVICE_RESTORED,
    EventId.THERMAL_LEVEL, EventId.POWER_OVER_BUDGET, EventId.WATCHDOG_RESET, EventId.SERVICE_PLACED,
}
"""Events that record a decision of the kernel, listed by `flightos status` with their reasons."""
