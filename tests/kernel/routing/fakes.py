"""In-memory collaborators for the command router: a clock driven by hand, a socket that records, services and callers.

The router is entered where the identity gate hands it a judged frame (``router.gate.deliver``), sends through
``FakeSocket`` and keeps time by ``FakeClock``; ``Supervision`` changes service states and calls the router in
the order the supervisor does. A service's started ledger is the real file format, written in ``runtime_dir``.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from flightos.bus import envelope as wire
from flightos.bus import started
from flightos.bus.commands import command_payload, ok_payload, result_value
from flightos.bus.direct import DIRECT_TOPIC
from flightos.bus.envelope import Kind
from flightos.config.schema import RestartConfig
from flightos.config.target import Acl, ServiceConfig
from flightos.kernel.records import PendingCommand, ServiceRecord, State
from flightos.kernel.restart_policy import RestartTracker
from flightos.kernel.routing.identity import Kind as PeerKind
from flightos.kernel.routing.identity import Peer
from flightos.kernel.routing.router import CommandRouter, LinkRequester

OPERATOR_PID = 4242
OPEN: list[Harness] = []
"""Harnesses whose services' ledger files may be open (closed after each test by ``close_all``)."""


class FakeTimer:
    """A callback armed on the fake clock."""

    def __init__(self, when: float, callback: Callable[..., object], args: tuple[Any, ...]) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run it."""
        self.cancelled = True


class FakeClock:
    """Time that moves only when a test says so; timers run in order as it passes them."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._timers: list[tuple[float, int, FakeTimer]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        """Now."""
        return self.now

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> FakeTimer:
        """Arm a timer at ``when``."""
        timer = FakeTimer(when, callback, args)
        heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> FakeTimer:
        """Arm a timer ``delay`` seconds from now."""
        return self.call_at(self.now + delay, callback, *args)

    def advance(self, seconds: float) -> None:
        """Move time on by ``seconds``, running every timer due on the way (also ones armed by those)."""
        end = self.now + seconds
        while self._timers and self._timers[0][0] <= end:
            when, _, timer = heapq.heappop(self._timers)
            self.now = max(self.now, when)
            if not timer.cancelled:
                timer.callback(*timer.args)
        self.now = end

    def armed(self) -> int:
        """Timers still to run."""
        return sum(1 for *_, t in self._timers if not t.cancelled)


class FakeSocket:
    """The command ROUTER's send side: records what was sent; a service peer that is not connected is unreachable."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []
        self.connected: set[bytes] = set()
        """Service routing ids ZeroMQ has a pipe for (``ROUTER_MANDATORY``: others raise EHOSTUNREACH)."""
        self.full: set[bytes] = set()
        """Peers whose pipe is at its high-water mark (EAGAIN)."""

    def send_multipart_nowait(self, frames: list[bytes]) -> None:
        """Record ``[routing id, frame]``, or raise as ZeroMQ does for a peer that is gone or full."""
        ident, frame = frames
        if ident.startswith(b"s/") and ident not in self.connected:
            raise zmq.ZMQError(zmq.EHOSTUNREACH)
        if ident in self.full:
            raise zmq.ZMQError(zmq.EAGAIN)
        self.sent.append((ident, frame))

    def to(self, ident: bytes) -> list[wire.Envelope]:
        """Everything sent to one peer, decoded, in order."""
        return [wire.decode(frame) for who, frame in self.sent if who == ident]


class FakeLink:
    """The link to other boards: where each service runs, and the commands handed to it."""

    def __init__(self, where: dict[str, str]) -> None:
        self.where = where
        self.forwarded: list[PendingCommand] = []

    def locate(self, service: str) -> str | None:
        """The board that runs a service."""
        return self.where.get(service)

    def knows(self, service: str) -> bool:
        """Whether some board runs it."""
        return service in self.where

    def known_services(self) -> list[str]:
        """Every service another board runs."""
        return sorted(self.where)

    def forward(self, cmd: PendingCommand) -> None:
        """Take a command for another board (its answer comes back through ``finish_remote``)."""
        self.forwarded.append(cmd)

    def send_result(self, requester: LinkRequester, frame: bytes) -> bool:
        """Answer a command that came in over the link (none do here)."""
        return False


