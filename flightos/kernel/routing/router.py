"""Routes commands to services: exactly one result per command, queued while a service restarts.

A command id is its idempotency key: a retry while it runs joins the same execution, a retry after
it finished gets the remembered result. Only executions are remembered: a refusal that proves the
command did not run (unknown service, unavailable, queue full, access denied, too large, deadline
before delivery, ``service_failed`` with ``started: false``) is answered and forgotten, so a retry
with the same id runs it. A command delivered to a process that then dies is answered
``service_failed`` saying whether the process had taken it (see ``flightos.bus.started``); one still
queued is delivered to the next incarnation.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import structlog
import zmq

from flightos.aio import TaskSet
from flightos.bus import envelope as wire
from flightos.bus import started
from flightos.bus.commands import DEFAULT_MAX_FRAME_BYTES, error_payload, ok_payload
from flightos.bus.direct import DIRECT_TOPIC
from flightos.bus.envelope import FrameError, Kind
from flightos.bus.errors import (
    AccessDenied,
    BadRequest,
    CommandError,
    DeadlineExceeded,
    FrameTooLarge,
    HandlerError,
    QueueFull,
    ServiceFailed,
    ServiceUnavailable,
    UnknownService,
)
from flightos.bus.pubsub import RejectCounter
from flightos.config.target import Acl
from flightos.kernel.events import EventId
from flightos.kernel.records import ACCEPTS_QUEUED, PendingCommand, ServiceRecord, State
from flightos.kernel.routing.identity import Gate, Identities, Peer
from flightos.kernel.routing.identity import Kind as PeerKind
from flightos.kernel.routing.ports import Clock, LoopClock, Sender, Timer
from flightos.sdk.severity import Severity

log = structlog.get_logger("flightos.kernel")

RESULT_CACHE_MAX = 65_536
"""Results kept at most; past it the oldest goes even if a retry could still come (``results_evicted_early``)."""
RESULT_CACHE_BYTES = 32 << 20
"""Bytes of results kept at most (``runtime.result_cache_mb``); past it the oldest go early, counted alike."""
RETRY_GRACE_S = 5.0
"""A result is kept this long past its command's deadline (a retry may still be on its way), then it goes."""
SWEEP_S = 1.0
"""How often results past their retry time are dropped (also when no new command comes)."""
EVICTED_EVENT_S = 10.0
"""At most one COMMAND_RESULTS_EVICTED event this often."""
REFUSALS = frozenset(
    {"unknown_service", "service_unavailable", "queue_full", "access_denied", "frame_too_large", "bad_request"}
)
"""Error codes the kernel answers only for a command that did not run: never remembered against its id."""
MAX_PENDING = 10_000
"""Commands in flight at once, across all services: beyond this a flood is refused, not buffered."""
DEAD_LEDGER_S = 120.0
"""How long a dead incarnation's started ledger is kept for commands re-sent by direct callers."""
DEAD_LEDGERS = 4
"""Dead incarnations' ledgers kept per service (a crash loop keeps only the latest)."""
UNREAPED = frozenset({State.STARTING, State.READY, State.RESTARTING, State.STOPPING})
"""States in which the current incarnation's process may be alive (its death not yet handled, its ledger unread)."""
KERNEL = "kernel"

KernelHandler = Callable[[str, Any], Awaitable[Any]]


class LinkRequester(bytes):
    """A requester that is a connection on the link to another board (its routing id), not a local socket."""


class RemoteRoutes(Protocol):
    """What the router needs of the link to other boards (``flightos.link``)."""

    def locate(self, service: str) -> str | None:
        """The board that runs a service now, or None."""

    def knows(self, service: str) -> bool:
        """Whether some peer's last hello named the service (it may be unreachable right now)."""

    def known_services(self) -> list[str]:
        """Every service another board runs."""

    def forward(self, cmd: PendingCommand) -> None:
        """Send a command to the board that runs its destination."""

    def send_result(self, requester: LinkRequester, frame: bytes) -> bool:
        """Answer a command that came in over the link."""


