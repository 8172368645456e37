"""Routes commands to services: exactly one result per command, queued while a service restarts.

A command id is its idempotency key: a retry while it runs joins the same execution, a retry after
it finished gets the remembered result. A command delivered to a process that then dies is answered
``service_failed`` (it ran at most once); one still queued is delivered to the next incarnation.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import structlog
import zmq

from flightos.aio import TaskSet
from flightos.bus import envelope as wire
from flightos.bus.aiozmq import AsyncSocket
from flightos.bus.commands import error_payload, ok_payload
from flightos.bus.envelope import FrameError, Kind
from flightos.bus.errors import (
    AccessDenied,
    BadRequest,
    CommandError,
    DeadlineExceeded,
    HandlerError,
    QueueFull,
    ServiceFailed,
    ServiceUnavailable,
    UnknownService,
)
from flightos.bus.pubsub import RejectCounter
from flightos.config.target import Acl
from flightos.kernel.events import EventId
from flightos.kernel.identity import Gate, Identities, Peer, peer_address
from flightos.kernel.identity import Kind as PeerKind
from flightos.kernel.records import ACCEPTS_QUEUED, PendingCommand, ServiceRecord, State
from flightos.sdk.severity import Severity

log = structlog.get_logger("flightos.kernel")

RESULT_CACHE = 16_384
"""Results kept for retries; beyond this the oldest go, but never one whose command could still be retried."""
RESULT_CACHE_MAX = 65_536
"""Hard cap: past it the oldest result goes even if a retry could still come (counted as ``results_evicted_early``)."""
RETRY_GRACE_S = 5.0
"""A result is kept this long past its command's deadline: a retry may still be on its way."""
MAX_PENDING = 10_000
"""Commands in flight at once, across all services: beyond this a flood is refused, not buffered."""
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
        sock: AsyncSocket,
        records: dict[str, ServiceRecord],
        queue_cap: int,
        kernel_handler: KernelHandler,
        on_attach: Callable[[ServiceRecord], None],
        emit: Callable[..., None],
        default_timeout_s: float = 5.0,
    ) -> None:
        self.sock = sock
        self.records = records
        self.queue_cap = queue_cap
        self.kernel_handler = kernel_handler
        self.on_attach = on_attach
        self.emit = emit
        self.default_timeout_ms = int(default_timeout_s * 1000)
        self._last_full: dict[str, float] = {}
        self.pending: dict[str, PendingCommand] = {}
        self.results: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        """Encoded RESULT frames by command id: a retry gets the very bytes the first caller got."""
        self.rejects = RejectCounter("kernel:commands")
        self.stats = {"received": 0, "delivered": 0, "completed": 0, "duplicates": 0,
                      "queued": 0, "queue_full": 0, "deadline_exceeded": 0, "service_lost": 0,
                      "late_results": 0, "undeliverable": 0, "stale": 0, "denied": 0,
                      "results_evicted_early": 0, "identity_refused": 0, "identity_forged": 0}
        self.acl: Acl | None = None
        self.link: RemoteRoutes | None = None
        self.board = ""
        """This board's name in ``[link]`` (empty when not linked)."""
        self._tasks = TaskSet("router")
        self.identities = Identities(records)
        """Who is behind each local connection, from its process (shared with the control socket)."""
        self.gate = Gate(self.identities, self._on_frame)
        self._identity_events: set[tuple[int, str]] = set()

    # ---- inbound ------------------------------------------------------------------------------
    def on_frames(self, batch: list[list[Any]]) -> None:
        """Handle a drained batch of ROUTER messages: [routing id, frame] as zmq.Frame, which carry the sender's pid."""
        for parts in batch:
            if len(parts) != 2:
                self.rejects.reject(FrameError("malformed", f"{len(parts)} frames, expected 2"))
                continue
            ident, frame = parts
            self.gate.feed(ident.bytes, peer_address(frame), frame.bytes)

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
        self.emit(EventId.IDENTITY_REFUSED, Severity.HIGH,
                  f"process {who.pid} ({who.name or who.kind.value}) {what} as {claimed!r}"
                  + (f": {who.reason}" if who.reason else ""),
                  pid=who.pid, claimed=claimed, identity=who.name or who.kind.value, what=what)

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
            self._reply(ident, env.corr or "", error_payload(AccessDenied(
                f"process {who.pid} is not a live service of this runtime and not the operator: "
                f"commands from it are refused ({who.reason})")))
            return
        claimed = _parse_identity(ident)[0]
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
            self._reply(ident, cid, error_payload(QueueFull(
                f"the kernel already has {MAX_PENDING} commands in flight; try again shortly")))
            return
        timeout_ms = p.get("timeout_ms")
        if not isinstance(timeout_ms, int) or timeout_ms <= 0:
            timeout_ms = self.default_timeout_ms
        loop = asyncio.get_running_loop()
        now = loop.time()
        cmd = PendingCommand(cid=cid, destination=env.topic, name=p["name"], args=p.get("args") or {},
                             deadline=now + timeout_ms / 1000.0, requesters=[ident],
                             source=env.source, frame=frame, received_at=now, caller=caller)
        if env.topic == f"{KERNEL}@{self.board}":  # kernel@<this board> is this kernel
            cmd.destination = KERNEL
        other_kernel = cmd.destination.startswith(KERNEL + "@")  # kernel@<board>: another board's kernel
        if self._acl_denies(caller, cmd, KERNEL if other_kernel else cmd.destination):
            return
        if other_kernel:
            if remote or self.link is None:
                self.complete(cmd, error_payload(UnknownService(
                    f"no board {cmd.destination[len(KERNEL) + 1:]!r} is linked with this one")))
            else:
                self._forward(cmd)
            return
        if cmd.destination == KERNEL:
            self.pending[cid] = cmd
            self._tasks.spawn(self._run_kernel_command(cmd))
            return
        rec = self.records.get(env.topic)
        elsewhere = rec is None or rec.state == State.REMOTE
        if elsewhere and not remote and self.link is not None and (rec is not None or self.link.knows(env.topic)):
            self._forward(cmd)  # held and resent by the link while that board is unreachable, until the deadline
            return
        if rec is None:
            known = sorted({*self.records, *(self.link.known_services() if self.link else [])})
            self.complete(cmd, error_payload(UnknownService(
                f"no service {env.topic!r} in this runtime", available=known)))
            return
        if rec.state == State.REMOTE:
            self.complete(cmd, error_payload(ServiceUnavailable(
                f"service {rec.name!r} does not run on this board ({rec.reason})")))
            return
        self.pending[cid] = cmd
        cmd.timer = loop.call_at(cmd.deadline, self._expire, cid)
        self._route(rec, cmd)

    def route_local(self, rec: ServiceRecord, cmd: PendingCommand) -> None:
        """Route an accepted command to a service that now runs here (it moved to this board)."""
        self._route(rec, cmd)

    def finish_remote(self, cmd: PendingCommand, frame: bytes) -> None:
        """The result of a command another board ran: answer its requesters with those very bytes."""
        if cmd.cid in self.pending:
            self._finish(cmd, frame)

    def _forward(self, cmd: PendingCommand) -> None:
        """Hand a command to the link for another board, with its deadline running here."""
        assert self.link is not None
        self.pending[cmd.cid] = cmd
        cmd.timer = asyncio.get_running_loop().call_at(cmd.deadline, self._expire, cmd.cid)
        self.link.forward(cmd)

    def _acl_denies(self, caller: str, cmd: PendingCommand, destination: str) -> bool:
        """Whether the ACL refuses this caller ``destination.command`` (refused and answered here if so)."""
        if not caller or self.acl is None or self.acl.allows(caller, destination, cmd.name):
            return False
        self.stats["denied"] += 1
        self.emit(EventId.ACCESS_DENIED, Severity.HIGH, f"{caller} may not run {destination}.{cmd.name} (target [acl])",
                  caller=caller, destination=destination, command=cmd.name)
        self.complete(cmd, error_payload(AccessDenied(
            f"service {caller!r} may not run {destination}.{cmd.name} (the target's [acl] does not allow it)")))
        return True

    def _route(self, rec: ServiceRecord, cmd: PendingCommand) -> None:
        if rec.state == State.READY:
            if rec.queue or not self._deliver(rec, cmd):
                rec.queue.append(cmd)
                self._schedule_flush(rec)
        elif rec.state in ACCEPTS_QUEUED:
            if len(rec.queue) >= self.queue_cap:
                self.stats["queue_full"] += 1
                now = asyncio.get_running_loop().time()
                if now - self._last_full.get(rec.name, -1e9) >= 1.0:  # at most one event a second
                    self._last_full[rec.name] = now
                    self.emit(EventId.COMMAND_QUEUE_FULL, Severity.LOW,
                              f"{rec.name} is {rec.state.value} and its command queue is full; refusing",
                              service=rec.name, capacity=self.queue_cap, refused=self.stats["queue_full"])
                self.complete(cmd, error_payload(QueueFull(
                    f"service {rec.name!r} is {rec.state.value.lower()} and its command queue "
                    f"({self.queue_cap}) is full")))
                return
            self.stats["queued"] += 1
            rec.queue.append(cmd)
        else:
            self.complete(cmd, error_payload(ServiceUnavailable(
                f"service {rec.name!r} is {rec.state.value}" + (f": {rec.reason}" if rec.reason else ""))))

    def _deliver(self, rec: ServiceRecord, cmd: PendingCommand) -> bool:
        """Send one command to the service; False if ZeroMQ could not take it now."""
        now = asyncio.get_running_loop().time()
        remaining = cmd.deadline - now
        if remaining <= 0:
            self._expire(cmd.cid)
            return True
        if cmd.frame is not None and now - cmd.received_at < 0.005:
            data = cmd.frame  # delivered at once: forward the caller's bytes, its timeout still holds
        else:  # it waited in the queue: tell the service how much time is left
            data = wire.encode(wire.make(
                Kind.COMMAND, rec.name, cmd.source,
                {"name": cmd.name, "args": cmd.args, "timeout_ms": max(1, int(remaining * 1000))}, corr=cmd.cid))
        try:
            self.sock.send_multipart_nowait([rec.identity.encode(), data])
        except zmq.ZMQError as exc:
            # At its high-water mark or not attached: keep it queued and try again shortly.
            log.debug("kernel.delivery_deferred", service=rec.name, error=str(exc))
            return False
        cmd.delivered_to = rec.incarnation
        rec.inflight[cmd.cid] = cmd
        self.stats["delivered"] += 1
        return True

    def _schedule_flush(self, rec: ServiceRecord) -> None:
        asyncio.get_running_loop().call_later(0.005, self.flush, rec)

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
        if cmd is None or cmd.delivered_to != inc:
            self.stats["late_results"] += 1
            return
        if not isinstance(env.payload, dict) or "ok" not in env.payload:
            self.complete(cmd, error_payload(HandlerError(f"malformed result from {name}")))
            return
        self._finish(cmd, frame)  # forward the service's own bytes: no re-encoding on the hot path

    # ---- outcomes ----------------------------------------------------------------------------
    def complete(self, cmd: PendingCommand, payload: dict[str, Any]) -> None:
        """Answer every requester of a command exactly once and remember the result."""
        self._finish(cmd, wire.encode(wire.make(Kind.RESULT, "", KERNEL, payload, corr=cmd.cid)))

    def _finish(self, cmd: PendingCommand, frame: bytes) -> None:
        self.pending.pop(cmd.cid, None)
        if cmd.timer is not None:
            cmd.timer.cancel()
        now = asyncio.get_running_loop().time()
        self.results[cmd.cid] = (frame, max(cmd.deadline, now) + RETRY_GRACE_S)
        while len(self.results) > RESULT_CACHE:
            _, (_, keep_until) = next(iter(self.results.items()))
            if keep_until > now and len(self.results) <= RESULT_CACHE_MAX:
                break  # the oldest may still be retried: keep it (and everything newer)
            if keep_until > now:
                self.stats["results_evicted_early"] += 1
            self.results.popitem(last=False)
        self.stats["completed"] += 1
        for ident in cmd.requesters:
            self._send_result(ident, cmd.cid, frame)

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
            log.warning("kernel.result_undeliverable", requester=ident.decode(errors="replace"),
                        command_id=cid, error=str(exc),
                        note="the result is kept; a retry with the same id gets it")

    def _expire(self, cid: str) -> None:
        cmd = self.pending.get(cid)
        if cmd is None:
            return
        rec = self.records.get(cmd.destination)
        if rec is not None:
            rec.inflight.pop(cid, None)
            if cmd in rec.queue:
                rec.queue.remove(cmd)
        self.stats["deadline_exceeded"] += 1
        where = "while running" if cmd.delivered_to else "before it could be delivered"
        self.complete(cmd, error_payload(DeadlineExceeded(
            f"{cmd.destination}.{cmd.name}: deadline exceeded {where}")))

    def service_lost(self, rec: ServiceRecord, reason: str) -> None:
        """The process died: its in-flight commands fail (they ran at most once)."""
        if rec.inflight:
            self.emit(EventId.COMMAND_SERVICE_LOST, Severity.LOW,
                      f"{len(rec.inflight)} command(s) in flight failed with {rec.name}", service=rec.name,
                      commands=[c.name for c in rec.inflight.values()][:20], count=len(rec.inflight))
        for cid, cmd in list(rec.inflight.items()):
            self.stats["service_lost"] += 1
            self.complete(cmd, error_payload(ServiceFailed(
                f"service {rec.name!r} {reason} while running {cmd.name}; it ran at most once",
                incarnation=cmd.delivered_to)))
            rec.inflight.pop(cid, None)

    def service_unavailable(self, rec: ServiceRecord) -> None:
        """The service will not come back soon (FAILED/STOPPED): fail its queue."""
        while rec.queue:
            cmd = rec.queue.popleft()
            if cmd.cid in self.pending:
                self.complete(cmd, error_payload(ServiceUnavailable(
                    f"service {rec.name!r} is {rec.state.value}" + (f": {rec.reason}" if rec.reason else ""))))

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


def _parse_identity(ident: bytes) -> tuple[str, int]:
    """``s/<name>/<incarnation>`` -> (name, incarnation); anything else -> ("", -1)."""
    try:
        kind, name, inc = ident.decode().split("/")
        if kind == "s":
            return name, int(inc)
    except (UnicodeDecodeError, ValueError):
        pass
    return "", -1