@dataclass
class Harness:
    """A router wired to fakes, with one or more services and the calls to drive it."""

    router: CommandRouter
    clock: FakeClock
    sock: FakeSocket
    records: dict[str, ServiceRecord]
    runtime_dir: Path
    events: list[tuple[Any, ...]] = field(default_factory=list)
    ledgers: dict[tuple[str, int], started.StartedWriter] = field(default_factory=dict)

    # ---- callers ----------------------------------------------------------------------------
    def send(
        self,
        service: str,
        cid: str,
        name: str = "work",
        *,
        caller: bytes = b"op-1",
        timeout_s: float = 5.0,
        resent: bool = False,
        as_service: str = "",
    ) -> None:
        """A caller sends a command through the kernel (``resent``: a direct caller's re-send after a drop)."""
        payload = command_payload(name, {}, timeout_s)
        if resent:
            payload["resent"] = True
        frame = wire.encode(wire.make(Kind.COMMAND, service, caller.decode(), payload, corr=cid))
        who = (
            Peer(PeerKind.SERVICE, name=as_service, pid=OPERATOR_PID + 1, service_pid=OPERATOR_PID + 1)
            if as_service
            else Peer(PeerKind.OPERATOR, pid=OPERATOR_PID)
        )
        self.router.gate.deliver(who, caller, frame)

    def results(self, caller: bytes = b"op-1", cid: str | None = None) -> list[dict[str, Any]]:
        """The RESULT payloads a caller got (for one command id, if given), in order."""
        return [
            env.payload for env in self.sock.to(caller) if env.kind == Kind.RESULT and (cid is None or env.corr == cid)
        ]

    def only_result(self, cid: str, caller: bytes = b"op-1") -> dict[str, Any]:
        """The one result a caller got for ``cid`` (fails if it got none or more than one)."""
        got = self.results(caller, cid)
        assert len(got) == 1, f"{cid}: expected exactly one result, got {len(got)}: {got}"
        return got[0]

    # ---- services ---------------------------------------------------------------------------
    def rec(self, service: str) -> ServiceRecord:
        """A service's record."""
        return self.records[service]

    def ident(self, service: str) -> bytes:
        """The routing id of a service's current incarnation."""
        return self.records[service].identity.encode()

    def delivered(self, service: str, incarnation: int | None = None) -> list[str]:
        """Command ids the kernel delivered to an incarnation of a service (the current one by default)."""
        inc = self.records[service].incarnation if incarnation is None else incarnation
        return [env.corr for env in self.sock.to(f"s/{service}/{inc}".encode()) if env.kind == Kind.COMMAND]

    def close(self) -> None:
        """Close every ledger file the services have open."""
        for writer in self.ledgers.values():
            writer.close()

    def spawn(self, service: str) -> None:
        """A new incarnation starts (STARTING) and connects; its started ledger is opened as the service host does."""
        rec = self.records[service]
        rec.incarnation += 1
        rec.state = State.STARTING
        rec.cmd_attached = False
        rec.pid = 10_000 + rec.incarnation
        self.sock.connected.add(self.ident(service))
        path = started.ledger_path(self.runtime_dir, service, rec.incarnation)
        self.ledgers[(service, rec.incarnation)] = started.StartedWriter(path)

    def ready(self, service: str) -> None:
        """The incarnation attached and said ready: READY, and the router flushes its queue (as the supervisor does)."""
        rec = self.records[service]
        rec.cmd_attached = True
        rec.state = State.READY
        self.router.flush(rec)

    def start(self, service: str) -> None:
        """Spawn and ready."""
        self.spawn(service)
        self.ready(service)

    def takes(self, service: str, cid: str) -> None:
        """The current incarnation takes a command off a socket and starts it (its ledger entry is written)."""
        rec = self.records[service]
        self.ledgers[(service, rec.incarnation)].record(cid)

    def answer(self, service: str, cid: str, value: Any = "done", *, direct_ms: int | None = None) -> None:
        """The current incarnation sends the kernel a result (``direct_ms``: the copy of a direct caller's result)."""
        rec = self.records[service]
        topic = "kernel" if direct_ms is None else f"{DIRECT_TOPIC}{direct_ms}"
        frame = wire.encode(wire.make(Kind.RESULT, topic, rec.identity, ok_payload(value), corr=cid))
        assert rec.pid is not None
        who = Peer(PeerKind.SERVICE, name=service, pid=rec.pid, service_pid=rec.pid)
        self.router.gate.deliver(who, rec.identity.encode(), frame)

    def dies(self, service: str) -> None:
        """The process is gone and ZeroMQ dropped its pipe; the kernel has not reaped it yet (state unchanged)."""
        self.sock.connected.discard(self.ident(service))
        self.ledgers[(service, self.records[service].incarnation)].close()

    def killed(self, service: str) -> None:
        """The kernel killed the process (hung, a limit): RESTARTING until it is reaped."""
        self.records[service].state = State.RESTARTING
        self.dies(service)

    def stopping(self, service: str) -> None:
        """A stop was asked: SIGTERM sent, STOPPING until the process is reaped."""
        rec = self.records[service]
        rec.stop_requested = True
        rec.state = State.STOPPING

    def reaped(self, service: str, then: State = State.BACKOFF, reason: str = "exited") -> None:
        """The kernel reaped the process: ``service_lost``, the next state, and for FAILED/STOPPED the queue fails."""
        rec = self.records[service]
        self.sock.connected.discard(self.ident(service))
        rec.pid = None  # as the supervisor's exit handler: the pid goes, then the router hears of it
        self.router.service_lost(rec, reason)
        rec.state = then
        if then in (State.FAILED, State.STOPPED):
            self.router.service_unavailable(rec)