class CommandRouter:
    """Owns the command ROUTER's traffic: requests in, deliveries out, results back."""

    def __init__(
        self,
        sock: Sender,
        records: dict[str, ServiceRecord],
        queue_cap: int,
        kernel_handler: KernelHandler,
        on_attach: Callable[[ServiceRecord], None],
        emit: Callable[..., None],
        default_timeout_s: float = 5.0,
        *,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        result_cache_bytes: int = RESULT_CACHE_BYTES,
        runtime_dir: Path | None = None,
        acl: Acl | None = None,
        board: str = "",
        remote: Callable[[], RemoteRoutes | None] = lambda: None,
        spawners: Callable[[], Iterable[int]] = tuple,
        on_reject: Callable[[str, FrameError, int], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.sock = sock
        self.clock: Clock = clock or LoopClock()
        """Deadlines and timers (the running loop's; a fake one in the router's unit tests)."""
        self.records = records
        self.queue_cap = queue_cap
        self.kernel_handler = kernel_handler
        self.on_attach = on_attach
        self.emit = emit
        self.default_timeout_ms = int(default_timeout_s * 1000)
        self.max_frame_bytes = max_frame_bytes
        self.result_cache_bytes = result_cache_bytes
        self.runtime_dir = runtime_dir
        """Where services keep their started ledgers (None: no ledgers, every delivered command counts as started)."""
        if runtime_dir is not None:
            started.remove_stale(runtime_dir)
        self._last_full: dict[str, float] = {}
        self.pending: dict[str, PendingCommand] = {}
        self.results: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        """Encoded RESULT frames by command id: a retry gets the very bytes the first caller got."""
        self.result_bytes = 0
        """Bytes of the frames in ``results``."""
        self._sweep: Timer | None = None
        self._evicted_reported = (0, -1e9)
        """(early evictions already reported, when)."""
        self.rejects = RejectCounter("kernel:commands", on_report=on_reject)
        self.stats = {
            "received": 0,
            "delivered": 0,
            "completed": 0,
            "duplicates": 0,
            "queued": 0,
            "queue_full": 0,
            "deadline_exceeded": 0,
            "service_lost": 0,
            "late_results": 0,
            "undeliverable": 0,
            "stale": 0,
            "denied": 0,
            "refused": 0,
            "too_large": 0,
            "lost_not_started": 0,
            "results_expired": 0,
            "results_evicted_early": 0,
            "identity_refused": 0,
            "identity_forged": 0,
            "direct": 0,
        }
        self.acl = acl
        self._remote = remote
        """The links to other boards, if any (looked up: the link and the router each need the other)."""
        self.board = board
        """This board's name in ``[link]`` (empty when not linked)."""
        self._tasks = TaskSet("router")
        self.identities = Identities(records, spawners=spawners)
        """Who is behind each local connection, from its process (shared with the control socket)."""
        self.gate = Gate(self.identities, self._on_frame)
        self._identity_events: set[tuple[int, str]] = set()
        self._dead_started: dict[str, list[tuple[started.Ledger, float]]] = {}
        """Started ledgers of dead incarnations, kept while a direct caller may re-send what they had taken."""
        self._resent: dict[str, int] = {}
        """Commands in flight that a direct caller re-sent (checked against dead ledgers on delivery), each with the
        incarnation whose process was not yet reaped when it came (0: none), which may have it."""

    @property
    def link(self) -> RemoteRoutes | None:
        """The links to other boards (None when this board has none)."""
        return self._remote()

    # ---- inbound ------------------------------------------------------------------------------
    def on_frames(self, batch: list[list[Any]]) -> None:
        """Handle a drained batch of ROUTER messages: [routing id, frame] as zmq.Frame, which carry the sender's pid."""
        self.gate.feed_batch(batch, self.rejects.reject)

    def _on_frame(self, who: Peer, ident: bytes, frame: bytes) -> None:
        """One frame whose sender the gate judged: a command, a result, or a service attaching."""
        try:
            env = wire.decode(frame)
        except FrameError as err:
            self.rejects.reject(err)
            return
        if who.kind is PeerKind.GONE:
            self.stats["stale"] += 1
            return
        if env.kind == Kind.COMMAND:
            self._on_command(who, ident, env, frame)
        elif env.kind == Kind.RESULT:
            self._on_result(who, ident, env, frame)
        elif env.kind == Kind.CONTROL:
            self._on_attach(who, ident)
        else:
            self.rejects.reject(FrameError("unexpected_kind", f"kind {env.kind} on the command socket"))

    def identity_problem(self, who: Peer, ident: bytes, what: str, counter: str) -> None:
        """Count a refused or forged sender, and raise IDENTITY_REFUSED once per process and reason."""
        self.stats[counter] += 1
        if counter == "identity_forged":
            self.identities.stats["forged"] += 1
        key = (who.pid, what)
        if key in self._identity_events or len(self._identity_events) >= 256:
            return
        self._identity_events.add(key)
        claimed = ident.decode(errors="replace")
        self.emit(
            EventId.IDENTITY_REFUSED,
            Severity.HIGH,
            f"process {who.pid} ({who.name or who.kind.value}) {what} as {claimed!r}"
            + (f": {who.reason}" if who.reason else ""),
            pid=who.pid,
            claimed=claimed,
            identity=who.name or who.kind.value,
            what=what,
        )

    def _on_attach(self, who: Peer, ident: bytes) -> None:
        rec = self.records.get(who.name) if who.kind is PeerKind.SERVICE else None
        if rec is None or ident != rec.identity.encode():  # only the service's own process, on its own routing id
            if who.kind is PeerKind.SERVICE or _parse_identity(ident)[0]:
                self.identity_problem(who, ident, "attached a command channel", "identity_forged")
            else:
                self.stats["stale"] += 1
            return
        rec.cmd_attached = True
        self.on_attach(rec)

    def _on_command(self, who: Peer, ident: bytes, env: wire.Envelope, frame: bytes) -> None:
        if who.kind is PeerKind.REFUSED:
            self.identity_problem(who, ident, "sent a command", "identity_refused")
            self._reply(
                ident,
                env.corr or "",
                error_payload(
                    AccessDenied(
                        f"process {who.pid} is not a live service of this runtime and not the operator: "
                        f"commands from it are refused ({who.reason})"
                    )
                ),
            )
            return
        claimed = _parse_identity(ident)[0] if ident[:2] == b"s/" else ""
        if claimed and claimed != who.name:  # a service's socket posing as another: it runs as itself
            self.identity_problem(who, ident, "sent a command", "identity_forged")
        self._accept(ident, env, frame, who.name, remote=False)

    def accept_remote(self, requester: LinkRequester, env: wire.Envelope, frame: bytes, caller: str) -> None:
        """A command from another board (or an authorised client on the link), for a service of this board."""
        self._accept(requester, env, frame, caller, remote=True)

    def _accept(self, ident: bytes, env: wire.Envelope, frame: bytes, caller: str, *, remote: bool) -> None:
        self.stats["received"] += 1
        cid = env.corr
        p = env.payload
        if not cid or not isinstance(p, dict) or not isinstance(p.get("name"), str):
            self._reply(ident, cid or "", error_payload(BadRequest("malformed command: needs an id and a name")))
            return
        if len(frame) > self.max_frame_bytes:
            self.stats["too_large"] += 1
            self._reply(
                ident,
                cid,
                error_payload(
                    FrameTooLarge(
                        f"command {env.topic}.{p['name']} is {len(frame):,} bytes, over this runtime's limit of "
                        f"{self.max_frame_bytes:,} bytes (runtime.max_frame_bytes); it was not run",
                        size=len(frame),
                        limit=self.max_frame_bytes,
                    )
                ),
            )
            return
        cached = self.results.get(cid)
        if cached is not None:
            self.stats["duplicates"] += 1
            self._send_result(ident, cid, cached[0])
            return
        existing = self.pending.get(cid)
        if existing is not None:
            self.stats["duplicates"] += 1
            if ident not in existing.requesters:
                existing.requesters.append(ident)
            return
        if len(self.pending) >= MAX_PENDING:
            self.stats["queue_full"] += 1
            self.stats["refused"] += 1
            self._reply(
                ident,
                cid,
                error_payload(QueueFull(f"the kernel already has {MAX_PENDING} commands in flight; try again shortly")),
            )
            return
        timeout_ms = p.get("timeout_ms")
        if not isinstance(timeout_ms, int) or timeout_ms <= 0:
            timeout_ms = self.default_timeout_ms
        now = self.clock.time()
        cmd = PendingCommand(
            cid=cid,
            destination=env.topic,
            name=p["name"],
            args=p.get("args") or {},
            deadline=now + timeout_ms / 1000.0,
            requesters=[ident],
            source=env.source,
            frame=frame,
            received_at=now,
            caller=caller,
        )
        if env.topic == f"{KERNEL}@{self.board}":  # kernel@<this board> is this kernel
            cmd.destination = KERNEL
        other_kernel = cmd.destination.startswith(KERNEL + "@")  # kernel@<board>: another board's kernel
        if self._acl_denies(caller, cmd, KERNEL if other_kernel else cmd.destination):
            return
        if other_kernel:
            if remote or self.link is None:
                self.refuse(
                    cmd, UnknownService(f"no board {cmd.destination[len(KERNEL) + 1 :]!r} is linked with this one")
                )
            else:
                self._forward(cmd)
            return
        if cmd.destination == KERNEL:
            self.pending[cid] = cmd
            self._tasks.spawn(self._run_kernel_command(cmd))
            return
        rec = self.records.get(env.topic)
        resent = p.get("resent") is True  # a direct caller's connection dropped: it may have run in a dead incarnation
        if resent and rec is not None and self._ran_before(rec.name, cmd):
            return  # checked before it could be forwarded: the service may have moved to another board since
        elsewhere = rec is None or rec.state == State.REMOTE
        if elsewhere and not remote and self.link is not None and (rec is not None or self.link.knows(env.topic)):
            self._forward(cmd)  # held and resent by the link while that board is unreachable, until the deadline
            return
        if rec is None:
            known = sorted({*self.records, *(self.link.known_services() if self.link else [])})
            self.refuse(cmd, UnknownService(f"no service {env.topic!r} in this runtime", available=known))
            return
        if rec.state == State.REMOTE:
            self.refuse(cmd, ServiceUnavailable(f"service {rec.name!r} does not run on this board ({rec.reason})"))
            return
        if resent:
            self._resent[cid] = rec.incarnation if rec.state in UNREAPED else 0
        self.pending[cid] = cmd
        self._route(rec, cmd)  # deliver first; the deadline timer is armed after, off the round trip
        if cid in self.pending:
            cmd.timer = self.clock.call_at(cmd.deadline, self._expire, cid)

    def route_local(self, rec: ServiceRecord, cmd: PendingCommand) -> None:
        """Route an accepted command to a service that now runs here (it moved to this board)."""
        self._route(rec, cmd)

    def finish_remote(self, cmd: PendingCommand, frame: bytes) -> None:
        """The result of a command another board ran: answer its requesters with those very bytes.

        The same rules as for a local service: too large is an error, and a refusal is not remembered.
        """
        if cmd.cid not in self.pending:
            return
        if len(frame) > self.max_frame_bytes:
            self._result_too_large(cmd, len(frame), f"board running {cmd.destination}")
            return
        try:
            remember = not is_refusal(wire.decode(frame).payload)
        except FrameError:
            remember = True
        self._finish(cmd, frame, remember=remember)

    def _forward(self, cmd: PendingCommand) -> None:
        """Hand a command to the link for another board, with its deadline running here."""
        assert self.link is not None
        self.pending[cmd.cid] = cmd
        cmd.forwarded = True
        cmd.timer = self.clock.call_at(cmd.deadline, self._expire, cmd.cid)
        self.link.forward(cmd)

    def _acl_denies(self, caller: str, cmd: PendingCommand, destination: str) -> bool:
        """Whether the ACL refuses this caller ``destination.command`` (refused and answered here if so)."""
        if not caller or self.acl is None or self.acl.allows(caller, destination, cmd.name):
            return False
        self.stats["denied"] += 1
        self.emit(
            EventId.ACCESS_DENIED,
            Severity.HIGH,
            f"{caller} may not run {destination}.{cmd.name} (target [acl])",
            caller=caller,
            destination=destination,
            command=cmd.name,
        )
        self.refuse(
            cmd,
            AccessDenied(
                f"service {caller!r} may not run {destination}.{cmd.name} (the target's [acl] does not allow it)"
            ),
        )
        return True

    def _route(self, rec: ServiceRecord, cmd: PendingCommand) -> None:
        if rec.state == State.READY:
            if rec.queue or not self._deliver(rec, cmd):
                rec.queue.append(cmd)
                self._schedule_flush(rec)
        elif rec.state in ACCEPTS_QUEUED:
            if len(rec.queue) >= self.queue_cap:
                self.stats["queue_full"] += 1
                now = self.clock.time()
                if now - self._last_full.get(rec.name, -1e9) >= 1.0:  # at most one event a second
                    self._last_full[rec.name] = now
                    self.emit(
                        EventId.COMMAND_QUEUE_FULL,
                        Severity.LOW,
                        f"{rec.name} is {rec.state.value} and its command queue is full; refusing",
                        service=rec.name,
                        capacity=self.queue_cap,
                        refused=self.stats["queue_full"],
                    )
                self.refuse(
                    cmd,
                    QueueFull(
                        f"service {rec.name!r} is {rec.state.value.lower()} and its command queue "
                        f"({self.queue_cap}) is full; it was not run"
                    ),
                )
                return
            self.stats["queued"] += 1
            rec.queue.append(cmd)
        elif rec.state == State.STOPPING and cmd.cid in self._resent:
            # a re-send from a direct caller that the stopping process dropped: held until it is reaped, when its
            # started ledger says whether it had started it (service_lost); service_unavailable answers the rest
            self.stats["queued"] += 1
            rec.queue.append(cmd)
        elif not (cmd.cid in self._resent and self._ran_before(rec.name, cmd)):
            self.refuse(
                cmd,
                ServiceUnavailable(
                    f"service {rec.name!r} is {rec.state.value}" + (f": {rec.reason}" if rec.reason else "")
                ),
            )

    def _deliver(self, rec: ServiceRecord, cmd: PendingCommand) -> bool:
        """Send one command to the service; False if ZeroMQ could not take it now."""
        if self._resent and cmd.cid in self._resent and self._ran_before(rec.name, cmd):  # queued over a restart
            return True
        now = self.clock.time()
        remaining = cmd.deadline - now
        if remaining <= 0:
            self._expire(cmd.cid)
            return True
        if cmd.frame is not None and now - cmd.received_at < 0.005:
            data = cmd.frame  # delivered at once: forward the caller's bytes, its timeout still holds
        else:  # it waited in the queue: tell the service how much time is left
            data = wire.encode(
                wire.make(
                    Kind.COMMAND,
                    rec.name,
                    cmd.source,
                    {"name": cmd.name, "args": cmd.args, "timeout_ms": max(1, int(remaining * 1000))},
                    corr=cmd.cid,
                )
            )
        try:
            self.sock.send_multipart_nowait([rec.identity.encode(), data])
        except zmq.ZMQError as exc:
            # At its high-water mark or not attached: keep it queued and try again shortly.
            log.debug("kernel.delivery_deferred", service=rec.name, error=str(exc))
            return False
        cmd.delivered_to = rec.incarnation
        rec.deliveries += 1
        cmd.delivery_seq = rec.deliveries
        rec.inflight[cmd.cid] = cmd
        self.stats["delivered"] += 1
        return True

    def _schedule_flush(self, rec: ServiceRecord) -> None:
        self.clock.call_later(0.005, self.flush, rec)

    def flush(self, rec: ServiceRecord) -> None:
        """Deliver everything queued for a service that is ready, in order."""
        while rec.queue and rec.state == State.READY:
            cmd = rec.queue[0]
            if cmd.cid in self.pending and not self._deliver(rec, cmd):
                self._schedule_flush(rec)
                return
            if rec.queue and rec.queue[0] is cmd:
                rec.queue.popleft()

    def _on_result(self, who: Peer, ident: bytes, env: wire.Envelope, frame: bytes) -> None:
        rec = self.records.get(who.name) if who.kind is PeerKind.SERVICE else None
        cmd = self.pending.get(env.corr)
        if rec is None or (cmd is not None and cmd.destination != rec.name):
            # only the service a command was delivered to may answer it
            self.identity_problem(who, ident, "sent a result", "identity_forged")
            return
        name, inc = rec.name, rec.incarnation
        rec.inflight.pop(env.corr, None)
        if cmd is None and env.topic.startswith(DIRECT_TOPIC):  # the copy of a result a direct caller got
            self._remember_direct(env, frame)
            return
        if cmd is not None and not cmd.delivered_to and env.topic.startswith(DIRECT_TOPIC) and cmd in rec.queue:
            rec.queue.remove(cmd)  # its re-send, queued: this process ran it for the direct caller, here is its result
        elif cmd is None or cmd.delivered_to != inc:
            self.stats["late_results"] += 1
            return
        if not isinstance(env.payload, dict) or "ok" not in env.payload:
            self.complete(cmd, error_payload(HandlerError(f"malformed result from {name}")))
            return
        if len(frame) > self.max_frame_bytes:
            self._result_too_large(cmd, len(frame), name)
            return
        self._finish(cmd, frame)  # forward the service's own bytes: no re-encoding on the hot path

    # ---- outcomes ----------------------------------------------------------------------------
    def complete(self, cmd: PendingCommand, payload: dict[str, Any], *, remember: bool = True) -> None:
        """Answer every requester of a command exactly once; remember the result unless told it is a refusal."""
        self._finish(cmd, wire.encode(wire.make(Kind.RESULT, "", KERNEL, payload, corr=cmd.cid)), remember=remember)

    def refuse(self, cmd: PendingCommand, err: CommandError) -> None:
        """Answer a command that did not run; not remembered, so a retry with the same id runs it."""
        self.stats["refused"] += 1
        self.complete(cmd, error_payload(err), remember=False)

    def _result_too_large(self, cmd: PendingCommand, size: int, source: str) -> None:
        self.stats["too_large"] += 1
        self.complete(
            cmd,
            error_payload(
                FrameTooLarge(
                    f"{cmd.destination}.{cmd.name} ran, but its result from {source} is {size:,} bytes, over this "
                    f"runtime's limit of {self.max_frame_bytes:,} bytes (runtime.max_frame_bytes)",
                    size=size,
                    limit=self.max_frame_bytes,
                    ran=True,
                )
            ),
        )

    def _finish(self, cmd: PendingCommand, frame: bytes, *, remember: bool = True) -> None:
        self.pending.pop(cmd.cid, None)
        if self._resent:
            self._resent.pop(cmd.cid, None)
        for ident in cmd.requesters:  # answer first: the bookkeeping below is off the round trip
            self._send_result(ident, cmd.cid, frame)
        if cmd.timer is not None:
            cmd.timer.cancel()
        if remember:
            self._remember(cmd.cid, cmd.deadline, frame)
        self.stats["completed"] += 1

    def _remember_direct(self, env: wire.Envelope, frame: bytes) -> None:
        """Keep a direct command's result (its topic carries the command's timeout) for a retry via the kernel."""
        self.stats["direct"] += 1
        if len(frame) > self.max_frame_bytes:
            return
        ms = env.topic[len(DIRECT_TOPIC) :]
        timeout_s = (int(ms) if ms.isdigit() else self.default_timeout_ms) / 1000.0
        self._remember(env.corr, self.clock.time() + timeout_s, frame)

    def _remember(self, cid: str, deadline: float, frame: bytes) -> None:
        """Keep a result for retries until its command can no longer be retried, within the count and byte caps."""
        now = self.clock.time()
        old = self.results.pop(cid, None)
        if old is not None:
            self.result_bytes -= len(old[0])
        self.results[cid] = (frame, max(deadline, now) + RETRY_GRACE_S)
        self.result_bytes += len(frame)
        while self.results:
            _, (oldest, keep_until) = next(iter(self.results.items()))
            if keep_until <= now:
                self.stats["results_expired"] += 1
            elif len(self.results) > RESULT_CACHE_MAX or self.result_bytes > self.result_cache_bytes:
                self.stats["results_evicted_early"] += 1  # a retry of it would now run it again
            else:
                break
            self.results.popitem(last=False)
            self.result_bytes -= len(oldest)
        reported, at = self._evicted_reported
        if self.stats["results_evicted_early"] > reported and now - at >= EVICTED_EVENT_S:
            total = self.stats["results_evicted_early"]
            self._evicted_reported = (total, now)
            self.emit(
                EventId.COMMAND_RESULTS_EVICTED,
                Severity.LOW,
                f"{total - reported} result(s) dropped before their retry time (result cache full): "
                "a retry of those ids would run again",
                count=total - reported,
                total=total,
                cache_bytes=self.result_bytes,
                cache_mb=round(self.result_cache_bytes / (1 << 20), 1),
            )
        if self._sweep is None and self.results:
            self._sweep = self.clock.call_later(SWEEP_S, self._sweep_results)

    def _sweep_results(self) -> None:
        """Drop every result whose command can no longer be retried (deadlines differ, so not only the oldest)."""
        self._sweep = None
        now = self.clock.time()
        expired = [cid for cid, (_, keep_until) in self.results.items() if keep_until <= now]
        for cid in expired:
            frame, _ = self.results.pop(cid)
            self.result_bytes -= len(frame)
        self.stats["results_expired"] += len(expired)
        if self.results:
            self._sweep = self.clock.call_later(SWEEP_S, self._sweep_results)

    def _reply(self, ident: bytes, cid: str, payload: dict[str, Any]) -> None:
        """Answer one requester directly (malformed requests that never become commands)."""
        self._send_result(ident, cid, wire.encode(wire.make(Kind.RESULT, "", KERNEL, payload, corr=cid)))

    def _send_result(self, ident: bytes, cid: str, frame: bytes) -> None:
        if isinstance(ident, LinkRequester):
            if self.link is None or not self.link.send_result(ident, frame):
                self.stats["undeliverable"] += 1
            return
        try:
            self.sock.send_multipart_nowait([ident, frame])
        except zmq.ZMQError as exc:
            self.stats["undeliverable"] += 1
            log.warning(
                "kernel.result_undeliverable",
                requester=ident.decode(errors="replace"),
                command_id=cid,
                error=str(exc),
                note="the result is kept; a retry with the same id gets it",
            )

    def _expire(self, cid: str) -> None:
        cmd = self.pending.get(cid)
        if cmd is None:
            return
        rec = self.records.get(cmd.destination)
        if rec is not None:
            rec.inflight.pop(cid, None)
            if cmd in rec.queue:
                rec.queue.remove(cmd)
        resent = cid in self._resent and not (cmd.delivered_to or cmd.forwarded)
        if resent and self._ran_before(cmd.destination, cmd):
            return  # a direct caller's re-send that a dead incarnation had started: answered as such, not "not run"
        self.stats["deadline_exceeded"] += 1
        if resent and rec is not None and rec.state in UNREAPED and self._resent[cid] == rec.incarnation:
            # its direct caller had sent it to this process, not reaped yet: no ledger can prove it did not start it
            self.complete(
                cmd,
                error_payload(
                    DeadlineExceeded(
                        f"{cmd.destination}.{cmd.name}: deadline exceeded; its caller had sent it to {cmd.destination} "
                        "directly, which may have run it",
                        delivered=True,
                    )
                ),
            )
        elif cmd.delivered_to or cmd.forwarded:
            where = "while running" if cmd.delivered_to else "on another board"
            self.complete(
                cmd,
                error_payload(
                    DeadlineExceeded(f"{cmd.destination}.{cmd.name}: deadline exceeded {where}", delivered=True)
                ),
            )
        else:  # it never left this kernel: it did not run, and a retry may
            self.complete(
                cmd,
                error_payload(
                    DeadlineExceeded(
                        f"{cmd.destination}.{cmd.name}: deadline exceeded before it could be delivered; it was not run",
                        delivered=False,
                    )
                ),
                remember=False,
            )

    def service_lost(self, rec: ServiceRecord, reason: str) -> None:
        """The process died (and was reaped): its in-flight commands fail, saying whether each had started.

        The dead incarnation's started ledger proves which commands it never took: those are answered
        ``started: false`` and forgotten, so a retry runs them; the others ran at most once.
        """
        ledger = started.ledger_path(self.runtime_dir, rec.name, rec.incarnation) if self.runtime_dir else None
        taken = started.read_started(ledger) if ledger is not None else None
        if taken is not None:
            self._keep_started(rec.name, taken)
            for cmd in [c for c in rec.queue if c.cid in self._resent]:
                if self._ran_before(rec.name, cmd):  # re-sent by a direct caller before this death was known
                    rec.queue.remove(cmd)
        if rec.inflight:
            not_started = (
                0
                if taken is None
                else sum(
                    1
                    for cid, c in rec.inflight.items()
                    if started.digest(cid) not in taken and rec.deliveries - c.delivery_seq < started.SLOTS
                )
            )
            self.emit(
                EventId.COMMAND_SERVICE_LOST,
                Severity.LOW,
                f"{len(rec.inflight)} command(s) in flight failed with {rec.name} "
                f"({not_started} had not started: a retry runs them)",
                service=rec.name,
                commands=[c.name for c in rec.inflight.values()][:20],
                count=len(rec.inflight),
                not_started=not_started,
            )
        for cid, cmd in list(rec.inflight.items()):
            self.stats["service_lost"] += 1
            began = (
                taken is None or started.digest(cid) in taken or rec.deliveries - cmd.delivery_seq >= started.SLOTS
            )  # its entry may be overwritten
            if began:
                self.complete(
                    cmd,
                    error_payload(
                        ServiceFailed(
                            f"service {rec.name!r} {reason} while running {cmd.name}; it had started and ran at most "
                            "once",
                            incarnation=cmd.delivered_to,
                            started=True,
                        )
                    ),
                )
            else:
                self.stats["lost_not_started"] += 1
                self.complete(
                    cmd,
                    error_payload(
                        ServiceFailed(
                            f"service {rec.name!r} {reason} before it started {cmd.name}; it did not run, and a retry "
                            "with the same id runs it",
                            incarnation=cmd.delivered_to,
                            started=False,
                        )
                    ),
                    remember=False,
                )
            rec.inflight.pop(cid, None)
        if ledger is not None:
            started.remove(ledger)

    def _keep_started(self, name: str, ledger: started.Ledger) -> None:
        """Keep a dead incarnation's ledger: a command sent to it directly may come back through the kernel."""
        now = self.clock.time()
        kept = [(led, until) for led, until in self._dead_started.get(name, []) if until > now][-(DEAD_LEDGERS - 1) :]
        self._dead_started[name] = [*kept, (ledger, now + DEAD_LEDGER_S)]

    def _ran_before(self, name: str, cmd: PendingCommand) -> bool:
        """Answer a command a direct caller re-sent if a dead incarnation had started it (True if so)."""
        if not self._started_before(name, cmd.cid):
            return False
        self.complete(
            cmd,
            error_payload(
                ServiceFailed(
                    f"service {name!r} died while running {cmd.name}; it had started and ran at most once", started=True
                )
            ),
        )
        return True

    def _started_before(self, name: str, cid: str) -> bool:
        """Whether a dead incarnation of ``name`` had started command ``cid`` (its ledger, still kept)."""
        kept = self._dead_started.get(name)
        if not kept:
            return False
        now = self.clock.time()
        live = [(led, until) for led, until in kept if until > now]
        if len(live) != len(kept):
            if live:
                self._dead_started[name] = live
            else:
                del self._dead_started[name]
        entry = started.digest(cid)
        return any(entry in led for led, _ in live)

    def service_unavailable(self, rec: ServiceRecord) -> None:
        """The service will not come back soon (FAILED/STOPPED): fail its queue."""
        while rec.queue:
            cmd = rec.queue.popleft()
            if cmd.cid in self._resent and self._ran_before(rec.name, cmd):
                continue  # a direct caller's re-send of a command the dead incarnation had started: said so
            if cmd.cid in self.pending:
                self.refuse(
                    cmd,
                    ServiceUnavailable(
                        f"service {rec.name!r} is {rec.state.value}" + (f": {rec.reason}" if rec.reason else "")
                    ),
                )

    async def _run_kernel_command(self, cmd: PendingCommand) -> None:
        try:
            value = await self.kernel_handler(cmd.name, cmd.args)
            payload = ok_payload(value)
        except CommandError as err:
            payload = error_payload(err)
        except Exception as exc:
            log.exception("kernel.command_failed", command=cmd.name)
            payload = error_payload(HandlerError(f"{type(exc).__name__}: {exc}"))
        self.complete(cmd, payload)


def is_refusal(payload: Any) -> bool:
    """Whether a RESULT payload proves its command did not run (then it is not remembered against the id)."""
    if not isinstance(payload, dict) or payload.get("ok") is not False:
        return False
    err = payload.get("error")
    if not isinstance(err, dict):
        return False
    code, details = err.get("code"), err.get("details")
    details = details if isinstance(details, dict) else {}
    if code == "frame_too_large":
        return details.get("ran") is not True
    if code == "service_failed":
        return details.get("started") is False
    if code == "deadline_exceeded":
        return details.get("delivered") is False
    return code in REFUSALS


def _parse_identity(ident: bytes) -> tuple[str, int]:
    """``s/<name>/<incarnation>`` -> (name, incarnation); anything else -> ("", -1)."""
    try:
        kind, name, inc = ident.decode().split("/")
        if kind == "s":
            return name, int(inc)
    except (UnicodeDecodeError, ValueError):
        pass
    return "", -1
