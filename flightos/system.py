"""The composition root: builds one runtime's parts, hands each the narrow port it needs, and runs the kernel.

Nothing else builds the router, supervisor, health monitor, recorder or channels, and nothing below
``flightos.cli`` imports this module (an import-linter contract). Where two parts need each other (the
router and the supervisor, the supervisor and the monitor, the board effects and the kernel), the later one is
reached through a closure over the name it is bound to below, so no part is wired by assignment afterwards.
The link's host is ``LinkParts``, the parts it uses, so the link is built here too and never sees the kernel.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq

import hal
from flightos import __version__
from flightos.bus.endpoints import Endpoints
from flightos.bus.envelope import FrameError
from flightos.bus.pubsub import Publisher, RejectCounter
from flightos.config.target import Target
from flightos.host import exit_cause
from flightos.kernel import commands as kernel_commands
from flightos.kernel.channels import KernelChannels
from flightos.kernel.control import ControlChannel
from flightos.kernel.event_log import EventLog
from flightos.kernel.events import EventId
from flightos.kernel.health.board_health import BoardHealthLoop
from flightos.kernel.health.faults import BoardEffects
from flightos.kernel.health.monitor import HealthMonitor
from flightos.kernel.kernel import Kernel, KernelParts, RuntimeBusy
from flightos.kernel.moves import Mover
from flightos.kernel.notify import SdNotify
from flightos.kernel.recorder import RunRecorder
from flightos.kernel.records import ServiceRecord, State
from flightos.kernel.restart_policy import RestartTracker
from flightos.kernel.routing.router import CommandRouter
from flightos.kernel.runtime_lock import RuntimeLock
from flightos.kernel.specs import spawn_spec
from flightos.kernel.supervision.lag import LoopLag
from flightos.kernel.supervision.resources import ResourceSampler
from flightos.kernel.supervision.supervisor import Supervisor
from flightos.link.link import Link, LinkSetupError
from flightos.link.sockets import check_keys
from flightos.sdk.severity import Severity

if TYPE_CHECKING:
    from hal.scenario import ScenarioRunner

__all__ = ["Boot", "LinkSetupError", "RuntimeBusy", "build", "prepare", "run"]


@dataclass(frozen=True)
class Boot:
    """What is opened before the event loop runs: the target's board and scenario (their errors are the user's)."""

    target: Target
    runtime_dir: Path
    board: hal.Board
    scenario: ScenarioRunner | None = None
    duration_s: float | None = None


@dataclass(frozen=True)
class LinkParts:
    """The link's host (``flightos.link.ports.LinkHost``): exactly the parts the link uses, not the kernel."""

    ctx: zmq.Context[zmq.Socket[bytes]]
    target: Target
    endpoints: Endpoints
    state_dir: Path
    records: dict[str, ServiceRecord]
    router: CommandRouter
    publisher: Publisher
    supervisor: Supervisor
    monitor: HealthMonitor
    board: hal.Board
    events: EventLog
    moves: Mover

    def emit(self, event_id: EventId, severity: Severity, message: str, **data: Any) -> None:
        """Raise a kernel event."""
        self.events.emit(event_id, severity, message, **data)

    def publish_denied(self, publisher: str, topic: str, board: str, how: str) -> None:
        """Raise PUBLISH_DENIED once per publisher and topic."""
        self.events.publish_denied(publisher, topic, board, how)

    def set_cores(self, rec: ServiceRecord, cores: list[int]) -> None:
        """Give a service taken over from a peer its cores here."""
        self.moves.set_cores(rec, cores)


def prepare(target: Target, runtime_dir: Path, duration_s: float | None = None, scenario: Path | None = None) -> Boot:
    """Open the target's board and load its scenario; raise HalError/ScenarioError naming the problem."""
    board = hal.open_board(target.hal)
    try:
        runner = load_scenario(target, board, scenario) if scenario is not None else None
    except BaseException:
        board.close()
        raise
    return Boot(target, runtime_dir, board, runner, duration_s)


def load_scenario(target: Target, board: hal.Board, path: Path) -> ScenarioRunner:
    """Load a fault scenario for this board, or raise ScenarioError naming the problem."""
    from hal import scenario as sc

    if not isinstance(board, hal.FaultInjection):
        raise sc.ScenarioError(
            f"{path}: scenarios drive a simulated board; target "
            f"{target.name!r} uses the {board.identity.backend!r} backend"
        )
    sim: Any = board  # a SimBoard: checked above by capability, not by importing the backend
    return sc.ScenarioRunner(sc.load(path), sim)


def records_for(target: Target) -> dict[str, ServiceRecord]:
    """One record per configured service, each with its own restart history (jitter seeded apart)."""
    records: dict[str, ServiceRecord] = {}
    seed = random.Random()
    for name, cfg in target.services.items():
        rec = ServiceRecord(cfg=cfg, tracker=RestartTracker(target.restart, random.Random(seed.random())))
        if not cfg.enabled:
            rec.state, rec.reason = State.DISABLED, "disabled in the target"
        records[name] = rec
    return records