def make_harness(
    runtime_dir: Path,
    services: tuple[str, ...] = ("svc",),
    *,
    acl: Acl | None = None,
    queue_cap: int = 8,
    link: FakeLink | None = None,
) -> Harness:
    """A router with fakes for its socket, clock and supervisor; the services are configured but not started."""
    clock = FakeClock()
    sock = FakeSocket()
    records = {
        name: ServiceRecord(cfg=service_config(name), tracker=RestartTracker(RestartConfig())) for name in services
    }
    h = Harness(router=None, clock=clock, sock=sock, records=records, runtime_dir=runtime_dir)  # type: ignore[arg-type]
    h.router = CommandRouter(
        sock,
        records,
        queue_cap,
        _no_kernel_commands,
        lambda rec: None,
        lambda *a, **kw: h.events.append((*a, kw)),
        runtime_dir=runtime_dir,
        acl=acl,
        remote=lambda: link,
        clock=clock,
    )
    OPEN.append(h)
    return h


def close_all() -> None:
    """Close the ledger files of every harness made so far."""
    while OPEN:
        OPEN.pop().close()


def value(payload: dict[str, Any]) -> Any:
    """A result's value, or raise its typed error (as a client does)."""
    return result_value(payload)


def error(payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A failed result's error code and details."""
    assert payload.get("ok") is False, f"expected an error, got {payload}"
    err = payload["error"]
    return err["code"], err.get("details") or {}


async def _no_kernel_commands(name: str, args: Any) -> Any:
    raise AssertionError("the router harness sends no kernel commands")


def service_config(name: str, criticality: str = "normal") -> ServiceConfig:
    """A permanent service's configuration, as a target would give it."""
    return ServiceConfig(
        name=name,
        enabled=True,
        criticality=criticality,
        restart="permanent",
        cores=None,
        heartbeat_period_s=1.0,
        heartbeat_misses=3,
        params={},
        options={},
    )