async def run(boot: Boot) -> int:
    """Take the runtime and state directories, build the kernel complete, and run it until stopped.

    Raises RuntimeBusy (another kernel holds a directory), RuntimeDirError or LinkSetupError.
    """
    if boot.target.link.enabled:  # a missing or unsafe key is a configuration error before anything is taken
        check_keys(boot.target.link, boot.target.state_dir())
    endpoints = Endpoints(boot.runtime_dir)
    lock = RuntimeLock(endpoints, boot.target.state_dir())
    lock.acquire()
    try:
        kernel = build(boot, endpoints, lock)
    except BaseException:
        lock.release()
        raise
    if kernel.link is not None:
        try:
            kernel.link.open()
        except LinkSetupError:
            kernel.abandon()
            raise
    return await kernel.run()


def build(boot: Boot, endpoints: Endpoints, lock: RuntimeLock) -> Kernel:
    """Every part of one kernel, each given what it uses (inside the event loop, under the directories' lock)."""
    target, board = boot.target, boot.board
    state_dir = lock.state_dir
    rt = target.runtime
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context(io_threads=1)
    records = records_for(target)

    def rejected(where: str, err: FrameError, count: int) -> None:
        events.rejected(where, err, count)

    def dropped(lost: int, total: int, why: str) -> None:
        events.emit(
            EventId.RUN_RECORD_DROPPED,
            Severity.MEDIUM,
            f"run record: {lost} line(s) lost ({total} in all): {why}",
            lost=lost,
            total=total,
            reason=why,
        )

    def kernel_command(name: str, args: Any) -> Awaitable[Any]:
        return kernel_commands.dispatch(kernel, name, args)

    def attached(rec: ServiceRecord) -> None:
        supervisor.mark_ready_part(rec)

    def before_spawn(rec: ServiceRecord) -> None:
        monitor.avoid_bad_cores(rec)

    def spawners() -> list[int]:
        return supervisor.spawner_pids()

    def board_reset() -> None:
        kernel.board_reset()

    channels = KernelChannels(ctx, endpoints, rt.max_frame_bytes, rejected)
    recorder = RunRecorder(
        state_dir / "runs",
        {
            "target": target.name,
            "board": board.identity.model,
            "backend": board.identity.backend,
            "cores": board.core_ids(),
            "services": [{"name": r.name, "criticality": r.cfg.criticality} for r in records.values()],
            "scenario": boot.scenario.scenario.name if boot.scenario is not None else None,
            "flightos_version": __version__,
        },
        keep=rt.runs_kept,
        on_drop=dropped,
    )
    events = EventLog(channels.publisher, recorder)
    router = CommandRouter(
        channels.command,
        records,
        rt.command_queue,
        kernel_command,
        attached,
        events.emit,
        rt.command_timeout_s,
        max_frame_bytes=rt.max_frame_bytes,
        runtime_dir=endpoints.runtime_dir,
        result_cache_bytes=int(rt.result_cache_mb * (1 << 20)),
        acl=target.acl,
        board=target.link.board,
        remote=lambda: link,
        spawners=spawners,
        on_reject=rejected,
    )
    lag = LoopLag()
    supervisor = Supervisor(
        records,
        router,
        events.emit,
        functools.partial(spawn_spec, target, endpoints, state_dir),
        rt.spawn,
        target.health.start_timeout_s,
        lag=lag,
        before_spawn=before_spawn,
        poll_control=channels.control.pump,
        exit_cause=lambda rec, code: exit_cause.take(endpoints.runtime_dir, rec.name, rec.incarnation),
    )
    sampler = ResourceSampler(supervisor.containment, on_breach=supervisor.limit_breached)  # whole trees
    effects = BoardEffects(
        board, records, events.emit, on_watchdog_reset=board_reset, runtime_dir=endpoints.runtime_dir
    )
    moves = Mover(board, supervisor, effects, channels.control, events.emit, rt.shutdown_grace_s)
    monitor = HealthMonitor(
        target,
        board,
        effects,
        records,
        emit=events.emit,
        decisions=events.decisions,
        moves=moves,
        lag=lag,
        sampler=sampler,
        state_dir=state_dir,
    )
    control = ControlChannel(
        records,
        router,
        supervisor,
        events,
        channels.publisher,
        target.acl,
        target.link.board or "local",
        RejectCounter("kernel:control", on_report=rejected),
    )
    board_health = BoardHealthLoop.for_board(board, str(state_dir), channels.publisher.publish, events.emit)
    link = (
        Link(
            LinkParts(
                ctx,
                target,
                endpoints,
                state_dir,
                records,
                router,
                channels.publisher,
                supervisor,
                monitor,
                board,
                events,
                moves,
            )
        )
        if target.link.enabled
        else None
    )
    kernel = Kernel(
        KernelParts(
            target=target,
            endpoints=endpoints,
            state_dir=state_dir,
            ctx=ctx,
            board=board,
            records=records,
            lock=lock,
            channels=channels,
            events=events,
            recorder=recorder,
            router=router,
            supervisor=supervisor,
            sampler=sampler,
            effects=effects,
            moves=moves,
            monitor=monitor,
            board_health=board_health,
            notify=SdNotify.from_env(),
            control=control,
            link=link,
            scenario=boot.scenario,
            duration_s=boot.duration_s,
        )
    )
    return kernel
